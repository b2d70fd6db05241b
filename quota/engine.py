"""Atomic quota decisions: Lua scripts on Redis, with counters rebuilt from DynamoDB when Redis lost them."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.exceptions import RedisError

from quota import keys
from quota.batcher import ScriptBatcher
from quota.errors import IdempotencyKeyReusedError, QuotaUnavailableError
from quota.store import UsageStore

log = logging.getLogger("quota")
LUA_DIR = Path(__file__).parent / "lua"
IDEMPOTENCY_TTL_S = 24 * 3600
DAY_COUNTER_TTL_S = 3 * 24 * 3600
TOTAL_COUNTER_TTL_S = 400 * 24 * 3600
LOG_MAXLEN = 1_000_000
Window = Literal["day", "total"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    used: int
    limit: int
    period: str
    reset_in_s: int
    subject: str

    @property
    def remaining(self) -> int:
        return -1 if self.limit < 0 else max(0, self.limit - self.used)


class QuotaEngine:
    def __init__(self, redis: Redis, store: UsageStore, *, timezone: str) -> None:
        self.redis = redis
        self.store = store
        self.zone = ZoneInfo(timezone)
        self._scripts = {
            name: redis.register_script((LUA_DIR / f"{name}.lua").read_text()) for name in ("seed", "refund")
        }
        self._consume = ScriptBatcher(redis, (LUA_DIR / "consume.lua").read_text())
        self._offset_minute = -1
        self._offset_s = 0

    def utc_offset_s(self) -> int:
        """The zone's offset now; looked up once a minute (a DST change lands on a minute boundary)."""
        minute = int(time.time() // 60)
        if minute != self._offset_minute:
            offset = dt.datetime.now(self.zone).utcoffset()
            self._offset_s = int(offset.total_seconds()) if offset else 0
            self._offset_minute = minute
        return self._offset_s

    async def consume(
        self,
        subject: str,
        solution_id: str,
        *,
        limit: int,
        window: Window,
        check_only: bool = False,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        used_elsewhere: dict[str, int] | None = None,
    ) -> Decision:
        """`fingerprint` identifies the request an idempotency key was first used with; the same key
        with another request raises IdempotencyKeyReusedError (the IETF Idempotency-Key draft's rule).
        `used_elsewhere` ({period: count}, e.g. what the old system counted today) is merged by maximum
        into a counter that has to be built, so the first decision already knows it."""
        script_keys = [keys.counter(subject), keys.usage_log(subject)]
        if idempotency_key:
            script_keys.append(keys.idempotency(subject, idempotency_key))
        args = [
            limit,
            window,
            self.utc_offset_s(),
            1 if check_only else 0,
            IDEMPOTENCY_TTL_S,
            subject,
            solution_id,
            DAY_COUNTER_TTL_S if window == "day" else TOTAL_COUNTER_TTL_S,
            LOG_MAXLEN,
            fingerprint,
        ]
        try:
            for _ in range(2):
                status, used, limit_out, period, reset_in = await self._consume(keys=script_keys, args=args)
                period = period.decode() if isinstance(period, bytes) else str(period)
                if status == -3:
                    raise IdempotencyKeyReusedError(
                        "This Idempotency-Key was used with a different request.", reason="idempotency_key_reused"
                    )
                if status != -2:
                    return Decision(status == 1, int(used), int(limit_out), period, int(reset_in), subject)
                await self._seed(subject, period, window, (used_elsewhere or {}).get(period, 0))
        except RedisError as exc:
            raise QuotaUnavailableError("The quota service is unavailable; try again shortly.") from exc
        raise QuotaUnavailableError("The quota counter could not be rebuilt; try again shortly.")

    async def _seed(self, subject: str, period: str, window: Window, floor: int = 0) -> None:
        """Redis has no counter: take the system of record's counts, so nobody gets used searches back."""
        consumed, refunded = await self.store.get(subject, period)
        if consumed - refunded < floor:
            consumed = floor + refunded
        ttl = DAY_COUNTER_TTL_S if window == "day" else TOTAL_COUNTER_TTL_S
        await self._scripts["seed"](keys=[keys.counter(subject)], args=[period, consumed, refunded, ttl])
        if consumed:
            log.info("rebuilt quota counter %s %s from DynamoDB: %d used", subject, period, consumed - refunded)

    async def refund(self, subject: str, solution_id: str, period: str, search_id: str) -> bool:
        refunded = await self._scripts["refund"](
            keys=[keys.counter(subject), keys.usage_log(subject), keys.refund_marker(subject, search_id)],
            args=[period, subject, solution_id, 3 * 24 * 3600, LOG_MAXLEN],
        )
        return bool(refunded)
