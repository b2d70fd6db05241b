"""Errors the quota engine raises; api/errors.py maps them to HTTP."""

from __future__ import annotations

from core.errors import AppError, UnavailableError, UnprocessableError


class QuotaExceededError(AppError):
    reason = "daily_limit_exceeded"

    def __init__(self, *, limit: int, used: int, tier: str, reset_in_s: int, reason: str) -> None:
        super().__init__("Quota exceeded", reason=reason)
        self.limit = limit
        self.used = used
        self.tier = tier
        self.reset_in_s = reset_in_s


class QuotaUnavailableError(UnavailableError):
    reason = "quota_unavailable"


class IdempotencyKeyReusedError(UnprocessableError):
    reason = "idempotency_key_reused"
