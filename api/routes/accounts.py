"""Accounts, sessions, CSRF, email verification, the dev mailbox, and the seed token API."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from msgspec import Meta

from api.admission import Caller, admit
from api.deps import client_ip
from api.state import Services
from core.dynamo import from_item, to_item, values
from core.errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError
from marketplace.entitlements import EntitlementStore
from marketplace.history import History
from marketplace.mail import DevMailbox, Message
from marketplace.sessions import SessionStore
from marketplace.tokens import MAX_ACTIVE_PER_SOLUTION, display_prefix, hash_token, new_token
from marketplace.users import User, UserStore, VerificationError_

CSRF_COOKIE = "csrftoken"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$"
Email = Annotated[str, Meta(pattern=EMAIL, max_length=254)]
SolutionId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, Meta(min_length=10, max_length=256)]
    name: Annotated[str, Meta(max_length=100)] = ""


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    password: Annotated[str, Meta(max_length=256)]


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    code: Annotated[str, Meta(pattern=r"^\d{6}$")]


class ResendRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]


class QuotaInfo(msgspec.Struct):
    daily_limit: int
    daily_used: int
    unlimited: bool


class EntitlementView(msgspec.Struct):
    solution_id: str
    access_tier: str
    quota: QuotaInfo


class UserView(msgspec.Struct):
    user_id: str
    email: str
    name: str
    verified: bool
    role: str


class MeView(msgspec.Struct):
    user_id: str
    email: str
    name: str
    verified: bool
    role: str
    entitlements: list[EntitlementView]


class GenerateRequest(msgspec.Struct, forbid_unknown_fields=True):
    solution_id: SolutionId


class GeneratedToken(msgspec.Struct):
    token: str
    solution_id: str
    access_tier: str
    quota: QuotaInfo
    token_prefix: str


class ValidateRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(max_length=200)]
    solution_id: SolutionId
    user_email: Annotated[str, Meta(max_length=254)] | None = None
    check_only: bool = False
    action: Annotated[str, Meta(max_length=64)] | None = None


class ValidateResponse(msgspec.Struct):
    allowed: bool
    user_email: str
    solution_id: str
    access_tier: str
    quota_remaining: int
    quota: QuotaInfo


class TokenView(msgspec.Struct):
    token_prefix: str
    token_id: str
    solution_id: str
    status: str
    created_at_ms: int
    last_used_at: int | None


class CsrfView(msgspec.Struct):
    csrf_token: str


def session_cookie_name(services: Services) -> str:
    return "__Host-session" if services.settings.secure_cookies else "session"


def require_csrf(request: Request[Any, Any, Any]) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get("x-csrftoken", "")
    if not cookie or not header or not hmac.compare_digest(cookie, header):
        raise ForbiddenError(
            "Missing or wrong CSRF token: send the csrftoken cookie's value in X-CSRFToken.", reason="csrf"
        )


def _session_cookie(services: Services, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=session_cookie_name(services),
        value=value,
        httponly=True,
        samesite="lax",
        path="/",
        secure=services.settings.secure_cookies,
        max_age=max_age,
    )


def _location(request: Request[Any, Any, Any], services: Services) -> dict[str, str]:
    if not services.settings.trust_cloudfront_headers:
        return {}
    headers = request.headers
    return {
        "country": headers.get("cloudfront-viewer-country", "")[:8],
        "city": headers.get("cloudfront-viewer-city", "")[:80],
        "time_zone": headers.get("cloudfront-viewer-time-zone", "")[:64],
    }


async def session_user(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    """The signed-in user: from the session cookie (state-changing calls also need the CSRF header), or,
    with AUTH_PROVIDER=cognito, from a Cognito JWT in `Authorization: Bearer` (no CSRF: not a cookie)."""
    users = UserStore(services.dynamodb, services.redis, services.settings)
    if services.settings.auth_provider == "cognito":
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("Send a Cognito token as 'Authorization: Bearer <jwt>'.", reason="unauthenticated")
        claims = await services.cognito.verify(token.strip())
        return await users.from_identity_provider(
            str(claims.get("email") or f"{claims['sub']}@cognito.invalid"), bool(claims.get("email_verified", False))
        )
    session_id = request.cookies.get(session_cookie_name(services), "")
    user_id = await SessionStore(services.dynamodb, services.redis, services.settings).user_for(session_id)
    if user_id is None:
        raise UnauthorizedError("Sign in first.", reason="unauthenticated")
    if csrf:
        require_csrf(request)
    user = await users.get(user_id)
    if user is None:
        raise UnauthorizedError("Sign in first.", reason="unauthenticated")
    return user


async def admin_user(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    user = await session_user(request, services, csrf=csrf)
    if user.role != "admin":
        raise ForbiddenError("Admins only.", reason="admin_only")
    return user


async def _mailer(services: Services) -> DevMailbox:
    return DevMailbox(services.settings.mail_dir)


async def _send_code(services: Services, user: User, code: str) -> None:
    # Each code is its own event: the key names the code's hash, so a retried request sends it once.
    key = f"verify:{user.user_id}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"
    await services.outbox.send_once(
        key,
        user.email,
        "Your Solution Finder verification code",
        f"Your verification code is {code}. It expires in 24 hours.",
    )


async def _start_session(
    request: Request[Any, Any, Any], services: Services, user: User, body: Any, status: int
) -> Response[Any]:
    sessions = SessionStore(services.dynamodb, services.redis, services.settings)
    old = request.cookies.get(session_cookie_name(services))
    if old:
        await sessions.delete(old)  # rotate: a new id at every sign-in
    ip_hash = await services.ip_hasher.hash(client_ip(request))
    session_id = await sessions.create(user.user_id, ip_hash, _location(request, services))
    response = Response(body, status_code=status)
    response.set_cookie(_session_cookie(services, session_id, services.settings.session_ttl_s))
    return response


@get("/api/auth/csrf", summary="Sets the csrftoken cookie and returns its value")
async def csrf(request: Request[Any, Any, Any]) -> Response[CsrfView]:
    value = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = Response(CsrfView(csrf_token=value))
    response.set_cookie(Cookie(key=CSRF_COOKIE, value=value, samesite="strict", path="/"))
    return response


@post("/api/auth/register", status_code=201, summary="Create an account; a 6-digit code is emailed")
async def register(data: RegisterRequest, request: Request[Any, Any, Any], services: Services) -> Response[UserView]:
    require_csrf(request)
    users = UserStore(services.dynamodb, services.redis, services.settings)
    user, code = await users.create(data.email, data.password, data.name.strip())
    await History(services.dynamodb, services.settings).record(
        user.user_id, "signup", source="account", solution_id="aws-solution-finder", actor="user"
    )
    await _send_code(services, user, code)
    view = UserView(user.user_id, user.email, user.name, user.verified, user.role)
    return await _start_session(request, services, user, view, 201)


@post("/api/auth/login", status_code=200, summary="Sign in")
async def login(data: LoginRequest, request: Request[Any, Any, Any], services: Services) -> Response[UserView]:
    require_csrf(request)
    users = UserStore(services.dynamodb, services.redis, services.settings)
    user = await users.authenticate(data.email, data.password, await services.ip_hasher.hash(client_ip(request)))
    view = UserView(user.user_id, user.email, user.name, user.verified, user.role)
    return await _start_session(request, services, user, view, 200)


@post("/api/auth/logout", status_code=204, summary="Sign out")
async def logout(request: Request[Any, Any, Any], services: Services) -> Response[None]:
    require_csrf(request)
    session_id = request.cookies.get(session_cookie_name(services))
    if session_id:
        await SessionStore(services.dynamodb, services.redis, services.settings).delete(session_id)
    response: Response[None] = Response(None, status_code=204)
    response.delete_cookie(session_cookie_name(services), path="/")
    return response


@post("/api/auth/verify", status_code=200, summary="Verify the email address with its 6-digit code")
async def verify(data: VerifyRequest, services: Services) -> UserView:
    users = UserStore(services.dynamodb, services.redis, services.settings)
    try:
        user = await users.verify_code(data.email, data.code)
    except VerificationError_ as exc:
        raise BadRequestError(exc.message, reason=exc.reason) from exc
    await services.outbox.send_once(
        f"welcome:{user.user_id}",
        user.email,
        "Welcome to Solution Finder",
        "Your address is verified. You now have 10 searches a day; Pro is unlimited.",
    )
    return UserView(user.user_id, user.email, user.name, user.verified, user.role)


class Accepted(msgspec.Struct):
    status: str


@post("/api/auth/resend-code", status_code=202, summary="Send a new verification code (at most one a minute)")
async def resend_code(data: ResendRequest, services: Services) -> Accepted:
    users = UserStore(services.dynamodb, services.redis, services.settings)
    result = await users.new_code(data.email)
    if result is not None:
        await _send_code(services, result[0], result[1])
    return Accepted(status="sent if the account exists and is not verified")


async def _quota_info(services: Services, user_id: str, solution_id: str, tier: str, limit: int) -> QuotaInfo:
    caller = Caller(access_tier=tier, user_id=user_id, solution_id=solution_id, limit=limit)
    admission = await admit(services, caller, check_only=True)
    return QuotaInfo(daily_limit=limit, daily_used=admission.decision.used, unlimited=limit < 0)


@get("/api/me", summary="The signed-in user, entitlements and today's usage")
async def me(request: Request[Any, Any, Any], services: Services) -> MeView:
    user = await session_user(request, services, csrf=False)
    store = EntitlementStore(services.dynamodb, services.settings)
    views = []
    for entitlement in await store.list_for(user.user_id, user.email):
        quota = await _quota_info(
            services, user.user_id, entitlement.solution_id, entitlement.tier, entitlement.daily_limit
        )
        views.append(EntitlementView(entitlement.solution_id, entitlement.tier, quota))
    return MeView(user.user_id, user.email, user.name, user.verified, user.role, views)


@post("/api/generate-solution-token", status_code=201, summary="Issue a solution token (shown once)")
async def generate_token(data: GenerateRequest, request: Request[Any, Any, Any], services: Services) -> GeneratedToken:
    user = await session_user(request, services, csrf=True)
    if not user.verified:
        raise ForbiddenError("Verify your email address first.", reason="email_unverified")
    if data.solution_id != "aws-solution-finder":
        from marketplace.catalog import get_solution

        if await get_solution(services.dynamodb, services.settings, data.solution_id) is None:
            raise NotFoundError("No such solution.", reason="unknown_solution")
    return await _issue_token(services, user, data.solution_id)


async def _issue_token(services: Services, user: User, solution_id: str) -> GeneratedToken:
    """A new token for the user and solution (made entitled if needed); the oldest goes beyond two active."""
    entitlement = await EntitlementStore(services.dynamodb, services.settings).ensure(
        user.user_id, solution_id, services.redis
    )
    table = services.settings.table("tokens")
    active = [
        t for t in await _list_tokens(services, user.user_id) if t.solution_id == solution_id and t.status == "active"
    ]
    for old in sorted(active, key=lambda t: t.created_at_ms)[: max(0, len(active) - MAX_ACTIVE_PER_SOLUTION + 1)]:
        await _revoke(services, old.token_id, user.user_id)
    token = new_token()
    now = int(time.time() * 1000)  # epoch ms: tokens made in the same second still order by age
    await services.dynamodb.put_item(
        TableName=table,
        Item=to_item(
            {
                "token_hash": hash_token(token),
                "user_id": user.user_id,
                "email": user.email,
                "solution_id": solution_id,
                "status": "active",
                "created_at": str(now),
                "prefix": display_prefix(token),
            }
        ),
    )
    quota = await _quota_info(services, user.user_id, solution_id, entitlement.tier, entitlement.daily_limit)
    return GeneratedToken(
        token=token,
        solution_id=solution_id,
        access_tier=entitlement.tier,
        quota=quota,
        token_prefix=display_prefix(token),
    )


async def _list_tokens(services: Services, user_id: str) -> list[TokenView]:
    response = await services.dynamodb.query(
        TableName=services.settings.table("tokens"),
        IndexName="user-index",
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues=values(u=user_id),
    )
    views = []
    for item in response.get("Items", []):
        data = from_item(item)
        views.append(
            TokenView(
                token_prefix=str(data.get("prefix", "")),
                token_id=str(data["token_hash"])[:16],
                solution_id=str(data["solution_id"]),
                status=str(data["status"]),
                created_at_ms=int(data["created_at"]),
                last_used_at=data.get("last_used_at"),
            )
        )
    views.sort(key=lambda v: v.created_at_ms, reverse=True)
    return views


async def _revoke(services: Services, token_id: str, user_id: str) -> bool:
    """Revoke one of the user's tokens by the id shown in listings (the hash's first 16 hex digits)."""
    table = services.settings.table("tokens")
    response = await services.dynamodb.query(
        TableName=table,
        IndexName="user-index",
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues=values(u=user_id),
    )
    hashes = [i["token_hash"]["S"] for i in response.get("Items", []) if i["token_hash"]["S"].startswith(token_id)]
    for token_hash in hashes:
        await services.dynamodb.update_item(
            TableName=table,
            Key={"token_hash": {"S": token_hash}},
            UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values(r="revoked"),
        )
        await services.tokens.forget(token_hash)
    return bool(hashes)


@post("/api/tokens/{token_id:str}/rotate", status_code=201, summary="Replace one of your tokens with a new one")
async def rotate_token(token_id: str, request: Request[Any, Any, Any], services: Services) -> GeneratedToken:
    user = await session_user(request, services, csrf=True)
    current = [t for t in await _list_tokens(services, user.user_id) if t.token_id == token_id and t.status == "active"]
    if not re.fullmatch(r"[0-9a-f]{16}", token_id) or not current:
        raise NotFoundError("No such active token.")
    await _revoke(services, token_id, user.user_id)
    return await _issue_token(services, user, current[0].solution_id)


@get("/api/tokens", summary="Your tokens: prefix, status, creation and last use")
async def list_tokens(request: Request[Any, Any, Any], services: Services) -> list[TokenView]:
    user = await session_user(request, services, csrf=False)
    return await _list_tokens(services, user.user_id)


@post("/api/tokens/{token_id:str}/revoke", status_code=200, summary="Revoke one of your tokens")
async def revoke_token(token_id: str, request: Request[Any, Any, Any], services: Services) -> Accepted:
    user = await session_user(request, services, csrf=True)
    if not re.fullmatch(r"[0-9a-f]{16}", token_id) or not await _revoke(services, token_id, user.user_id):
        raise NotFoundError("No such token.")
    return Accepted(status="revoked")


@get("/dev/mailbox/messages", summary="Dev mailbox (only when DEV_MAILBOX=true)")
async def mailbox_messages(services: Services, to: str | None = None) -> list[Message]:
    if not services.settings.dev_mailbox:
        raise NotFoundError("Not found.")
    return (await _mailer(services)).messages(to)


@get("/dev/mailbox", summary="Dev mailbox page (only when DEV_MAILBOX=true)", include_in_schema=False)
async def mailbox_page(services: Services) -> Response[str]:
    if not services.settings.dev_mailbox:
        raise NotFoundError("Not found.")
    rows = "".join(
        f"<tr><td>{html.escape(m.to)}</td><td>{html.escape(m.subject)}</td><td>{html.escape(m.text)}</td>"
        f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(m.sent_at))}</td></tr>"
        for m in (await _mailer(services)).messages()
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Dev mailbox</title>'
        '<link rel="stylesheet" href="/static/style.css"></head><body><main><h1>Dev mailbox</h1>'
        "<table><tr><th>To</th><th>Subject</th><th>Text</th><th>Sent (UTC)</th></tr>"
        f"{rows}</table></main></body></html>"
    )
    return Response(
        body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": "default-src 'self'"}
    )


ROUTES = [
    mailbox_page,
    csrf,
    register,
    login,
    logout,
    verify,
    resend_code,
    me,
    generate_token,
    list_tokens,
    revoke_token,
    rotate_token,
    mailbox_messages,
]
