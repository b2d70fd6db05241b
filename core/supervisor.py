"""`make up`: runs the whole system in the foreground and stops every process it started on Ctrl-C/SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.localservers import start_moto, start_valkey, stop, wait_for_port
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    var = ROOT / "var"
    (var / "logs").mkdir(parents=True, exist_ok=True)
    redis_port = int(os.environ.get("REDIS_PORT", "6390"))
    dynamodb_port = int(os.environ.get("DYNAMODB_PORT", "8001"))
    env = dict(os.environ)
    env.setdefault("REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    env.setdefault("DYNAMODB_ENDPOINT_URL", f"http://127.0.0.1:{dynamodb_port}")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("DEV_MAILBOX", "true")
    env["PYTHONUNBUFFERED"] = "1"
    # Every process writes its metrics here; the gateway's /metrics adds them up. Stale files go at start.
    metrics_dir = var / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    settings = load_settings(env)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def shutdown(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping…", flush=True)
        for name, process in reversed(children):
            stop(process)
            print(f"  stopped {name}", flush=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print(f"starting valkey on :{redis_port} (data in var/redis, append-only)", flush=True)
        children.append(("valkey", start_valkey(redis_port, var / "redis", log=var / "logs" / "valkey.log")))
        print(f"starting local DynamoDB (moto) on :{dynamodb_port}", flush=True)
        children.append(("dynamodb", start_moto(dynamodb_port, log=var / "logs" / "dynamodb.log")))
        subprocess.run([sys.executable, "-m", "api.bootstrap"], env=env, check=True)
        subprocess.run([sys.executable, "-m", "search_worker.index", "build", "--if-missing"], env=env, check=True)

        def spawn(name: str, args: list[str]) -> None:
            children.append((name, subprocess.Popen([sys.executable, *args], env=env)))

        spawn("flusher", ["-m", "quota.flusher"])
        spawn("phonepe-simulator", ["-m", "payments.simulator"])
        spawn("payment-poller", ["-m", "payments.reconcile"])
        for n in range(settings.workers):
            spawn(f"worker-{n + 1}", ["-m", "search_worker.main"])
        spawn(
            "gateway",
            [
                "-m",
                "api.serve",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
            ],
        )
        wait_for_port(settings.api_port, timeout_s=60, process=children[-1][1])
        print(f"\nSolution Finder is running: http://{settings.api_host}:{settings.api_port}/search", flush=True)
        print(
            f"dev mailbox: http://{settings.api_host}:{settings.api_port}/dev/mailbox · Ctrl-C stops everything\n",
            flush=True,
        )
        while True:
            for name, process in children:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping", flush=True)
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except subprocess.CalledProcessError as exc:
        print(f"start-up step failed: {exc}", file=sys.stderr)
        shutdown()
        return 1
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
