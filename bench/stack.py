"""The benchmarks' own system: valkey, moto's DynamoDB (tables created) and a gateway on free ports,
stopped again on exit. Search workers are started by each benchmark as it needs them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev.servers import free_port, start_dynamodb, start_valkey, stop, wait_for_port  # noqa: E402


def record(name: str, figures: dict[str, object]) -> None:
    """Keep a benchmark's figures in var/bench/<name>.json (with the load average at the time)."""
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    figures = {**figures, "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count()}
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class BenchStack:
    root: Path
    env: dict[str, str]
    base_url: str
    redis_url: str
    gateway: subprocess.Popen[bytes]

    def start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "search_worker.main"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@contextlib.contextmanager
def bench_stack(
    extra_env: dict[str, str] | None = None, *, gateway_workers: int = 1, build_index: bool = False
) -> Iterator[BenchStack]:
    root = Path(tempfile.mkdtemp(prefix="sf-bench-"))
    redis_port, dynamodb_port, api_port = free_port(), free_port(), free_port()
    valkey = start_valkey(redis_port, root / "redis", appendonly=False)
    moto = start_dynamodb(dynamodb_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "API_PORT": str(api_port),
        "REDIS_URL": redis_url,
        "DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{dynamodb_port}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "DEV_MAILBOX": "true",
        "MAIL_DIR": str(root / "mail"),
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    gateway = None
    try:
        subprocess.run([sys.executable, "-m", "api.bootstrap"], env=env, cwd=ROOT, check=True)
        if build_index:
            subprocess.run(
                [sys.executable, "-m", "search_worker.index", "build", "--if-missing"], env=env, cwd=ROOT, check=True
            )
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.serve",
                "--port",
                str(api_port),
                "--workers",
                str(gateway_workers),
            ],
            env=env,
            cwd=ROOT,
        )
        wait_for_port(api_port, 60, process=gateway)
        yield BenchStack(root, env, f"http://127.0.0.1:{api_port}", redis_url, gateway)
    finally:
        if gateway is not None:
            stop(gateway)
        stop(moto)
        stop(valkey)
