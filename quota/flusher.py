"""Writes the Redis usage log behind to DynamoDB and applies refund requests; trims only after success.

Run as `python -m quota.flusher`. Safe to kill at any point: the log is trimmed only after DynamoDB
holds the counts, and the counts are absolute and merged by maximum, so a replay changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.dynamo import create_dynamodb_client
from core.messages import RefundRequest
from core.runner import run_until_signalled
from core.settings import Settings
from quota import keys
from quota.engine import QuotaEngine
from quota.store import UsageStore

log = logging.getLogger("quota.flusher")
BATCH = 500
LAG_KEY = "quota:flusher:lag-ms"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Flusher:
    def __init__(self, redis: Redis, store: UsageStore, engine: QuotaEngine) -> None:
        self.redis = redis
        self.store = store
        self.engine = engine

    async def flush_usage(self) -> tuple[int, bool]:
        """One batch from every shard of the usage log into DynamoDB. Returns how many entries were
        written, and whether some shard had more waiting."""
        logs = keys.usage_logs()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in logs:
                pipe.xrange(key, "-", "+", count=BATCH)
            per_shard = await pipe.execute()
        read = [(key, entries) for key, entries in zip(logs, per_shard, strict=True) if entries]
        if not read:
            await self.redis.set(LAG_KEY, 0)
            return 0, False
        latest: dict[tuple[str, str], tuple[str, int, int]] = {}
        for _, entries in read:
            for _, fields in entries:
                f = {_text(k): _text(v) for k, v in fields.items()}
                entry = (f["subject"], f["period"])
                _, consumed, refunded = latest.get(entry, (f["solution"], 0, 0))
                latest[entry] = (f["solution"], max(consumed, int(f["consumed"])), max(refunded, int(f["refunded"])))
        for (subject, period), (solution, consumed, refunded) in latest.items():
            await self.store.merge_max(subject, solution, period, consumed, refunded)
        oldest_ms = min(int(_text(entries[0][0]).split("-")[0]) for _, entries in read)
        # Only now that DynamoDB holds the counts may the log forget them.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(LAG_KEY, max(0, int(time.time() * 1000) - oldest_ms))
            for key, entries in read:
                pipe.xdel(key, *[entry_id for entry_id, _ in entries])
            await pipe.execute()
        return sum(len(entries) for _, entries in read), any(len(entries) == BATCH for _, entries in read)

    async def apply_refunds(self) -> int:
        entries = await self.redis.xrange(keys.REFUNDS, "-", "+", count=BATCH)
        for entry_id, fields in entries:
            data = fields.get(b"data") or fields.get("data")
            try:
                request = msgspec.json.decode(data, type=RefundRequest)
            except msgspec.ValidationError:
                log.warning("dropping malformed refund request %s", _text(entry_id))
            else:
                charge = request.charge
                await self.engine.refund(charge.subject, charge.solution_id, charge.period, request.search_id)
                if charge.ip_subject:
                    await self.engine.refund(charge.ip_subject, charge.solution_id, charge.ip_period, request.search_id)
            await self.redis.xdel(keys.REFUNDS, entry_id)
        return len(entries)

    async def run_once(self) -> int:
        written = await self.apply_refunds()
        while True:
            n, more = await self.flush_usage()
            written += n
            if not more:
                return written


async def run(settings: Settings, stop: asyncio.Event) -> None:
    redis = Redis.from_url(settings.redis_url)
    async with create_dynamodb_client(settings) as client:
        store = UsageStore(client, settings.table("usage"))
        flusher = Flusher(redis, store, QuotaEngine(redis, store, timezone=settings.quota_timezone))
        log.info("flusher started, every %.1f s", settings.flush_interval_s)
        while not stop.is_set():
            try:
                written = await flusher.run_once()
                if written:
                    log.info("flushed %d usage entries", written)
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("flush failed, will retry: %s", exc)
            except Exception as exc:  # botocore errors while DynamoDB is down: keep the log, retry later
                log.warning("flush failed, will retry: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.flush_interval_s)
    await redis.aclose()


def main() -> None:
    run_until_signalled(run)


if __name__ == "__main__":
    main()
