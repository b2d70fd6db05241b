"""Memory of N search workers that map the same index file: RSS and PSS (shared pages split between the
processes that map them) for 1 worker and for N.

Usage: python bench/worker_memory.py [--workers 4]   (uses the index under INDEX_DIR; `make index` first)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis

from dev.servers import free_port, start_valkey, stop


def memory_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def run(n: int, redis_url: str) -> tuple[float, float]:
    env = {**os.environ, "REDIS_URL": redis_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "search_worker.main"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    redis = Redis.from_url(redis_url)
    try:
        deadline = time.time() + 60
        while redis.zcard("search:workers") < n and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        totals = [memory_mb(p.pid) for p in procs]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)
    finally:
        for p in procs:
            stop(p)
        redis.delete("search:workers")
        redis.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    valkey = start_valkey(port, Path(tempfile.mkdtemp()), appendonly=False)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        one_rss, one_pss = run(1, url)
        n_rss, n_pss = run(args.workers, url)
    finally:
        stop(valkey)
    print(f"1 worker:  RSS {one_rss:6.0f} MB  PSS {one_pss:6.0f} MB")
    print(
        f"{args.workers} workers: RSS {n_rss:6.0f} MB  PSS {n_pss:6.0f} MB  "
        f"(PSS per worker {n_pss / args.workers:.0f} MB; RSS counts shared pages in every process)"
    )


if __name__ == "__main__":
    main()
