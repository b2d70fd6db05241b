"""`make up`: runs the whole system in the foreground, restarts a process that dies, and on Ctrl-C/SIGTERM
stops every process it started, gateway first and servers last.

A child that exits is started again after a backoff (0.5 s, doubling to 10 s) and the restart is logged
and counted in /metrics (`sf_process_restarts_total{process=...}`). Only a child that exits more than
MAX_EXITS times within WINDOW_S makes the supervisor give up and stop everything (exit status 1).
Children run in process groups of their own, so a terminal's Ctrl-C reaches only the supervisor, which then
stops them in order; the kernel stops them too if the supervisor itself is killed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.logs import configure
from core.settings import Settings, load_settings
from dev.local import local_env
from dev.servers import detached, start_dynamodb, start_valkey, stop, wait_for_port

log = logging.getLogger("supervisor")
WINDOW_S = 60.0
MAX_EXITS = 5
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
POLL_S = 0.2


class StartError(Exception):
    """A start-up step failed; nothing is restarted, everything started so far is stopped."""


@dataclass
class Child:
    name: str
    launch: Callable[[], subprocess.Popen[bytes]]  # returns once the child is ready
    process: subprocess.Popen[bytes] | None = None
    exits: list[float] = field(default_factory=list)
    restart_at: float | None = None

    def backoff_s(self) -> float:
        return float(min(FIRST_BACKOFF_S * 2 ** (len(self.exits) - 1), MAX_BACKOFF_S))


class Supervisor:
    def __init__(self, env: dict[str, str], var: Path) -> None:
        self.env = env
        self.var = var
        self.settings: Settings = load_settings(env)
        self.children: list[Child] = []
        self.stopping = False
        self.restarts: Any = None  # the Prometheus counter, made once PROMETHEUS_MULTIPROC_DIR is set

    # -- starting -------------------------------------------------------------------------------------
    def python(self, args: list[str], port: int | None = None) -> Callable[[], subprocess.Popen[bytes]]:
        def launch() -> subprocess.Popen[bytes]:
            process = subprocess.Popen([sys.executable, *args], env=self.env, **detached())
            if port is not None:
                wait_for_port(port, timeout_s=60, process=process)
            return process

        return launch

    def add(self, name: str, launch: Callable[[], subprocess.Popen[bytes]]) -> None:
        if self.stopping:
            return
        child = Child(name, launch)
        self.children.append(child)
        child.process = launch()
        self.restarts.labels(name)  # so /metrics shows 0 restarts, not nothing
        log.info("started %s (pid %d)", name, child.process.pid)

    def step(self, name: str, args: list[str]) -> None:
        """A one-shot start-up step (tables, index); Ctrl-C during it stops it."""
        process = subprocess.Popen([sys.executable, *args], env=self.env, **detached())
        while process.poll() is None:
            if self.stopping:
                stop(process)
                return
            time.sleep(POLL_S / 2)
        if process.returncode != 0:
            raise StartError(f"{name} failed with exit status {process.returncode}")

    def start(self) -> None:
        settings, var, logs = self.settings, self.var, self.var / "logs"
        log.info("valkey on :%d (data in %s, append-only)", settings.redis_port, var / "redis")
        self.add(
            "valkey",
            lambda: start_valkey(settings.redis_port, var / "redis", log=logs / "valkey.log", supervised=True),
        )
        log.info("local DynamoDB (moto) on :%d (journal in %s)", settings.dynamodb_port, var / "dynamodb")
        self.add(
            "dynamodb",
            lambda: start_dynamodb(
                settings.dynamodb_port, data_dir=var / "dynamodb", log=logs / "dynamodb.log", supervised=True
            ),
        )
        for name, args in (
            ("tables", ["-m", "api.bootstrap"]),
            ("index", ["-m", "search_worker.index", "build", "--if-missing"]),
        ):
            if not self.stopping:
                self.step(name, args)
        self.add("flusher", self.python(["-m", "quota.flusher"]))
        self.add("phonepe-simulator", self.python(["-m", "payments.simulator"], settings.simulator_port))
        self.add("payment-poller", self.python(["-m", "payments.reconcile"]))
        for n in range(settings.workers):
            self.add(f"worker-{n + 1}", self.python(["-m", "search_worker.main"]))
        self.add("gateway", self.python(gateway_args(settings), settings.api_port))
        if not self.stopping:
            base = f"http://{settings.api_host}:{settings.api_port}"
            log.info("Solution Finder is running: %s/search, dev mailbox %s/dev/mailbox; Ctrl-C stops it", base, base)

    # -- watching -------------------------------------------------------------------------------------
    def watch(self) -> int:
        while not self.stopping:
            for child in self.children:
                if self.stopping:
                    break
                if not self.tend(child):
                    return 1
            time.sleep(POLL_S)
        return 0

    def tend(self, child: Child) -> bool:
        """Notice an exit, restart when its backoff is over; False when the child keeps failing."""
        now = time.monotonic()
        if child.process is not None and child.process.poll() is not None:
            code = child.process.returncode
            self.forget_metrics(child.process.pid)
            child.process = None
            child.exits = [t for t in child.exits if now - t < WINDOW_S] + [now]
            if len(child.exits) > MAX_EXITS:
                log.error("%s exited %d times in %.0f s; stopping everything", child.name, len(child.exits), WINDOW_S)
                return False
            child.restart_at = now + child.backoff_s()
            log.warning("%s exited with status %s; restarting in %.1f s", child.name, code, child.backoff_s())
        if child.process is None and child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            try:
                child.process = child.launch()
            except (RuntimeError, TimeoutError, OSError) as exc:
                child.restart_at = time.monotonic() + child.backoff_s()
                child.exits.append(time.monotonic())
                log.warning("%s did not start again (%s); next try in %.1f s", child.name, exc, child.backoff_s())
                return len(child.exits) <= MAX_EXITS
            self.restarts.labels(child.name).inc()
            log.warning("restarted %s (pid %d)", child.name, child.process.pid)
        return True

    def forget_metrics(self, pid: int) -> None:
        from prometheus_client import multiprocess

        if "PROMETHEUS_MULTIPROC_DIR" in self.env:  # a dead process's live gauges stop counting
            multiprocess.mark_process_dead(pid, self.env["PROMETHEUS_MULTIPROC_DIR"])  # type: ignore[no-untyped-call]

    # -- stopping -------------------------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("%s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def shutdown(self) -> None:
        for child in reversed(self.children):
            if child.process is not None:
                stop(child.process)
                log.info("stopped %s", child.name)


def gateway_args(settings: Settings) -> list[str]:
    # api.serve applies the log config, the shutdown grace and TRUSTED_PROXIES (uvicorn alone would
    # believe X-Forwarded-For from loopback).
    return ["-m", "api.serve", "--host", settings.api_host, "--port", str(settings.api_port)]


def prepare(var: Path) -> dict[str, str]:
    """The children's environment: make up's local defaults, and a fresh shared metrics folder."""
    (var / "logs").mkdir(parents=True, exist_ok=True)
    env = local_env(os.environ)
    # Every process writes its metrics here; the gateway's /metrics adds them up. Stale files go at start.
    metrics_dir = Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var / "prometheus")))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # before prometheus_client is imported
    return env


def main() -> int:
    var = Path("var").resolve()
    env = prepare(var)
    supervisor = Supervisor(env, var)
    configure(supervisor.settings.log_level)
    from prometheus_client import Counter

    supervisor.restarts = Counter("sf_process_restarts_total", "Processes make up restarted", ["process"])
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    status = 0
    try:
        supervisor.start()
        status = supervisor.watch()
    except (StartError, RuntimeError, TimeoutError) as exc:
        log.error("start-up failed: %s", exc)
        status = 1
    finally:
        supervisor.shutdown()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
