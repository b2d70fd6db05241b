"""Is anything CPU-bound left on an event loop? /health latency while 30 sign-ins (argon2) and 8 searches
(embedding, scoring, the answer's stream) run, against /health on the idle stack.

A prober process asks /health one request at a time; a load process signs 30 accounts in at once (30
logins, each from an address of its own through X-Forwarded-For, so the per-address sign-in limit does
not refuse them), up to four waves, and keeps 8 searches in flight (POST, then the stream read to `done`),
for --seconds.
Starts its own valkey, local DynamoDB, one gateway process and two workers (make up's default).
Usage: python bench/loop_health.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from bench.stack import bench_stack, record
from dev.servers import stop

PASSWORD = "benchmark-pass-1"
QUERIES = [json.loads(line)["query"] for line in (ROOT / "data/eval/eval_dev.jsonl").read_text().splitlines()]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))] if ordered else float("nan")


def probe(base: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    latencies = []
    with httpx.Client(base_url=base, timeout=10) as http:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            http.get("/health").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)
    out.put(latencies)


def probed(base: str, seconds: float) -> tuple[multiprocessing.Process, multiprocessing.Queue]:  # type: ignore[type-arg]
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    process = multiprocessing.Process(target=probe, args=(base, seconds, queue))
    process.start()
    return process, queue


def address(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n}"}


async def register(http: httpx.AsyncClient, n: int) -> str:
    email = f"loop-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"X-CSRFToken": (await http.get("/api/auth/csrf")).json()["csrf_token"], **address(n)}
    r = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD}, headers=headers)
    r.raise_for_status()
    return email


async def login(base: str, email: str, n: int) -> bool:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        headers = {"X-CSRFToken": (await http.get("/api/auth/csrf")).json()["csrf_token"], **address(n)}
        r = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
        return r.status_code == 200


async def search(base: str, query: str) -> bool:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (await http.post("/api/searches", json={"query": query})).json()
        async with http.stream("GET", created["events_url"]) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: done"):
                    return True
                if line.startswith("event: error"):
                    return False
    return False


async def load(base: str, emails: list[str], seconds: float) -> tuple[int, int]:
    deadline = time.monotonic() + seconds
    logins = searches = 0

    async def sign_ins() -> None:
        nonlocal logins
        for _ in range(4):  # an account may fail five times in 15 minutes; every attempt counts
            if time.monotonic() >= deadline:
                break
            results = await asyncio.gather(*[login(base, e, n) for n, e in enumerate(emails)])  # 30 at once
            logins += sum(results)

    async def searcher(n: int) -> None:
        nonlocal searches
        while time.monotonic() < deadline:
            answered = await search(base, QUERIES[(n * 7 + searches) % len(QUERIES)])
            searches += answered  # after the await: `x += await f()` would add to a stale x

    await asyncio.gather(sign_ins(), *[searcher(n) for n in range(8)])
    return logins, searches


async def run(seconds: float) -> None:
    limits = {"ANONYMOUS_LIMIT": "100000", "ANONYMOUS_IP_DAILY_LIMIT": "100000", "TRUSTED_PROXIES": "127.0.0.1"}
    with bench_stack(limits, build_index=True) as system:
        workers = [system.start_worker(), system.start_worker()]
        base = system.base_url
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while (await http.get("/ready")).status_code != 200:
                await asyncio.sleep(0.2)
            emails = [await register(http, n) for n in range(30)]
        await search(base, QUERIES[0])
        process, queue = probed(base, seconds)
        idle = queue.get()
        process.join()
        process, queue = probed(base, seconds)
        logins, searches = await load(base, emails, seconds)
        loaded = queue.get()
        process.join()
        for worker in workers:
            stop(worker)
    print(f"/health, one request at a time, {seconds:.0f} s each; one gateway process, two workers")
    print(f"  idle stack:  p50 {pct(idle, 0.5):5.2f} ms  p99 {pct(idle, 0.99):6.2f} ms  ({len(idle)} requests)")
    print(
        f"  under load:  p50 {pct(loaded, 0.5):5.2f} ms  p99 {pct(loaded, 0.99):6.2f} ms  ({len(loaded)} requests; "
        f"{logins} logins and {searches} searches completed, 30 and 8 at a time)"
    )
    print("  target: p99 ≤ 10 ms under load; LIMITS' /health p99 at concurrency 32: 3.1 ms")
    record(
        "loop_health",
        {
            "seconds": seconds,
            "idle_p50_ms": pct(idle, 0.5),
            "idle_p99_ms": pct(idle, 0.99),
            "loaded_p50_ms": pct(loaded, 0.5),
            "loaded_p99_ms": pct(loaded, 0.99),
            "logins": logins,
            "searches": searches,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
