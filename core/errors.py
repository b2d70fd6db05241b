"""The application's error tree; HTTP status codes are mapped only in api/errors.py.

AppError(reason)
 ├── BadRequestError                  bad_request
 ├── NotFoundError                    not_found
 ├── ConflictError                    conflict
 ├── UnprocessableError               idempotency_key_reused
 ├── UnauthorizedError                unauthorized / invalid_token / invalid_credentials
 ├── ForbiddenError                   forbidden / not_entitled / csrf / email_unverified
 ├── QuotaExceededError               anonymous_limit_exceeded / daily_limit_exceeded
 ├── RateLimitedError                 too_many_attempts
 └── UnavailableError                 quota_unavailable / search_unavailable
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    reason = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.extra = extra


class BadRequestError(AppError):
    reason = "bad_request"


class NotFoundError(AppError):
    reason = "not_found"


class ConflictError(AppError):
    reason = "conflict"


class UnprocessableError(AppError):
    reason = "unprocessable"


class UnauthorizedError(AppError):
    reason = "unauthorized"


class ForbiddenError(AppError):
    reason = "forbidden"


class RateLimitedError(AppError):
    reason = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after_s = retry_after_s


class UnavailableError(AppError):
    reason = "unavailable"
