"""A whole search answered by Bedrock (the fake ConverseStream server) through a worker and SSE: the done
event carries the model's usage; a failure mid-stream or a job timeout ends the stream with `error`
and gives the quota unit back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from core.streams import REFUND_STREAM
from dev.servers import free_port, start_valkey, stop
from tests.conftest import Stack, read_events
from tests.fakes.bedrock import Script, create_app
from tests.helpers import start_gateway


@pytest.fixture
async def bedrock_stack(stack: Stack) -> AsyncIterator[tuple[Script, str, str]]:
    script = Script()
    runner = web.AppRunner(create_app(script))
    await runner.setup()
    bedrock_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", bedrock_port).start()
    redis_port = free_port()
    valkey = start_valkey(redis_port, stack.root / f"valkey-bedrock-{redis_port}", appendonly=False)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ANSWER_PROVIDER": "bedrock",
        "BEDROCK_ENDPOINT_URL": f"http://127.0.0.1:{bedrock_port}",
        "JOB_TIMEOUT_S": "2",
    }
    stack.spawn("worker-bedrock", ["-m", "search_worker.main"], env=env)
    stack.spawn("flusher-bedrock", ["-m", "quota.flusher"], env=env)
    base = start_gateway(stack, "gateway-bedrock", env)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(100):
            if (await http.get("/ready")).status_code == 200:
                break
            await asyncio.sleep(0.1)
    try:
        yield script, base, env["REDIS_URL"]
    finally:
        script.release.set()  # a 'slow' answer still held
        stack.stop("gateway-bedrock")
        stack.stop("worker-bedrock")
        stack.stop("flusher-bedrock")
        stop(valkey)
        await runner.cleanup()


async def search(base: str) -> tuple[list[tuple[str, str, dict]], httpx.AsyncClient]:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    created = await http.post("/api/searches", json={"query": "resize images on the fly behind a CDN"})
    assert created.status_code == 202, created.text
    return await read_events(http, created.json()["events_url"]), http


async def test_bedrock_answer_streams_through_the_whole_system(bedrock_stack: tuple[Script, str, str]) -> None:
    _, base, _ = bedrock_stack
    events, http = await search(base)
    await http.aclose()
    assert [e[1] for e in events][0] == "sources" and events[-1][1] == "done"
    assert events[0][2]["answer_mode"] == "bedrock"
    done = events[-1][2]
    assert done["answer"] == "Use the Serverless Image Handler [1]."
    assert done["usage"]["input_tokens"] == 321 and done["usage"]["model_latency_ms"] == 456
    assert done["citations"] == [events[0][2]["results"][0]["id"]]


@pytest.mark.parametrize(("mode", "reason"), [("midstream_error", "answer_failed"), ("slow", "timeout")])
async def test_a_failed_answer_ends_with_error_and_refunds(
    bedrock_stack: tuple[Script, str], mode: str, reason: str
) -> None:
    script, base, redis_url = bedrock_stack
    script.plan = [mode]
    events, http = await search(base)
    try:
        assert events[-1][1] == "error" and events[-1][2]["reason"] == reason
        redis = Redis.from_url(redis_url)
        for _ in range(100):  # the worker queued a refund; the flusher applies it
            if not await redis.xlen(REFUND_STREAM):
                break
            await asyncio.sleep(0.05)
        await redis.aclose()
        script.plan = ["ok"]
        again = await http.post("/api/searches", json={"query": "x"})
        assert again.json()["quota"]["used"] == 1  # the failed search cost nothing
    finally:
        await http.aclose()
