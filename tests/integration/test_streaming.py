"""Streaming behaviour: cancel, heartbeats, disconnects, priorities, index versions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest
from redis.asyncio import Redis

from core.streams import QUEUE_NAME, events_key, job_id
from dev.servers import free_port, start_valkey, stop
from search_worker.index import IndexMismatchError, LoadedIndex, current_version
from tests.conftest import ROOT, Stack, read_events
from tests.helpers import start_gateway, wait_until


async def test_cancel_stops_the_worker_within_a_second(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/searches", json={"query": "serverless web application with a database"})).json()
    events: list[tuple[str, str, dict]] = []
    async with client.stream("GET", created["events_url"]) as response:
        cancelled_at = None
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                events.append(("", event, json.loads(line[5:])))
                if event == "token" and cancelled_at is None:
                    cancelled_at = time.monotonic()
                    r = await client.post(f"/api/searches/{created['search_id']}/cancel")
                    assert r.status_code == 202
                if event in ("done", "error"):
                    break
    assert events[-1][1] == "error" and events[-1][2]["reason"] == "cancelled"
    assert cancelled_at is not None and time.monotonic() - cancelled_at < 1.0
    tokens = [e for e in events if e[1] == "token"]
    assert len(tokens) < 10  # it stopped early, not after the whole answer


async def test_a_client_that_disconnects_does_not_cancel_generation(client: httpx.AsyncClient, redis: Redis) -> None:
    created = (await client.post("/api/searches", json={"query": "video on demand streaming"})).json()
    first = await read_events(client, created["events_url"], stop_after=1)  # read sources, then hang up
    assert first[0][1] == "sources"
    # With nobody listening, the worker still writes the whole answer: its stream ends with `done`.
    key = events_key(created["search_id"])
    entries = await wait_until(lambda: redis.xrange(key), lambda e: bool(e) and e[-1][1][b"event"] == b"done")
    assert entries[-1][1][b"event"] == b"done"
    full = await read_events(client, created["events_url"])
    assert full[-1][1] == "done"


async def test_idle_streams_get_comment_heartbeats(stack: Stack) -> None:
    port = free_port()
    valkey = start_valkey(port, stack.root / f"valkey-hb-{port}", appendonly=False)
    base = start_gateway(stack, "gateway-hb", {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "HEARTBEAT_S": "0.5"})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            created = (await http.post("/api/searches", json={"query": "no worker will take this"})).json()
            comments = 0
            async with http.stream("GET", created["events_url"]) as response:
                started = time.monotonic()
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        comments += 1
                    if comments >= 2 or time.monotonic() - started > 10:
                        break
            assert comments >= 2
    finally:
        stack.stop("gateway-hb")
        stop(valkey)


async def test_pro_and_registered_searches_do_not_wait_behind_anonymous_ones(
    client: httpx.AsyncClient, stack: Stack, redis: Redis
) -> None:
    from tests.helpers import register, token_for

    _, headers = await register(client)
    token = await token_for(client, headers)
    stack.stop("worker-1")  # let a queue build up
    try:
        anonymous = []
        for n in range(3):
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as fresh:
                anonymous.append((await fresh.post("/api/searches", json={"query": f"anonymous {n}"})).json())
        registered = (
            await client.post(
                "/api/searches", json={"query": "registered"}, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        queue = await redis.zrange(QUEUE_NAME, 0, -1)
        assert queue[0].decode() == job_id(registered["search_id"])
    finally:
        stack.start_worker()
    done = await read_events(client, registered["events_url"])
    assert done[-1][1] == "done"


def test_an_index_built_by_another_embedder_is_refused(stack: Stack) -> None:
    version = current_version(stack.settings.index_dir)
    assert version is not None
    with pytest.raises(IndexMismatchError, match="EMBEDDER=titan"):
        LoadedIndex(stack.root / "index" / version, "titan")
    result = subprocess.run(
        [sys.executable, "-m", "search_worker.main"],
        env={**stack.env, "EMBEDDER": "titan"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "rebuild it with `make index`" in result.stderr


@pytest.mark.slow
async def test_workers_switch_to_a_new_index_version_between_jobs(
    client: httpx.AsyncClient, stack: Stack, redis: Redis
) -> None:
    before = current_version(stack.settings.index_dir)
    # Versions are named by the second: wait for the clock to reach the next one.
    started = int(time.time())
    await wait_until(lambda: asyncio.sleep(0, int(time.time())), lambda now: now > started, timeout_s=2)
    built = subprocess.run(
        [sys.executable, "-m", "search_worker.index", "build"],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    after = current_version(stack.settings.index_dir)
    assert after and after != before
    created = (await client.post("/api/searches", json={"query": "image resizing"})).json()
    events = await read_events(client, created["events_url"])
    assert events[-1][1] == "done"
    deadline = time.monotonic() + 5
    reported: set[str] = set()
    while time.monotonic() < deadline:
        workers = await redis.zrange("search:workers", 0, -1)
        reported = {(await redis.get(f"search:workers:index:{w.decode()}") or b"").decode() for w in workers}
        if after in reported:
            break
        await asyncio.sleep(0.2)
    assert after in reported
