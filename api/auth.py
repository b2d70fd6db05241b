"""Who is signed in: the session cookie (bound to its CSRF token) or, with AUTH_PROVIDER=cognito, a
Cognito JWT; and the guards route handlers use instead of checking roles themselves."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request

from api.state import Services
from core.errors import ForbiddenError, UnauthorizedError
from marketplace.sessions import csrf_hash
from marketplace.users import User

CSRF_COOKIE = "csrftoken"


def session_cookie_name(services: Services) -> str:
    return "__Host-session" if services.settings.secure_cookies else "session"


def require_csrf(request: Request[Any, Any, Any], bound_hash: str | None = None) -> None:
    """Double submit: the csrftoken cookie's value in X-CSRFToken; with a session, it must also be the
    token the session began with, so a token from another browser's session does not work here."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get("x-csrftoken", "")
    if not cookie or not header or not hmac.compare_digest(cookie, header):
        raise ForbiddenError(
            "Missing or wrong CSRF token: send the csrftoken cookie's value in X-CSRFToken.", reason="csrf"
        )
    if bound_hash and not hmac.compare_digest(bound_hash, csrf_hash(cookie)):
        raise ForbiddenError("The CSRF token belongs to another session; reload the page.", reason="csrf")


async def _cognito_user(request: Request[Any, Any, Any], services: Services) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("Send a Cognito token as 'Authorization: Bearer <jwt>'.", reason="unauthenticated")
    claims = await services.cognito.verify(token.strip())
    return await services.users.from_identity_provider(
        str(claims["sub"]), str(claims.get("email") or ""), claims.get("email_verified") in (True, "true")
    )


async def optional_session_user(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User | None:
    """The session's user, or None when there is no valid session cookie."""
    session_id = request.cookies.get(session_cookie_name(services), "")
    if not session_id:
        return None
    session = await services.sessions.get(session_id)
    if session is None:
        return None
    user = await services.users.get(session.user_id)
    if user is None or session.created_at_ms < user.sessions_valid_from_ms:
        return None  # the password was reset after this session began
    if csrf:
        require_csrf(request, session.csrf_hash)
    return user


async def session_user(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    """The signed-in user (state-changing calls also need the CSRF header), or, with
    AUTH_PROVIDER=cognito, the user of a Cognito JWT in `Authorization: Bearer` (no CSRF: not a cookie)."""
    if services.settings.auth_provider == "cognito":
        return await _cognito_user(request, services)
    user = await optional_session_user(request, services, csrf=csrf)
    if user is None:
        raise UnauthorizedError("Sign in first.", reason="unauthenticated")
    return user


async def admin_user(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    user = await session_user(request, services, csrf=csrf)
    if user.role != "admin":
        raise ForbiddenError("Admins only.", reason="admin_only")
    return user
