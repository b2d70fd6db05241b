"""Quota throughput: validate-solution-token against GET /health at concurrency 32 (wrk -t2 -c32), and the
raw consume script against PING on the same server (redis-py asyncio, 32 concurrent tasks).

Starts its own valkey, local DynamoDB and gateway on free ports. Needs `wrk` (`make wrk` installs it). /health
and validate alternate for --runs rounds on this shared machine; the ratio is the median of the rounds' ratios.
Usage: python bench/quota.py [--seconds 10] [--runs 3] [--gateway-workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import statistics

import httpx
from redis.asyncio import Redis

from bench.stack import bench_stack, record
from quota import keys
from quota.engine import LUA_DIR

WRK_POST = """wrk.method = "POST"
wrk.body = '{"token": "%s", "solution_id": "aws-solution-finder"}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, seconds: int, script: Path | None = None) -> tuple[float, float, float]:
    args = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url]
    if script:
        args[1:1] = ["-s", str(script)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx responses")
    return rps, ms("50%"), ms("99%")


async def redis_ops(url: str, seconds: float) -> tuple[float, float]:
    redis = Redis.from_url(url)
    consume = redis.register_script((LUA_DIR / "consume.lua").read_text())

    async def loop(call) -> int:  # type: ignore[no-untyped-def]
        n = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await call()
            n += 1
        return n

    async def rate(call) -> float:  # type: ignore[no-untyped-def]
        counts = await asyncio.gather(*[loop(call) for _ in range(32)])
        return sum(counts) / seconds

    subject = "u:bench:sol"
    await redis.hset(keys.counter(subject), mapping={"period": "x", "consumed": 0, "refunded": 0})
    ping = await rate(redis.ping)
    args = [-1, "day", 0, 0, 60, subject, "sol", 3600, 1000]
    evalsha = await rate(lambda: consume(keys=[keys.counter(subject), keys.usage_log(subject)], args=args))
    await redis.aclose()
    return ping, evalsha


async def make_token(base: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        csrf = (await http.get("/api/auth/csrf")).json()["csrf_token"]
        headers = {"X-CSRFToken": csrf}
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        await http.post("/api/auth/register", json={"email": email, "password": "benchmark-pass"}, headers=headers)
        mail = (await http.get("/dev/mailbox/messages", params={"to": email})).json()
        code = mail[0]["text"].split("code is ")[1][:6]
        await http.post("/api/auth/verify", json={"email": email, "code": code})
        r = await http.post(
            "/api/generate-solution-token", json={"solution_id": "aws-solution-finder"}, headers=headers
        )
        return str(r.json()["token"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gateway-workers", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: make wrk (apt-get install wrk)")
    with bench_stack({"REGISTERED_DAILY_LIMIT": "1000000000"}, gateway_workers=args.gateway_workers) as system:
        base, env, root = system.base_url, system.env, system.root
        token = asyncio.run(make_token(base))
        script = root / "validate.lua"
        script.write_text(WRK_POST % token)
        wrk(f"{base}/health", 2)  # warm up
        wrk(f"{base}/api/validate-solution-token", 2, script)
        rounds = []
        for _ in range(args.runs):
            health = wrk(f"{base}/health", args.seconds)
            validate = wrk(f"{base}/api/validate-solution-token", args.seconds, script)
            rounds.append((health, validate))
        ping, evalsha = asyncio.run(redis_ops(env["REDIS_URL"], 5))
    print(
        f"gateway: uvicorn --workers {args.gateway_workers}; load: wrk -t2 -c32 -d{args.seconds}s, {args.runs} rounds"
    )
    for health, validate in rounds:
        print(
            f"  /health {health[0]:7.0f} req/s (p50 {health[1]:.2f} / p99 {health[2]:.2f} ms)   validate "
            f"{validate[0]:7.0f} req/s (p50 {validate[1]:.2f} / p99 {validate[2]:.2f} ms)   ratio "
            f"{validate[0] / health[0]:.2f}"
        )
    ratio = statistics.median(v[0] / h[0] for h, v in rounds)
    p99 = statistics.median(v[2] for _, v in rounds)
    print(f"validate / health: median ratio {ratio:.2f} (target ≥ 0.7; LIMITS' minimal validate 0.34)")
    print(f"validate p99: median {p99:.2f} ms (target ≤ 10; LIMITS' minimal validate 8.3)")
    print(
        f"redis-py, 32 tasks: PING {ping:.0f} ops/s, consume EVALSHA {evalsha:.0f} ops/s (ratio {evalsha / ping:.2f})"
    )
    record(
        "quota",
        {
            "gateway_workers": args.gateway_workers,
            "rounds": [{"health": h, "validate": v} for h, v in rounds],
            "median_ratio": ratio,
            "median_validate_p99_ms": p99,
        },
    )


if __name__ == "__main__":
    main()
