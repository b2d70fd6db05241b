"""Resolves the caller of a request: a solution token (Bearer), the signed-in session, or the signed
anonymous cookie."""

from __future__ import annotations

from typing import Any

from litestar import Request

from api.admission import SOLUTION_ID, Caller, caller_for_grant
from api.auth import optional_session_user
from api.identity import ANON_COOKIE, mint_anon_id, verify_anon_cookie
from api.state import Services
from core.errors import UnauthorizedError


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def resolve_caller(request: Request[Any, Any, Any], services: Services, *, mint: bool = True) -> Caller:
    """Bearer token first, then the session cookie (POSTs need its CSRF header), then anonymous.
    With `mint=False` an anonymous caller without a cookie gets no new id (reading, not searching)."""
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("Use 'Authorization: Bearer <solution token>'.", reason="invalid_token")
        grant = await services.tokens.resolve(
            token.strip(), SOLUTION_ID, client=await services.ip_hasher.hash(client_ip(request))
        )
        return caller_for_grant(grant, client_ip(request))
    user = await optional_session_user(request, services, csrf=request.method != "GET")
    if user is not None and user.verified:
        entitlement = await services.entitlements.cached(user.user_id, user.email, SOLUTION_ID, services.tokens.cache)
        return Caller(
            access_tier=entitlement.tier if entitlement else "registered",
            user_id=user.user_id,
            email=user.email,
            limit=entitlement.daily_limit if entitlement else services.settings.registered_daily_limit,
            client_ip=client_ip(request),
        )
    settings = services.settings
    anon_id = verify_anon_cookie(settings.secret_key, request.cookies.get(ANON_COOKIE))
    new_cookie = None
    if anon_id is None and mint:
        anon_id, new_cookie = mint_anon_id(settings.secret_key)
    return Caller(
        access_tier="anonymous",
        anon_id=anon_id,
        limit=settings.anonymous_limit,
        new_anon_cookie=new_cookie,
        client_ip=client_ip(request),
    )


def owner_of(caller: Caller) -> str:
    """The identity a search is stored under: the user, or the anonymous visitor."""
    if caller.user_id:
        return f"user:{caller.user_id}"
    return f"anon:{caller.anon_id}" if caller.anon_id else ""
