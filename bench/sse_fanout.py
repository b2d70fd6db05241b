"""SSE fan-out from one gateway process: N concurrent streams × 50 events 20 ms apart (as LIMITS.md),
written straight into the searches' Redis Streams, relayed by the gateway, read by several client
processes. Prints the gateway's memory before and during, time to first event, and event lag.

Usage: python bench/sse_fanout.py [--streams 500] [--client-processes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
from redis.asyncio import Redis

from bench.stack import bench_stack
from core.streams import events_key, meta_key

EVENTS = 50
GAP_S = 0.02


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_streams(base: str, ids: list[str]) -> list[tuple[float, float, int]]:
    """(first event's delay behind its write, mean delay of all events, events) per stream."""

    async def one(http: httpx.AsyncClient, search_id: str) -> tuple[float, float, int]:
        first = 0.0
        lags = []
        count = 0
        async with http.stream("GET", f"/api/searches/{search_id}/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    lag = time.time() - json.loads(line[5:])["written_at"]
                    count += 1
                    if count == 1:
                        first = lag
                    lags.append(lag)
                if count >= EVENTS:
                    break
        return first, statistics.mean(lags) if lags else float("inf"), count

    async def run() -> list[tuple[float, float, int]]:
        limits = httpx.Limits(max_connections=len(ids) + 10, max_keepalive_connections=len(ids) + 10)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
            return list(await asyncio.gather(*[one(http, i) for i in ids]))

    return asyncio.run(run())


async def write_events(redis_url: str, ids: list[str], start_at: float) -> None:
    redis = Redis.from_url(redis_url)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    for n in range(EVENTS):
        async with redis.pipeline(transaction=False) as pipe:
            for search_id in ids:
                name = "done" if n == EVENTS - 1 else "token"
                data = json.dumps({"text": f"piece {n} ", "written_at": time.time()})
                pipe.xadd(events_key(search_id), {"event": name, "data": data})
            await pipe.execute()
        await asyncio.sleep(GAP_S)
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--client-processes", type=int, default=4)
    args = parser.parse_args()
    with bench_stack() as system:
        base, redis_url, gateway = system.base_url, system.redis_url, system.gateway
        ids = [uuid.uuid4().hex for _ in range(args.streams)]

        async def prepare() -> None:
            redis = Redis.from_url(redis_url)
            async with redis.pipeline(transaction=False) as pipe:
                for search_id in ids:
                    pipe.hset(meta_key(search_id), mapping={"owner": "bench"})
                await pipe.execute()
            await redis.aclose()

        asyncio.run(prepare())
        httpx.get(f"{base}/health")
        idle = rss_mb(gateway.pid)
        chunks = [ids[i :: args.client_processes] for i in range(args.client_processes)]
        started = time.time()
        with ProcessPoolExecutor(args.client_processes) as pool:
            futures = [pool.submit(read_streams, base, chunk) for chunk in chunks]
            time.sleep(2.0)  # let every stream connect and block in XREAD
            during = rss_mb(gateway.pid)
            asyncio.run(write_events(redis_url, ids, time.time()))
            results = [r for f in futures for r in f.result()]
        elapsed = time.time() - started
        firsts = sorted(r[0] for r in results)
        lags = sorted(r[1] * 1000 for r in results)
        complete = sum(r[2] == EVENTS for r in results)
        print(
            f"{args.streams} streams × {EVENTS} events {GAP_S * 1000:.0f} ms apart, one gateway process, "
            f"{args.client_processes} client processes"
        )
        print(f"streams complete: {complete}/{len(results)} in {elapsed:.1f} s")
        print(
            f"gateway RSS: idle {idle:.0f} MB, with all streams open {during:.0f} MB "
            f"(+{(during - idle) * 1024 / args.streams:.0f} KB per stream)"
        )
        print(
            f"first event, write to receipt: p50 {firsts[len(firsts) // 2] * 1000:.0f} ms  "
            f"p99 {firsts[int(len(firsts) * 0.99)] * 1000:.0f} ms"
        )
        print(
            f"event lag behind its write: p50 {lags[len(lags) // 2]:.0f} ms  p99 {lags[int(len(lags) * 0.99)]:.0f} ms"
        )


if __name__ == "__main__":
    main()
