"""Sustained searches per second through the whole system with 1, 2 and 4 search workers.

Each client loops: POST /api/searches, then read its SSE stream to `done`. The extractive answer is not
paced here (EXTRACTIVE_PIECE_DELAY_S=0), so the figure is what the machine can compute and relay.
Starts its own valkey, moto and one gateway process. Usage: python bench/search_throughput.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
from redis import Redis

from bench.stack import bench_stack
from dev.servers import stop

QUERIES = [json.loads(line)["query"] for line in (ROOT / "data/eval/eval_dev.jsonl").read_text().splitlines()]


def client(base: str, seconds: float, concurrency: int, seed: int) -> tuple[int, list[float]]:
    async def run() -> tuple[int, list[float]]:
        done = 0
        latencies: list[float] = []
        deadline = time.time() + seconds

        async def loop(n: int) -> None:
            nonlocal done
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                i = n
                while time.time() < deadline:
                    started = time.perf_counter()
                    r = await http.post("/api/searches", json={"query": QUERIES[(seed + i) % len(QUERIES)]})
                    i += 7
                    async with http.stream("GET", r.json()["events_url"]) as stream:
                        async for line in stream.aiter_lines():
                            if line.startswith("event: done") or line.startswith("event: error"):
                                break
                    done += 1
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*[loop(n) for n in range(concurrency)])
        return done, latencies

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16, help="concurrent searches in flight")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    extra = {"ANONYMOUS_LIMIT": "100000000", "ANONYMOUS_IP_DAILY_LIMIT": "100000000", "EXTRACTIVE_PIECE_DELAY_S": "0"}
    with bench_stack(extra, build_index=True) as system:
        base = system.base_url
        redis = Redis.from_url(system.redis_url)
        for n in [int(w) for w in args.workers.split(",")]:
            workers = [system.start_worker() for _ in range(n)]
            while redis.zcount("search:workers", time.time() * 1000 - 3000, "+inf") < n:
                time.sleep(0.2)
            client(base, 2, 4, 0)  # warm up
            processes = 4
            with ProcessPoolExecutor(processes) as pool:
                futures = [
                    pool.submit(client, base, args.seconds, args.clients // processes, p) for p in range(processes)
                ]
                results = [f.result() for f in futures]
            total = sum(r[0] for r in results)
            latencies = sorted(x for r in results for x in r[1])
            p50 = latencies[len(latencies) // 2] * 1000
            p95 = latencies[int(len(latencies) * 0.95)] * 1000
            print(
                f"{n} worker(s): {total / args.seconds:6.1f} searches/s  (POST to done p50 {p50:.0f} ms, "
                f"p95 {p95:.0f} ms, {args.clients} in flight)",
                flush=True,
            )
            for w in workers:
                stop(w)
            redis.delete("search:workers")
        redis.close()


if __name__ == "__main__":
    main()
