"""The quota engine on real valkey and a real local DynamoDB: windows, refunds, write-behind, rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from core.dynamo import create_dynamodb_client
from dev.servers import free_port
from quota import keys
from quota.engine import LUA_DIR, QuotaEngine
from quota.flusher import Flusher
from quota.store import UsageStore
from tests.conftest import Stack
from tests.helpers import register, token_for


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[UsageStore]:
    async with create_dynamodb_client(stack.settings) as client:
        yield UsageStore(client, stack.settings.table("usage"))


def engine_for(redis: Redis, store: UsageStore, timezone: str = "UTC") -> QuotaEngine:
    return QuotaEngine(redis, store, timezone=timezone)


async def test_consume_refuses_at_the_limit_without_counting(clean: None, redis: Redis, store: UsageStore) -> None:
    engine = engine_for(redis, store)
    results = [await engine.consume("u:t1:sol", "sol", limit=3, window="day") for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.used for r in results] == [1, 2, 3, 3, 3]
    check = await engine.consume("u:t1:sol", "sol", limit=3, window="day", check_only=True)
    assert check.used == 3 and not check.allowed


async def test_refund_gives_one_unit_back_once_per_search(clean: None, redis: Redis, store: UsageStore) -> None:
    engine = engine_for(redis, store)
    decision = await engine.consume("u:t2:sol", "sol", limit=3, window="day")
    await engine.consume("u:t2:sol", "sol", limit=3, window="day")
    assert await engine.refund("u:t2:sol", "sol", decision.period, "search-1")
    assert not await engine.refund("u:t2:sol", "sol", decision.period, "search-1")
    after = await engine.consume("u:t2:sol", "sol", limit=3, window="day", check_only=True)
    assert after.used == 1


async def test_day_boundary_in_asia_kolkata(clean: None, redis: Redis, store: UsageStore) -> None:
    engine = engine_for(redis, store, "Asia/Kolkata")
    assert engine.utc_offset_s() == 19800
    seconds, _ = await redis.time()
    decision = await engine.consume("u:t3:sol", "sol", limit=10, window="day", check_only=True)
    assert decision.period == dt.datetime.fromtimestamp(seconds, ZoneInfo("Asia/Kolkata")).date().isoformat()
    midnight_in = decision.reset_in_s
    # The script read the clock a moment after this test did: a second may have ticked in between.
    local = dt.datetime.fromtimestamp(seconds + midnight_in + 2, ZoneInfo("Asia/Kolkata"))
    assert (local.hour, local.minute) == (0, 0) or midnight_in >= 86398

    # Drive the Lua date arithmetic across midnight with offsets chosen from the server clock.
    script = redis.register_script((LUA_DIR / "consume.lua").read_text())
    to_midnight = 86400 - (seconds % 86400)

    async def period_at(offset: int) -> tuple[str, int]:
        _, _, _, period, reset = await script(
            keys=[keys.counter("u:t3b:sol"), keys.usage_log("u:t3b:sol")],
            args=[10, "day", offset, 1, 60, "u:t3b:sol", "sol", 60, 100],
        )
        return period.decode(), int(reset)

    await redis.hset(keys.counter("u:t3b:sol"), mapping={"period": "x", "consumed": 0, "refunded": 0})
    before, reset_before = await period_at(to_midnight - 30)
    after, _ = await period_at(to_midnight + 30)
    assert reset_before <= 30
    assert dt.date.fromisoformat(after) - dt.date.fromisoformat(before) == dt.timedelta(days=1)


def _burst(base_url: str, cookie: str, n: int) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, cookies={"anon_id": cookie}, timeout=30) as http:
            responses = await asyncio.gather(*[http.post("/api/searches", json={"query": "burst"}) for _ in range(n)])
            return [r.status_code for r in responses]

    return asyncio.run(run())


def _validate_burst(base_url: str, token: str, n: int) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            body = {"token": token, "solution_id": "aws-solution-finder"}
            responses = await asyncio.gather(*[http.post("/api/validate-solution-token", json=body) for _ in range(n)])
            return [r.status_code for r in responses]

    return asyncio.run(run())


async def test_anonymous_burst_from_four_processes_admits_exactly_three(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    first = await client.post("/api/searches", json={"query": "who am i"})
    cookie = first.cookies["anon_id"]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(4) as pool:
        results = await asyncio.gather(
            *[loop.run_in_executor(pool, _burst, stack.base_url, cookie, 10) for _ in range(4)]
        )
    statuses = [s for batch in results for s in batch]
    assert statuses.count(202) == 2 and statuses.count(429) == 38  # 1 before the burst + 2 in it


async def test_200_concurrent_validates_from_four_processes_allow_exactly_ten(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(4) as pool:
        results = await asyncio.gather(
            *[loop.run_in_executor(pool, _validate_burst, stack.base_url, token, 50) for _ in range(4)]
        )
    statuses = [s for batch in results for s in batch]
    assert statuses.count(200) == 10 and statuses.count(429) == 190


async def unflushed(redis: Redis) -> int:
    """Entries still waiting in the usage log, over all its shards."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys.usage_logs():
            pipe.xlen(key)
        return sum(await pipe.execute())


