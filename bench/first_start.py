"""The first `make up` on a fresh checkout: how long from starting it, and from its gateway listening, to a
search answered to `done`. Runs `python -m dev.supervisor` in an empty folder (its own var/, free ports),
so every table, the index and every process start from nothing.

Usage: python bench/first_start.py [--without-cache]  (the flag builds the index as before the shipped
embedding cache, embedding every text)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from bench.stack import record
from dev.servers import free_port


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def first_answer(base: str, deadline: float) -> float:
    """Seconds on the monotonic clock when a search first ends in `done`."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while time.monotonic() < deadline:
            try:
                created = await http.post("/api/searches", json={"query": "resize images on the fly"})
                if created.status_code == 202:
                    async with http.stream("GET", created.json()["events_url"]) as stream:
                        async for line in stream.aiter_lines():
                            if line.startswith("event: done"):
                                return time.monotonic()
                            if line.startswith("event: error"):
                                break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("no search answered")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--without-cache", action="store_true")
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sf-first-start-"))
    (folder / "data").symlink_to(ROOT / "data")
    api_port = free_port()
    env = {
        **os.environ,
        "REDIS_PORT": str(free_port()),
        "DYNAMODB_PORT": str(free_port()),
        "SIMULATOR_PORT": str(free_port()),
        "API_PORT": str(api_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "LOG_LEVEL": "WARNING",
    }
    if args.without_cache:
        env["EMBEDDING_CACHE_PATH"] = str(folder / "no-cache.npz")
    started = time.monotonic()
    with open(folder / "make-up.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dev.supervisor"], cwd=folder, env=env, stdout=log, stderr=log
        )
    try:
        while not port_open(api_port):
            if process.poll() is not None or time.monotonic() - started > args.timeout_s:
                sys.exit(f"make up did not start: see {folder / 'make-up.log'}")
            time.sleep(0.05)
        listening = time.monotonic()
        answered = asyncio.run(first_answer(f"http://127.0.0.1:{api_port}", started + args.timeout_s))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    cache = "without the embedding cache" if args.without_cache else "with the shipped embedding cache"
    print(f"first make up ({cache}), catalog of {sum(1 for _ in open(ROOT / 'data/catalog/solutions.jsonl'))}")
    print(f"  start -> gateway listening:   {listening - started:6.1f} s")
    print(f"  gateway listening -> answer:  {answered - listening:6.1f} s (target ≤ 20 s)")
    print(f"  start -> first answer:        {answered - started:6.1f} s")
    record(
        "first_start_no_cache" if args.without_cache else "first_start",
        {"to_listening_s": listening - started, "listening_to_answer_s": answered - listening},
    )


if __name__ == "__main__":
    main()
