"""The quota keys on a 3-node Valkey cluster started from the bundled binary: no script crosses a slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from dev.servers import free_port, start_valkey, stop
from quota.engine import QuotaEngine
from quota.flusher import Flusher
from quota.store import UsageStore
from tests.conftest import Stack
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
