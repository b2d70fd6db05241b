"""Resolves the caller of a request: a solution token (Bearer) or the signed anonymous cookie."""

from __future__ import annotations

from typing import Any

from litestar import Request

from api.admission import SOLUTION_ID, Caller
from api.identity import ANON_COOKIE, mint_anon_id, verify_anon_cookie
from api.state import Services
from core.errors import UnauthorizedError


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def resolve_caller(request: Request[Any, Any, Any], services: Services) -> Caller:
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("Use 'Authorization: Bearer <solution token>'.", reason="invalid_token")
        grant = await services.tokens.resolve(token.strip(), SOLUTION_ID)
        return Caller(
            access_tier=grant.access_tier,
            user_id=grant.user_id,
            email=grant.email,
            limit=grant.daily_limit,
            token_hash=grant.token_hash,
            client_ip=client_ip(request),
        )
    settings = services.settings
    anon_id = verify_anon_cookie(settings.secret_key, request.cookies.get(ANON_COOKIE))
    new_cookie = None
    if anon_id is None:
        anon_id, new_cookie = mint_anon_id(settings.secret_key)
    return Caller(
        access_tier="anonymous",
        anon_id=anon_id,
        limit=settings.anonymous_limit,
        new_anon_cookie=new_cookie,
        client_ip=client_ip(request),
    )
