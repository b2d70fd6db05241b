"""Cross-origin access: the token validator answers every origin, as the seed did (the call carries its
own credential and no cookies); the other JSON APIs answer only the origins in CORS_ALLOW_ORIGINS."""

from __future__ import annotations

from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings

VALIDATE_PATH = "/api/validate-solution-token"
ALLOW_HEADERS = b"content-type, idempotency-key, authorization, x-request-id, x-csrftoken, last-event-id"
EXPOSE_HEADERS = b"ratelimit, ratelimit-policy, retry-after, x-request-id"


def _origin(scope: Scope) -> bytes:
    for key, value in scope["headers"]:
        if key == b"origin":
            return bytes(value)
    return b""


def _allowed(scope: Scope, settings: Settings) -> tuple[bytes, bool] | None:
    """(Access-Control-Allow-Origin value, credentials allowed) for this request, or None."""
    origin = _origin(scope)
    if scope["path"] == VALIDATE_PATH:
        return b"*", False
    if origin and origin.decode("latin-1").rstrip("/") in settings.cors_origins:
        return origin, True
    return None


def cors_middleware_factory(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    def cors_middleware(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or not _origin(scope):
                await app(scope, receive, send)
                return
            allowed = _allowed(scope, settings)
            if allowed is None:
                await app(scope, receive, send)
                return
            origin, credentials = allowed
            headers = [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
            if credentials:
                headers.append((b"access-control-allow-credentials", b"true"))
            if scope.get("method") == "OPTIONS":
                methods = b"POST, OPTIONS" if scope["path"] == VALIDATE_PATH else b"GET, POST, PUT, OPTIONS"
                headers += [
                    (b"access-control-allow-methods", methods),
                    (b"access-control-allow-headers", ALLOW_HEADERS),
                    (b"access-control-max-age", b"600"),
                    (b"allow", methods),
                    (b"content-length", b"0"),
                ]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            headers.append((b"access-control-expose-headers", EXPOSE_HEADERS))

            async def send_with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *headers]
                await send(message)

            await app(scope, receive, send_with_cors)

        return middleware

    return cors_middleware
