"""SSE fan-out from one gateway process: N concurrent streams × 50 events 20 ms apart (as LIMITS.md),
written straight into the searches' Redis Streams, relayed by the gateway, read by several client
processes. Prints the gateway's memory before and during, time to first event, and event lag.

Each stream belongs to an anonymous visitor (a cookie minted with the gateway's secret), eight to a
visitor, the per-caller cap. Usage: python bench/sse_fanout.py [--streams 500] [--client-processes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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

from api.identity import ANON_COOKIE, mint_anon_id
from bench.stack import bench_stack
from core.search_sessions import MAX_STREAMS_PER_CALLER
from core.settings import DEV_SECRET
from core.streams import events_key, meta_key

EVENTS = 50
GAP_S = 0.02


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


WRITTEN_AT = re.compile(rb'"written_at": ([0-9.]+)')


def read_streams(base: str, owned: list[tuple[str, str]]) -> list[tuple[float, float, int]]:
    """(first event's delay behind its write, mean delay of all events, events) per (cookie, search id).

    A raw socket per stream and a regular expression over what arrives: an HTTP client library that
    parses every line costs more than the gateway does to send it, and then measures itself."""
    host, port = base.removeprefix("http://").split(":")

    async def one(cookie: str, search_id: str) -> tuple[float, float, int]:
        reader, writer = await asyncio.open_connection(host, int(port))
        request = (
            f"GET /api/searches/{search_id}/events HTTP/1.1\r\nHost: {host}\r\nCookie: {ANON_COOKIE}={cookie}\r\n\r\n"
        )
        writer.write(request.encode())
        lags: list[float] = []
        pending = b""
        while len(lags) < EVENTS:
            chunk = await reader.read(65536)
            if not chunk:
                break
            now = time.time()
            pending += chunk
            found = list(WRITTEN_AT.finditer(pending))
            lags.extend(now - float(m.group(1)) for m in found)
            if found:
                pending = pending[found[-1].end() :]
        writer.close()
        first = lags[0] if lags else float("inf")
        return first, statistics.mean(lags) if lags else float("inf"), len(lags)

    async def run() -> list[tuple[float, float, int]]:
        return list(await asyncio.gather(*[one(cookie, i) for cookie, i in owned]))

    return asyncio.run(run())


# One script call per tick appends to every stream, stamped with the server's clock as it writes: a
# Python pipeline of 500 XADDs took ~15 ms of the writer's CPU per tick and put that into the lag.
WRITE_TICK = """
local t = redis.call('TIME')
local data = '{"text": "' .. ARGV[2] .. '", "written_at": ' .. t[1] .. '.' .. string.format('%06d', t[2]) .. '}'
for _, key in ipairs(KEYS) do
  redis.call('XADD', key, '*', 'event', ARGV[1], 'data', data)
end
return #KEYS
"""


async def write_events(redis_url: str, ids: list[str], start_at: float) -> None:
    redis = Redis.from_url(redis_url)
    tick = redis.register_script(WRITE_TICK)
    keys = [events_key(search_id) for search_id in ids]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    next_at = time.monotonic()
    for n in range(EVENTS):
        await tick(keys=keys, args=["done" if n == EVENTS - 1 else "token", f"piece {n} "])
        next_at += GAP_S
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--client-processes", type=int, default=4)
    args = parser.parse_args()
    with bench_stack() as system:
        base, redis_url, gateway = system.base_url, system.redis_url, system.gateway
        ids = [uuid.uuid4().hex for _ in range(args.streams)]
        visitors = [mint_anon_id(DEV_SECRET) for _ in range(0, len(ids), MAX_STREAMS_PER_CALLER)]
        owned = [(visitors[n // MAX_STREAMS_PER_CALLER], search_id) for n, search_id in enumerate(ids)]

        async def prepare() -> None:
            redis = Redis.from_url(redis_url)
            async with redis.pipeline(transaction=False) as pipe:
                for (anon_id, _), search_id in owned:
                    pipe.hset(meta_key(search_id), mapping={"owner": f"anon:{anon_id}"})
                await pipe.execute()
            await redis.aclose()

        asyncio.run(prepare())
        httpx.get(f"{base}/health")
        idle = rss_mb(gateway.pid)
        pairs = [(cookie, search_id) for (_, cookie), search_id in owned]
        chunks = [pairs[i :: args.client_processes] for i in range(args.client_processes)]
        started = time.time()
        with ProcessPoolExecutor(args.client_processes) as pool:
            futures = [pool.submit(read_streams, base, chunk) for chunk in chunks]
            time.sleep(2.0)  # let every stream connect and block in XREAD
            during = rss_mb(gateway.pid)
            cpu_before = cpu_s(gateway.pid)
            asyncio.run(write_events(redis_url, ids, time.time()))
            results = [r for f in futures for r in f.result()]
            gateway_cpu = cpu_s(gateway.pid) - cpu_before
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
        per_event_us = gateway_cpu / (EVENTS * len(ids)) * 1e6
        print(f"gateway CPU while relaying: {gateway_cpu:.2f} s, {per_event_us:.0f} µs per event")
        print(
            f"event lag behind its write: p50 {lags[len(lags) // 2]:.0f} ms  p99 {lags[int(len(lags) * 0.99)]:.0f} ms"
        )


if __name__ == "__main__":
    main()
