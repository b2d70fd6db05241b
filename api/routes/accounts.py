"""Accounts, sessions, CSRF, email verification, the dev mailbox, and the seed token API."""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from msgspec import Meta

from api.admission import SOLUTION_ID, Caller, usage
from api.auth import (
    CSRF_COOKIE,
    admin_user,
    require_csrf,
    session_cookie_name,
    session_user,
)
from api.deps import client_ip
from api.state import Services
from core.errors import BadRequestError, ForbiddenError, NotFoundError
from marketplace.catalog import get_solution
from marketplace.entitlements import Entitlement
from marketplace.history import History
from marketplace.mail import DevMailbox, Message
from marketplace.tokens import IssuedToken, TokenRecord
from marketplace.users import User, VerificationError_

__all__ = ["admin_user", "session_user", "require_csrf", "session_cookie_name"]

# No commas, quotes, angle brackets, semicolons or spaces: an address here goes into mail headers.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
Email = Annotated[str, Meta(pattern=EMAIL, max_length=254)]
Password = Annotated[str, Meta(min_length=10, max_length=256)]
Code = Annotated[str, Meta(pattern=r"^\d{6}$")]
SolutionId = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Annotated[str, Meta(max_length=100)] = ""


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    password: Annotated[str, Meta(max_length=256)]


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    code: Code


class ResendRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]


class ForgotRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    code: Code
    new_password: Password


class QuotaInfo(msgspec.Struct):
    daily_limit: int
    daily_used: int
    unlimited: bool


class AccountQuota(msgspec.Struct):
    """Today's search quota as the account pages show it (never an error: see _quota_info)."""

    daily_limit: int
    daily_used: int
    unlimited: bool
    remaining: int
    resets_in_s: int
    known: bool = True


class EntitlementView(msgspec.Struct):
    solution_id: str
    access_tier: str
    quota: AccountQuota
    pro_until: int = 0


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
    quota: AccountQuota
    token_prefix: str
    token_id: str = ""


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
    entitlement_status: str = "active"  # the seed's fields, kept for its clients
    created_at: str = ""


class HandoffRequest(msgspec.Struct, forbid_unknown_fields=True):
    solution_id: SolutionId
    return_to: Annotated[str, Meta(max_length=2000, pattern=r"^https?://")]


class Handoff(msgspec.Struct):
    redirect_url: str
    token_prefix: str


class TokenView(msgspec.Struct):
    token_prefix: str
    token_id: str
    solution_id: str
    status: str
    created_at_ms: int
    last_used_at: int | None


class CsrfView(msgspec.Struct):
    csrf_token: str


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
    sessions = services.sessions
    old = request.cookies.get(session_cookie_name(services))
    if old:
        await sessions.delete(old)  # rotate: a new id at every sign-in
    ip_hash = await services.ip_hasher.hash(client_ip(request))
    csrf_token = request.cookies.get(CSRF_COOKIE, "")
    session_id = await sessions.create(user.user_id, ip_hash, _location(request, services), csrf_token)
    response = Response(body, status_code=status)
    response.set_cookie(_session_cookie(services, session_id, services.settings.session_ttl_s))
    return response


@get("/api/auth/csrf", summary="Sets the csrftoken cookie and returns its value")
async def csrf(request: Request[Any, Any, Any], services: Services) -> Response[CsrfView]:
    value = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = Response(CsrfView(csrf_token=value))
    response.set_cookie(
        Cookie(key=CSRF_COOKIE, value=value, samesite="strict", path="/", secure=services.settings.secure_cookies)
    )
    return response


@post("/api/auth/register", status_code=201, summary="Create an account; a 6-digit code is emailed")
async def register(data: RegisterRequest, request: Request[Any, Any, Any], services: Services) -> Response[UserView]:
    require_csrf(request)
    await services.users.reserve_registration(await services.ip_hasher.hash(client_ip(request)))
    user, code = await services.users.create(data.email, data.password, data.name.strip())
    await History(services.dynamodb, services.settings).record(
        user.user_id, "signup", source="account", solution_id="aws-solution-finder", actor="user"
    )
    await _send_code(services, user, code)
    return await _start_session(request, services, user, _user_view(user), 201)


@post("/api/auth/login", status_code=200, summary="Sign in (an unverified account answers verified: false)")
async def login(data: LoginRequest, request: Request[Any, Any, Any], services: Services) -> Response[UserView]:
    require_csrf(request)
    user = await services.users.authenticate(
        data.email, data.password, await services.ip_hasher.hash(client_ip(request))
    )
    return await _start_session(request, services, user, _user_view(user), 200)


