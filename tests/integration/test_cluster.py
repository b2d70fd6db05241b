"""A 3-node Valkey cluster started from the bundled binary: the quota scripts never cross a slot, and the
whole search path (gateway, arq queue, worker, event stream, refunds, stats) runs on it end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from core.streams import ABORT_KEY, QUEUE_NAME, job_id
from dev.servers import free_port, start_valkey, stop
from quota.engine import QuotaEngine
from quota.flusher import Flusher
from quota.store import UsageStore
from tests.conftest import Stack, read_events
from tests.helpers import register, token_for, wait_until
from tests.integration.test_quota_engine import store  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
async def cluster(stack: Stack) -> AsyncIterator[RedisCluster]:
    root: Path = stack.root / "cluster"
    ports = [free_port() for _ in range(3)]
    buses = [free_port() for _ in range(3)]
    processes = [
        start_valkey(
            port,
            root / str(port),
            appendonly=False,
            extra=[
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(bus),
                "--cluster-config-file",
                str(root / f"nodes-{port}.conf"),
            ],
        )
        for port, bus in zip(ports, buses, strict=True)
    ]
    nodes = [Redis(port=port) for port in ports]
    try:
        for node, (first, last) in zip(nodes, [(0, 5460), (5461, 10922), (10923, 16383)], strict=True):
            await node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for node in nodes[1:]:
            await node.execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0], buses[0])
        for _ in range(200):
            info = await nodes[0].execute_command("CLUSTER", "INFO")
            slots = await nodes[0].execute_command("CLUSTER", "SLOTS")
            if b"cluster_state:ok" in info and len(slots) == 3:
                break
            await asyncio.sleep(0.05)
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        await client.initialize()
        yield client
        await client.aclose()
    finally:
        for node in nodes:
            await node.aclose()
        for process in processes:
            stop(process)


async def test_quota_scripts_and_flusher_work_on_a_cluster(cluster: RedisCluster, store: UsageStore) -> None:  # noqa: F811
    engine = QuotaEngine(cluster, store, timezone="Asia/Kolkata")  # type: ignore[arg-type]
    subjects = [f"u:cluster-{n}:aws-solution-finder" for n in range(12)]
    decisions = await asyncio.gather(
        *[engine.consume(s, "aws-solution-finder", limit=3, window="day") for s in subjects for _ in range(5)]
    )
    assert sum(d.allowed for d in decisions) == 12 * 3
    first = decisions[0]
    again = await engine.consume(
        subjects[0], "aws-solution-finder", limit=3, window="day", idempotency_key="k1", check_only=False
    )
    assert not again.allowed
    assert await engine.refund(subjects[0], "aws-solution-finder", first.period, "search-1")
    retry = await engine.consume(subjects[0], "aws-solution-finder", limit=3, window="day", idempotency_key="k2")
    replay = await engine.consume(subjects[0], "aws-solution-finder", limit=3, window="day", idempotency_key="k2")
    assert retry.allowed and replay.allowed and retry.used == replay.used == 3

    flusher = Flusher(cluster, store, engine)  # type: ignore[arg-type]
    written = await flusher.run_once()
    assert written == 12 * 3 + 2  # 36 admitted uses, one refund, one more use
    for subject in subjects[1:]:
        assert await store.get(subject, first.period) == (3, 0)
    assert await store.get(subjects[0], first.period) == (4, 1)


@pytest.fixture(scope="module")
async def cluster_stack(stack: Stack, cluster: RedisCluster) -> AsyncIterator[Stack]:
    """A gateway and a worker of their own, on the cluster (REDIS_CLUSTER=true, REDIS_URL names one node)."""
    api_port = free_port()
    node = cluster.get_nodes()[-1]
    root = stack.root / "on-cluster"
    root.mkdir()
    env = {
        **stack.env,
        "REDIS_URL": f"redis://{node.host}:{node.port}/0",
        "REDIS_CLUSTER": "true",
        "API_PORT": str(api_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
    }
    on_cluster = Stack(root, env)
    on_cluster.start_worker()
    on_cluster.start_gateway()
    async with httpx.AsyncClient(base_url=on_cluster.base_url, timeout=5) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, on_cluster.log("worker-1")[-2000:]
            await asyncio.sleep(0.1)
    yield on_cluster
    for name in list(on_cluster.processes):
        on_cluster.stop(name)


async def test_a_search_runs_end_to_end_on_the_cluster(cluster_stack: Stack, cluster: RedisCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster_stack.base_url, timeout=30) as http:
        email, headers = await register(http)
        token = await token_for(http, headers)
        assert (await http.post("/api/auth/logout", headers=headers)).status_code == 204
        login = await http.post(
            "/api/auth/login", json={"email": email, "password": "correct horse 1"}, headers=headers
        )
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {token}"}
        session = (await http.post("/api/searches", json={"query": "resize images on the fly"}, headers=headers)).json()
        registered = (await http.post("/api/searches", json={"query": "schedule instances"}, headers=bearer)).json()
        streams = [await read_events(http, session["events_url"])]
        streams.append(await read_events(http, registered["events_url"], headers=bearer))
        for events in streams:
            assert events[0][1] == "sources" and events[-1][1] == "done", events[-1]
            assert any(event == "token" for _, event, _ in events)
        resumed = await read_events(http, session["events_url"], headers={"Last-Event-ID": streams[0][0][0]})
        assert resumed[-1][1] == "done" and len(resumed) == len(streams[0]) - 1
        metrics = (await http.get("/metrics")).text
        assert "\nsf_search_queue_depth 0\n" in metrics
    async with httpx.AsyncClient(base_url=cluster_stack.base_url, timeout=30) as visitor:
        anonymous = (await visitor.post("/api/searches", json={"query": "stream video on demand"})).json()
        assert anonymous["quota"]["access_tier"] == "anonymous"
        assert (await read_events(visitor, anonymous["events_url"]))[-1][1] == "done"
    # arq takes a finished job off its queue just after the job's last event: wait for that.
    assert await wait_until(lambda: cluster.zcard(QUEUE_NAME), lambda n: n == 0) == 0
    slots = {cluster.keyslot(key) for key in (QUEUE_NAME, f"arq:job:{job_id('x')}", ABORT_KEY)}
    assert len(slots) == 1
    for name in cluster_stack.processes:
        assert "Traceback" not in cluster_stack.log(name), cluster_stack.log(name)[-3000:]
