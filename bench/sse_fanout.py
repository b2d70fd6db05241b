"""SSE fan-out from one gateway process: N concurrent streams × 50 events 20 ms apart (as LIMITS.md),
written straight into the searches' Redis Streams, relayed by the gateway, read by several client
processes. Prints the gateway's memory before and during, time to first event, and event lag.

Each stream belongs to an anonymous visitor (a cookie minted with the gateway's secret), eight to a
visitor, the per-caller cap. Usage: python bench/sse_fanout.py [--streams 500] [--client-processes 4]
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.stack import BenchStack, bench_stack, cpu_s, record
from core.search_sessions import MAX_STREAMS_PER_CALLER
from core.settings import DEV_SECRET
from core.streams import events_key, meta_key

EVENTS = 50
GAP_S = 0.02


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


async def own_streams(redis_url: str, count: int) -> list[tuple[str, str]]:
    """`count` unfinished searches, eight to an anonymous visitor: (visitor's cookie, search id) pairs."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    visitors = [mint_anon_id(DEV_SECRET) for _ in range(0, count, MAX_STREAMS_PER_CALLER)]
    owned = [(visitors[n // MAX_STREAMS_PER_CALLER], search_id) for n, search_id in enumerate(ids)]
    redis = Redis.from_url(redis_url)
    async with redis.pipeline(transaction=False) as pipe:
        for (anon_id, _), search_id in owned:
            pipe.hset(meta_key(search_id), mapping={"owner": f"anon:{anon_id}"})
        await pipe.execute()
    await redis.aclose()
    return [(cookie, search_id) for (_, cookie), search_id in owned]


def run_once(system: BenchStack, streams: int, client_processes: int) -> dict[str, float]:
    pairs = asyncio.run(own_streams(system.redis_url, streams))
    idle = rss_mb(system.gateway.pid)
    chunks = [pairs[i::client_processes] for i in range(client_processes)]
    started = time.time()
    with ProcessPoolExecutor(client_processes) as pool:
        futures = [pool.submit(read_streams, system.base_url, chunk) for chunk in chunks]
        time.sleep(2.0)  # let every stream connect
        during = rss_mb(system.gateway.pid)
        cpu_before = cpu_s(system.gateway.pid)
        asyncio.run(write_events(system.redis_url, [search_id for _, search_id in pairs], time.time()))
        results = [r for f in futures for r in f.result()]
        gateway_cpu = cpu_s(system.gateway.pid) - cpu_before
    firsts = sorted(r[0] * 1000 for r in results)
    lags = sorted(r[1] * 1000 for r in results)
    return {
        "complete": sum(r[2] == EVENTS for r in results),
        "seconds": time.time() - started,
        "kb_per_stream": (during - idle) * 1024 / streams,
        "first_p50_ms": firsts[len(firsts) // 2],
        "first_p99_ms": firsts[int(len(firsts) * 0.99)],
        "lag_p50_ms": lags[len(lags) // 2],
        "lag_p99_ms": lags[int(len(lags) * 0.99)],
        "gateway_us_per_event": gateway_cpu / (EVENTS * streams) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with bench_stack() as system:
        httpx.get(f"{system.base_url}/health")
        runs = [run_once(system, args.streams, args.client_processes) for _ in range(args.runs)]
    print(
        f"{args.streams} streams × {EVENTS} events {GAP_S * 1000:.0f} ms apart, one gateway process (one "
        f"multiplexed XREAD), {args.client_processes} client processes; {args.runs} runs"
    )
    for n, run in enumerate(runs, 1):
        print(
            f"  run {n}: {run['complete']:.0f}/{args.streams} complete in {run['seconds']:.1f} s, "
            f"+{run['kb_per_stream']:.0f} KB per stream, first event p50 {run['first_p50_ms']:.0f} ms, "
            f"event lag p50 {run['lag_p50_ms']:.0f} / p99 {run['lag_p99_ms']:.0f} ms, "
            f"gateway {run['gateway_us_per_event']:.0f} µs per event"
        )
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(
        f"median: event lag p50 {median['lag_p50_ms']:.0f} ms (target ≤ 40; LIMITS, one XREAD per stream: "
        f"31 ms, ratio {median['lag_p50_ms'] / 31:.2f}), p99 {median['lag_p99_ms']:.0f} ms (LIMITS 76)"
    )
    record("sse_fanout", {"streams": args.streams, "runs": runs, "median": median})


if __name__ == "__main__":
    main()
