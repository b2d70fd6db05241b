"""Search latency through the whole system: POST -> first `sources` event -> `done`, p50/p95 over N searches,
against the same retrieval done in-process; the difference is what the queue hop and relay cost.

Also the idle worker's CPU: workers sleep in a blocking read until a submit wakes them, so an idle one
should cost nothing (LIMITS: 4.8 % of a core polling every 10 ms, 0 % blocked).

Starts its own valkey, local DynamoDB, one gateway and one worker on free ports.
Usage: python bench/search_latency.py [--n 50] [--poll-delay 1.0] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.stack import bench_stack, cpu_s, record  # noqa: E402
from core.settings import load_settings  # noqa: E402
from dev.servers import stop  # noqa: E402

QUERIES = [json.loads(line)["query"] for line in (ROOT / "data/eval/eval_dev.jsonl").read_text().splitlines()]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def one(http: httpx.AsyncClient, query: str, token: str | None) -> tuple[float, float, float]:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/api/searches", json={"query": query}, headers=headers)
    response.raise_for_status()
    first = done = 0.0
    queue_ms = 0.0
    async with http.stream("GET", response.json()["events_url"]) as stream:
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "sources" and not first:
                    first = time.perf_counter() - started
            elif line.startswith("data:") and event == "done":
                done = time.perf_counter() - started
                queue_ms = json.loads(line[5:])["timings_ms"]["queue_ms"]
                break
    return first * 1000, done * 1000, queue_ms


async def in_process(env: dict[str, str], n: int) -> list[float]:
    """The same retrievals in this process, one at a time, on the worker's path (its CPU pool, the two
    models at once when SCOPE_EMBED_ALONGSIDE is on) (ms)."""
    from core.cpu import create_cpu_pool
    from search_worker.embedders import create_embedder, create_scope_embedder
    from search_worker.embedding_cache import models
    from search_worker.index import open_current
    from search_worker.retrieval import create_retriever

    settings = load_settings(env)
    cpu = create_cpu_pool("search-cpu")
    embedder, scope_embedder = create_embedder(settings, executor=cpu), create_scope_embedder(settings)
    index = open_current(settings.index_dir, "minilm", *models(embedder, scope_embedder))
    assert index is not None
    retriever = create_retriever(index, embedder, settings, cpu, scope_embedder)

    local = []
    try:
        for i in range(n):
            t = time.perf_counter()
            await retriever.retrieve(QUERIES[i % len(QUERIES)], k=5)
            local.append((time.perf_counter() - t) * 1000)
    finally:
        cpu.shutdown()
    return local


async def run(n: int, poll_delay: str, idle_s: float) -> None:
    extra = {"ANONYMOUS_LIMIT": "100000", "ANONYMOUS_IP_DAILY_LIMIT": "100000", "ARQ_POLL_DELAY_S": poll_delay}
    with bench_stack(extra, build_index=True) as system:
        worker = system.start_worker()
        async with httpx.AsyncClient(base_url=system.base_url, timeout=60) as http:
            while (await http.get("/ready")).status_code != 200:
                await asyncio.sleep(0.2)
            for q in QUERIES[:3]:
                await one(http, q, None)
            await asyncio.sleep(1.0)  # the warm-up's last job is done
            before = cpu_s(worker.pid)
            await asyncio.sleep(idle_s)
            idle_percent = (cpu_s(worker.pid) - before) / idle_s * 100
            rows = [await one(http, QUERIES[i % len(QUERIES)], None) for i in range(n)]
        stop(worker)
        local = await in_process(system.env, n)
    report(n, poll_delay, idle_s, idle_percent, rows, local)


def report(
    n: int,
    poll_delay: str,
    idle_s: float,
    idle_percent: float,
    rows: list[tuple[float, float, float]],
    local: list[float],
) -> None:
    first = [r[0] for r in rows]
    done = [r[1] for r in rows]
    queue = [r[2] for r in rows]
    print(f"searches: {n}, one worker, ARQ_POLL_DELAY_S={poll_delay} (the safety net behind the wake-up)")
    print(f"idle worker CPU over {idle_s:.0f} s: {idle_percent:.2f} % of a core (target ≤ 1 %)")
    print(f"POST -> first `sources` event  p50 {pct(first, 0.5):7.1f} ms   p95 {pct(first, 0.95):7.1f} ms")
    print(f"POST -> `done`                 p50 {pct(done, 0.5):7.1f} ms   p95 {pct(done, 0.95):7.1f} ms")
    print(f"in-process embed + search      p50 {pct(local, 0.5):7.1f} ms   p95 {pct(local, 0.95):7.1f} ms")
    print(f"queue wait inside the job      p50 {pct(queue, 0.5):7.1f} ms   p95 {pct(queue, 0.95):7.1f} ms")
    overhead = statistics.median(first) - statistics.median(local)
    print(f"overhead of POST + queue hop + stream relay to first event: {overhead:.1f} ms (p50)")
    print(
        f"queue wait p50 {pct(queue, 0.5):.1f} ms against LIMITS' blocking read 0.6 ms and arq at 10 ms "
        f"polling 7.5 ms; POST -> first event p50 {pct(first, 0.5):.1f} ms (target ≤ 20)"
    )
    record(
        "search_latency",
        {
            "n": n,
            "idle_worker_cpu_percent": idle_percent,
            "first_event_p50_ms": pct(first, 0.5),
            "first_event_p95_ms": pct(first, 0.95),
            "done_p50_ms": pct(done, 0.5),
            "queue_wait_p50_ms": pct(queue, 0.5),
            "queue_wait_p95_ms": pct(queue, 0.95),
            "in_process_retrieval_p50_ms": pct(local, 0.5),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--poll-delay", default="1.0")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.poll_delay, args.idle_seconds))


if __name__ == "__main__":
    main()
