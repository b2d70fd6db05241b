"""One table from error types to HTTP status codes, and one handler that writes the contract's body."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from core.errors import (
    AppError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
    UnprocessableError,
)
from quota.errors import QuotaExceededError

log = logging.getLogger("api")


class MethodNotAllowedError(AppError):
    reason = "method_not_allowed"


class BodyTooLargeError(AppError):
    reason = "request_too_large"


STATUS: list[tuple[type[AppError], int]] = [
    (MethodNotAllowedError, 405),
    (BodyTooLargeError, 413),
    (BadRequestError, 400),
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnprocessableError, 422),
    (QuotaExceededError, 429),
    (RateLimitedError, 429),
    (UnavailableError, 503),
]


def status_for(exc: AppError) -> int:
    for error_type, status in STATUS:
        if isinstance(exc, error_type):
            return status
    return 500


def error_body(message: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "reason": reason, **extra}


def handle_app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    status = status_for(exc)
    extra = dict(exc.extra)
    headers: dict[str, str] = dict(extra.pop("headers", None) or {})
    body = error_body(exc.message, exc.reason, **extra)
    if isinstance(exc, QuotaExceededError):
        body.update(limit=exc.limit, used=exc.used, access_tier=exc.tier)
        headers["Retry-After"] = str(max(1, exc.reset_in_s))
    elif isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, exc.retry_after_s))
    if status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, status, exc.reason)
    return Response(body, status_code=status, headers=headers)


FIELD_HINTS = {
    "email": "Enter a valid email address, like name@example.com.",
    "password": "Passwords need 10 to 256 characters; a few unrelated words make a strong one.",
    "new_password": "Passwords need 10 to 256 characters; a few unrelated words make a strong one.",
    "code": "The code is the 6 digits from the email.",
    "query": "Type a question of 1 to 1000 characters.",
    "solution_id": "Unknown solution id: lower-case letters, digits and dashes.",
}


def human_message(extra: Any) -> str:
    """A sentence for people from the validator's first complaint (the raw one stays in `detail`)."""
    first = extra[0] if isinstance(extra, list) and extra else extra if isinstance(extra, dict) else {}
    text = str(first.get("message", "")) if isinstance(first, dict) else ""
    key = str(first.get("key", "")) if isinstance(first, dict) else ""
    field = key or (text.rsplit("$.", 1)[-1].strip("`").split(".")[0] if "$." in text else "")
    if field in FIELD_HINTS:
        return FIELD_HINTS[field]
    if "Object contains unknown field" in text:
        return "The request has a field this endpoint does not take."
    if field:
        return f"The value of '{field[:40]}' is not valid."
    return "The request is malformed."


def handle_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException) or status == 400:
        extra = exc.extra if isinstance(exc.extra, list | dict) else None
        detail: Any = extra if extra else exc.detail
        return Response(error_body(human_message(extra), "bad_request", detail=detail), status_code=400)
    reasons = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "request_too_large",
        415: "unsupported_media_type",
        429: "too_many_requests",
    }
    reason = reasons.get(status, "http_error" if status < 500 else "internal_error")
    message = exc.detail if status < 500 else "The server could not complete the request."
    return Response(error_body(message, reason), status_code=status, headers=exc.headers or None)


def handle_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    return Response(error_body("The JSON is nested too deeply.", "bad_request", detail="nesting"), status_code=400)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(error_body("The server could not complete the request.", "internal_error"), status_code=500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AppError: handle_app_error,
    HTTPException: handle_http_error,
    RecursionError: handle_too_deep,
    Exception: handle_unexpected,
}


class ErrorBody(msgspec.Struct):
    """Every 4xx/5xx body: a sentence for people and a code for programs; some errors add fields."""

    error: str
    reason: str
    detail: Any = None
    limit: int | None = None
    used: int | None = None
    access_tier: str | None = None
    register_url: str | None = None
    upgrade_url: str | None = None


ERROR_STATUSES = {
    400: "Malformed input (reason bad_request) or a refused value",
    401: "Not signed in, or an invalid token",
    403: "Forbidden: CSRF, role, entitlement or an unverified email",
    404: "Not found",
    409: "Conflict",
    405: "Method not allowed (see Allow)",
    413: "Request body too large",
    422: "An Idempotency-Key reused with a different request",
    429: "Quota exhausted or too many attempts; see Retry-After",
    503: "A dependency (Redis, DynamoDB, the queue, the payment gateway) is unavailable",
}


def document_errors(handlers: list[Any]) -> None:
    """Declare the contract's error body for the error statuses of every JSON route, in one place."""
    for handler in handlers:
        if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
            continue
        extra = {
            status: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
            for status, text in ERROR_STATUSES.items()
        }
        handler.responses = {**extra, **(handler.responses or {})}