@post("/api/auth/logout", status_code=204, summary="Sign out")
async def logout(request: Request[Any, Any, Any], services: Services) -> Response[None]:
    require_csrf(request)
    session_id = request.cookies.get(session_cookie_name(services))
    if session_id:
        await services.sessions.delete(session_id)
    response: Response[None] = Response(None, status_code=204)
    response.delete_cookie(session_cookie_name(services), path="/")
    return response


@post("/api/auth/verify", status_code=200, summary="Verify the email address with its 6-digit code")
async def verify(data: VerifyRequest, services: Services) -> UserView:
    try:
        user = await services.users.verify_code(data.email, data.code)
    except VerificationError_ as exc:
        raise BadRequestError(exc.message, reason=exc.reason) from exc
    await services.outbox.send_once(
        f"welcome:{user.user_id}",
        user.email,
        "Welcome to Solution Finder",
        "Your address is verified. You now have 10 searches a day; Pro is unlimited.",
    )
    return _user_view(user)


class Accepted(msgspec.Struct):
    status: str


@post("/api/auth/resend-code", status_code=202, summary="Send a new verification code (at most one a minute)")
async def resend_code(data: ResendRequest, services: Services) -> Accepted:
    result = await services.users.new_code(data.email)
    if result is not None:
        await _send_code(services, result[0], result[1])
    return Accepted(status="sent if the account exists, is not verified and had no code in the last minute")


@post("/api/auth/password/forgot", status_code=202, summary="Mail a password-reset code (same answer for any address)")
async def forgot_password(data: ForgotRequest, request: Request[Any, Any, Any], services: Services) -> Accepted:
    require_csrf(request)
    result = await services.users.start_reset(data.email)
    if result is not None:
        user, code = result
        key = f"reset:{user.user_id}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"
        await services.outbox.send_once(
            key,
            user.email,
            "Reset your Solution Finder password",
            f"Your password reset code is {code}. It expires in one hour. "
            "If you did not ask for it, ignore this message: your password stays as it is.",
        )
    return Accepted(status="sent if the address has an account")


@post(
    "/api/auth/password/reset", status_code=200, summary="Set a new password with the mailed code; other sessions end"
)
async def reset_password(data: ResetRequest, request: Request[Any, Any, Any], services: Services) -> UserView:
    require_csrf(request)
    try:
        user = await services.users.reset_password(data.email, data.code, data.new_password)
    except VerificationError_ as exc:
        raise BadRequestError(exc.message, reason=exc.reason) from exc
    return _user_view(user)


async def _quota_info(services: Services, user: User, solution_id: str, tier: str, limit: int) -> AccountQuota:
    caller = Caller(access_tier=tier, user_id=user.user_id, solution_id=solution_id, limit=limit)
    decision = await usage(services, caller)
    if decision is None:
        return AccountQuota(limit, 0, limit < 0, limit, 0, known=False)
    return AccountQuota(limit, decision.used, limit < 0, decision.remaining, max(0, decision.reset_in_s))


@get("/api/me", summary="The signed-in user, entitlements and today's usage (never 429)")
async def me(request: Request[Any, Any, Any], services: Services) -> MeView:
    user = await session_user(request, services, csrf=False)
    views = []
    # An unverified account has not proven the address: it sees no entitlements (a seed address's included).
    for entitlement in await services.entitlements.list_for(user.user_id, user.email) if user.verified else []:
        quota = await _quota_info(services, user, entitlement.solution_id, entitlement.tier, entitlement.daily_limit)
        pro_until = entitlement.pro_until if entitlement.tier == "pro" else 0
        views.append(EntitlementView(entitlement.solution_id, entitlement.tier, quota, pro_until))
    if user.verified and not any(v.solution_id == SOLUTION_ID for v in views):
        # Every verified account may search the finder at the registered tier (the session searches so).
        limit = services.settings.registered_daily_limit
        views.append(
            EntitlementView(
                SOLUTION_ID, "registered", await _quota_info(services, user, SOLUTION_ID, "registered", limit)
            )
        )
    return MeView(user.user_id, user.email, user.name, user.verified, user.role, views)


async def _require_available(services: Services, solution_id: str) -> None:
    solution = await get_solution(services.dynamodb, services.settings, solution_id)
    if solution is None or solution.status != "active":
        raise NotFoundError("No such solution, or it is retired.", reason="unknown_solution")


