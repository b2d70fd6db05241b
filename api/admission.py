"""Admits a search or a validate call against the caller's quota, and builds the rate-limit headers."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from api.identity import ratelimit_headers
from api.state import Services
from core.messages import Charge
from core.metrics import QUOTA_DECISIONS
from marketplace.tokens import Grant
from quota import keys
from quota.engine import Decision
from quota.errors import QuotaExceededError, QuotaUnavailableError

SOLUTION_ID = "aws-solution-finder"


@dataclass
class Caller:
    access_tier: str  # anonymous | registered | pro
    solution_id: str = SOLUTION_ID
    anon_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    limit: int = 0
    token_hash: str | None = None
    new_anon_cookie: str | None = None
    client_ip: str = ""
    used_elsewhere: dict[str, int] = field(default_factory=dict)  # {day: count} the old system counted


def caller_for_grant(grant: Grant, client_ip: str = "") -> Caller:
    """The caller a solution token stands for, wherever the token arrives (validator or search API)."""
    return Caller(
        access_tier=grant.access_tier,
        solution_id=grant.solution_id,
        user_id=grant.user_id,
        email=grant.email,
        limit=grant.daily_limit,
        token_hash=grant.token_hash,
        client_ip=client_ip,
        used_elsewhere=grant.used_elsewhere,
    )


@dataclass
class Admission:
    decision: Decision
    charge: Charge
    headers: dict[str, str] = field(default_factory=dict)


def headers_for(caller: Caller, decision: Decision) -> dict[str, str]:
    window = decision.reset_in_s if decision.reset_in_s > 0 else 365 * 86400
    return ratelimit_headers(caller.access_tier, decision.limit, decision.remaining, window)


@functools.cache
def _decisions(tier: str, outcome: str) -> Any:
    """The labelled counter, looked up once (labels() takes a lock and hashes on every call)."""
    return QUOTA_DECISIONS.labels(tier, outcome)


async def admit(
    services: Services,
    caller: Caller,
    *,
    check_only: bool = False,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Admission:
    """Charge one unit (or only check). Raises QuotaExceededError with the contract's reason."""
    settings = services.settings
    engine = services.quota
    try:
        if caller.access_tier == "anonymous":
            assert caller.anon_id is not None
            ip_subject = keys.ip_subject(await services.ip_hasher.hash(caller.client_ip), caller.solution_id)
            ip = await engine.consume(
                ip_subject,
                caller.solution_id,
                limit=settings.anonymous_ip_daily_limit,
                window="day",
                check_only=check_only,
            )
            subject = keys.anonymous_subject(caller.anon_id, caller.solution_id)
            if not ip.allowed:
                anon = await engine.consume(
                    subject, caller.solution_id, limit=caller.limit, window="total", check_only=True
                )
                _refuse(
                    caller,
                    anon if not anon.allowed else ip,
                    "anonymous_limit_exceeded",
                    settings.public_base_url,
                )
            decision = await engine.consume(
                subject,
                caller.solution_id,
                limit=caller.limit,
                window="total",
                check_only=check_only,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
            if not decision.allowed:
                if not check_only:
                    await engine.refund(ip_subject, caller.solution_id, ip.period, f"denied-{uuid.uuid4().hex}")
                _refuse(caller, decision, "anonymous_limit_exceeded", settings.public_base_url)
            charge = Charge(
                subject=subject,
                solution_id=caller.solution_id,
                period=decision.period,
                ip_subject=ip_subject,
                ip_period=ip.period,
            )
        else:
            assert caller.user_id is not None
            subject = keys.user_subject(caller.user_id, caller.solution_id)
            decision = await engine.consume(
                subject,
                caller.solution_id,
                limit=caller.limit,
                window="day",
                check_only=check_only,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                used_elsewhere=caller.used_elsewhere,
            )
            if not decision.allowed:
                _refuse(caller, decision, "daily_limit_exceeded", settings.public_base_url)
            charge = Charge(subject=subject, solution_id=caller.solution_id, period=decision.period)
    except QuotaExceededError:
        _decisions(caller.access_tier, "refused").inc()
        raise
    except (QuotaUnavailableError, RedisError, OSError) as exc:
        _decisions(caller.access_tier, "unavailable").inc()
        if caller.access_tier in settings.fail_open:
            # Configured to fail open for this tier: admit without counting, and charge nothing.
            unmetered = Decision(True, 0, caller.limit, "", 0, "")
            return Admission(unmetered, Charge(subject="", solution_id=caller.solution_id, period=""), {})
        if isinstance(exc, QuotaUnavailableError):
            raise
        raise QuotaUnavailableError("The quota service is unavailable; try again shortly.") from exc
    _decisions(caller.access_tier, "checked" if check_only else "admitted").inc()
    return Admission(decision, charge, headers_for(caller, decision))


async def usage(services: Services, caller: Caller) -> Decision | None:
    """Today's usage of a signed-in caller, without charging or refusing: accounts and tokens must
    never depend on the search quota. None when the quota service cannot say."""
    assert caller.user_id is not None
    subject = keys.user_subject(caller.user_id, caller.solution_id)
    try:
        return await services.quota.consume(
            subject,
            caller.solution_id,
            limit=caller.limit,
            window="day",
            check_only=True,
            used_elsewhere=caller.used_elsewhere,
        )
    except (QuotaUnavailableError, RedisError, OSError):
        return None


def _refuse(caller: Caller, decision: Decision, reason: str, base_url: str) -> None:
    error = QuotaExceededError(
        limit=decision.limit,
        used=decision.used,
        tier=caller.access_tier,
        reset_in_s=decision.reset_in_s if decision.reset_in_s > 0 else 86400,
        reason=reason,
    )
    if reason == "anonymous_limit_exceeded":
        error.extra["register_url"] = f"{base_url}/register?solution_id={caller.solution_id}"
    else:
        error.extra["upgrade_url"] = f"{base_url}/pricing?solution_id={caller.solution_id}"
    error.extra["headers"] = headers_for(caller, decision)
    raise error