async def _wait_flushed(redis: Redis, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while await unflushed(redis):
        assert time.monotonic() < deadline, "the flusher did not drain the usage log"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_flusher_killed_mid_flush_then_redis_lost_keeps_every_count(
    clean: None, stack: Stack, redis: Redis, store: UsageStore
) -> None:
    engine = engine_for(redis, store)
    subject = f"u:crash-{time.time_ns()}:sol"
    flusher = stack.start_flusher()
    admitted = 0
    for n in range(60):
        decision = await engine.consume(subject, "sol", limit=100, window="day")
        admitted += decision.allowed
        if n == 30:
            os.kill(flusher.pid, signal.SIGKILL)  # kill -9 while it is writing behind
            flusher.wait()
            stack.processes.pop("flusher")
    stack.start_flusher()
    await _wait_flushed(redis)
    consumed, refunded = await store.get(subject, decision.period)
    assert (consumed, refunded) == (admitted, 0) == (60, 0)
    stack.stop("flusher")

    await redis.flushall()  # Redis restarts empty
    rebuilt = await engine.consume(subject, "sol", limit=100, window="day", check_only=True)
    assert rebuilt.used == 60  # nobody gets used searches back
    nxt = await engine.consume(subject, "sol", limit=100, window="day")
    assert nxt.used == 61


async def test_refunds_reach_dynamodb_as_monotonic_counts(
    clean: None, stack: Stack, redis: Redis, store: UsageStore
) -> None:
    engine = engine_for(redis, store)
    subject = f"u:refund-{time.time_ns()}:sol"
    decision = await engine.consume(subject, "sol", limit=5, window="day")
    await engine.consume(subject, "sol", limit=5, window="day")
    await engine.refund(subject, "sol", decision.period, "s-1")
    stack.start_flusher()
    try:
        await _wait_flushed(redis)
    finally:
        stack.stop("flusher")
    assert await store.get(subject, decision.period) == (2, 1)
    # Replaying an older entry changes nothing: counts merge by maximum.
    await store.merge_max(subject, "sol", decision.period, 1, 0)
    assert await store.get(subject, decision.period) == (2, 1)


async def test_redis_down_is_a_clear_503(stack: Stack, store: UsageStore) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    engine = engine_for(dead, store)
    from quota.errors import QuotaUnavailableError

    with pytest.raises(QuotaUnavailableError):
        await engine.consume("u:x:sol", "sol", limit=3, window="day")
    await dead.aclose()


async def test_batched_consumes_stay_atomic_and_survive_a_script_flush(
    clean: None, redis: Redis, store: UsageStore
) -> None:
    engine = engine_for(redis, store)
    decisions = await asyncio.gather(*[engine.consume("u:batch:sol", "sol", limit=30, window="day") for _ in range(50)])
    assert sorted(d.used for d in decisions if d.allowed) == list(range(1, 31))
    assert sum(not d.allowed for d in decisions) == 20
    await redis.script_flush()  # as after a Redis restart: the cached SHA is unknown to the server
    after = await engine.consume("u:batch2:sol", "sol", limit=3, window="day")
    assert after.allowed and after.used == 1


async def test_redis_loss_forgets_only_what_was_not_flushed(
    clean: None, stack: Stack, redis: Redis, store: UsageStore
) -> None:
    engine = engine_for(redis, store)
    subject = f"u:loss-{time.time_ns()}:sol"
    for _ in range(3):
        decision = await engine.consume(subject, "sol", limit=10, window="day")
    flusher = Flusher(redis, store, engine)
    await flusher.run_once()
    for _ in range(2):  # admitted after the last flush, then Redis loses everything
        await engine.consume(subject, "sol", limit=10, window="day")
    await redis.flushall()
    rebuilt = await engine.consume(subject, "sol", limit=10, window="day", check_only=True)
    assert rebuilt.used == 3  # exactly the unflushed two are lost, as docs/quota.md says
    assert await store.get(subject, decision.period) == (3, 0)


async def test_dynamodb_down_keeps_the_log_until_it_is_back(
    clean: None, stack: Stack, redis: Redis, store: UsageStore
) -> None:
    engine = engine_for(redis, store)
    subject = f"u:ddb-down-{time.time_ns()}:sol"
    for _ in range(4):
        decision = await engine.consume(subject, "sol", limit=3, window="day")
    assert not decision.allowed  # still enforced from Redis
    settings = msgspec.structs.replace(stack.settings, dynamodb_endpoint_url=f"http://127.0.0.1:{free_port()}")
    async with create_dynamodb_client(settings) as dead:
        broken = Flusher(redis, UsageStore(dead, settings.table("usage")), engine)
        with pytest.raises(Exception):  # noqa: B017  (botocore's connection error)
            await broken.run_once()
    assert await unflushed(redis) == 3
    await Flusher(redis, store, engine).run_once()  # DynamoDB is back
    assert await unflushed(redis) == 0
    assert await store.get(subject, decision.period) == (3, 0)
