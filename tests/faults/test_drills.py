"""Fault drills on real processes: a worker killed mid-stream, and the gateway restarted under open streams.
(Redis restarts, DynamoDB outages and a killed flusher are drilled in tests/integration/test_quota_*.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
import pytest
from arq.constants import result_key_prefix
from redis.asyncio import Redis

from core.streams import REFUND_STREAM, events_key, job_id
from dev.servers import free_port, start_valkey, stop, wait_for_port
from tests.conftest import Stack, read_events
from tests.helpers import start_gateway, wait_until

pytestmark = pytest.mark.slow


async def test_worker_killed_mid_stream_ends_the_stream_refunds_and_never_reruns(stack: Stack) -> None:
    port = free_port()
    valkey = start_valkey(port, stack.root / f"valkey-kill-{port}", appendonly=False)
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "JOB_TIMEOUT_S": "3"}
    worker = stack.spawn("worker-victim", ["-m", "search_worker.main"], env=env)
    stack.spawn("flusher-kill", ["-m", "quota.flusher"], env=env)
    base = start_gateway(stack, "gateway-kill", env)
    redis = Redis.from_url(env["REDIS_URL"])
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(100):
                if (await http.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            created = (await http.post("/api/searches", json={"query": "serverless web application"})).json()
            seen: list[str] = []
            killed_at = 0.0
            async with http.stream("GET", created["events_url"]) as response:
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        seen.append(event)
                    elif line.startswith("data:") and event == "token" and not killed_at:
                        os.kill(worker.pid, signal.SIGKILL)
                        killed_at = time.monotonic()
                    elif line.startswith("data:") and event == "error":
                        assert json.loads(line[5:])["reason"] == "worker_lost"
                        break
            assert seen[-1] == "error" and time.monotonic() - killed_at < 10
            for _ in range(100):  # the refund request is applied by the flusher
                if not await redis.xlen(REFUND_STREAM):
                    break
                await asyncio.sleep(0.05)
            again = await http.post("/api/searches", json={"query": "x"})
            assert again.json()["quota"]["used"] == 2 - 1  # the lost search was given back

            # A new worker finds the old job again once arq's in-progress mark expires (job timeout + 10 s), on
            # its safety poll (nothing wakes it for an old job): it must not run it. arq writes the job's
            # result once that worker has dealt with it. (Before, a fixed 16 s sleep with the suite's 300 s
            # poll never saw the job picked up at all.)
            stack.spawn("worker-after", ["-m", "search_worker.main"], env={**env, "ARQ_POLL_DELAY_S": "1"})
            result = result_key_prefix + job_id(created["search_id"])
            assert await wait_until(lambda: redis.exists(result), bool, 40)
            entries = await redis.xrange(events_key(created["search_id"]))
            names = [fields[b"event"].decode() for _, fields in entries]
            assert names.count("sources") == 1 and "done" not in names
    finally:
        await redis.aclose()
        for name in ("gateway-kill", "worker-after", "flusher-kill"):
            stack.stop(name)
        stack.stop("worker-victim")  # already killed: this reaps it
        stop(valkey)


async def test_gateway_restart_while_streams_are_open_resumes_with_last_event_id(stack: Stack, clean: None) -> None:
    port = free_port()
    env: dict[str, str] = {}

    def start() -> None:
        process = stack.spawn(
            "gateway-restart",
            [
                "-m",
                "api.serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
        )
        wait_for_port(port, timeout_s=60, process=process)

    start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            created = (await http.post("/api/searches", json={"query": "resize images on the fly"})).json()
            first = await read_events(http, created["events_url"], stop_after=3)
            stack.stop("gateway-restart")  # the streams drop with it
            start()
            rest = await read_events(http, created["events_url"], headers={"Last-Event-ID": first[-1][0]})
        ids = [e[0] for e in first + rest]
        assert len(ids) == len(set(ids)) and rest[-1][1] == "done"
        assert "".join(d["text"] for _, n, d in first + rest if n == "token") == rest[-1][2]["answer"]
    finally:
        stack.stop("gateway-restart")