async def _issue_new(services: Services, user: User, solution_id: str) -> tuple[IssuedToken, Entitlement]:
    """A new token for an available solution, the user made entitled to it first if needed."""
    await _require_available(services, solution_id)
    entitlement = await services.entitlements.ensure(user.user_id, solution_id, services.redis)
    return await services.token_service.issue(user.user_id, user.email, solution_id), entitlement


async def _issued_view(services: Services, user: User, issued: IssuedToken, entitlement: Entitlement) -> GeneratedToken:
    quota = await _quota_info(services, user, issued.record.solution_id, entitlement.tier, entitlement.daily_limit)
    return GeneratedToken(
        token=issued.token,
        solution_id=issued.record.solution_id,
        access_tier=entitlement.tier,
        quota=quota,
        token_prefix=issued.record.prefix,
        token_id=issued.record.token_id,
    )


@post("/api/generate-solution-token", status_code=201, summary="Issue a solution token (shown once)")
async def generate_token(data: GenerateRequest, request: Request[Any, Any, Any], services: Services) -> GeneratedToken:
    user = await _verified(request, services, csrf=True)
    issued, entitlement = await _issue_new(services, user, data.solution_id)
    return await _issued_view(services, user, issued, entitlement)


@post(
    "/api/finder-handoff",
    status_code=201,
    summary="After sign-in: a new token for a finder front end, returned in the URL fragment of return_to",
)
async def finder_handoff(data: HandoffRequest, request: Request[Any, Any, Any], services: Services) -> Handoff:
    user = await _verified(request, services, csrf=True)
    parts = urlsplit(data.return_to)
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = {services.settings.public_base_url.rstrip("/"), *services.settings.finder_origin_list}
    if origin not in allowed or parts.fragment:
        raise BadRequestError("That return address is not a known finder (FINDER_ORIGINS).", reason="unknown_origin")
    issued, _ = await _issue_new(services, user, data.solution_id)
    # In the fragment, never the query: fragments are not sent to servers or kept in their logs.
    return Handoff(redirect_url=f"{data.return_to}#token={issued.token}", token_prefix=issued.record.prefix)


def _token_view(record: TokenRecord) -> TokenView:
    return TokenView(
        token_prefix=record.prefix,
        token_id=record.token_id,
        solution_id=record.solution_id,
        status=record.status,
        created_at_ms=record.created_at_ms,
        last_used_at=record.last_used_at,
    )


TOKEN_ID = re.compile(r"[0-9a-f]{16}")


@post("/api/tokens/{token_id:str}/rotate", status_code=201, summary="Replace one of your tokens with a new one")
async def rotate_token(token_id: str, request: Request[Any, Any, Any], services: Services) -> GeneratedToken:
    user = await _verified(request, services, csrf=True)
    if not TOKEN_ID.fullmatch(token_id):
        raise NotFoundError("No such active token.")
    issued = await services.token_service.rotate(user.user_id, user.email, token_id)
    entitlement = await services.entitlements.ensure(user.user_id, issued.record.solution_id, services.redis)
    return await _issued_view(services, user, issued, entitlement)


@get("/api/tokens", summary="Your tokens: prefix, status, creation and last use")
async def list_tokens(request: Request[Any, Any, Any], services: Services) -> list[TokenView]:
    user = await _verified(request, services, csrf=False)
    return [_token_view(r) for r in await services.token_service.records(user.user_id)]


@post("/api/tokens/{token_id:str}/revoke", status_code=200, summary="Revoke one of your tokens")
async def revoke_token(token_id: str, request: Request[Any, Any, Any], services: Services) -> Accepted:
    user = await _verified(request, services, csrf=True)
    if not TOKEN_ID.fullmatch(token_id) or not await services.token_service.revoke(user.user_id, token_id):
        raise NotFoundError("No such token.")
    return Accepted(status="revoked")


async def _verified(request: Request[Any, Any, Any], services: Services, *, csrf: bool) -> User:
    """Tokens belong to verified accounts only: an unverified one may be someone squatting the address."""
    user = await session_user(request, services, csrf=csrf)
    if not user.verified:
        raise ForbiddenError("Verify your email address first.", reason="email_unverified")
    return user


def _user_view(user: User) -> UserView:
    return UserView(user.user_id, user.email, user.name, user.verified, user.role)


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
    forgot_password,
    reset_password,
    finder_handoff,
    mailbox_messages,
]
