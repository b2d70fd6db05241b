"""`make up` (dev.supervisor) as a person runs it: what users did survives Ctrl-C and a kill -9 of the local
DynamoDB, a killed worker is replaced while the rest keeps running, commands from a second terminal reach
it, every line it prints is JSON, and it stops in order without tracebacks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from core.dynamo import create_dynamodb_client
from core.settings import load_settings
from core.streams import WORKERS_KEY
from dev import supervisor as supervisor_module
from dev.servers import free_port
from dev.supervisor import Supervisor
from tests.conftest import ROOT, Stack, checkout, read_events, tier, wait_state
from tests.helpers import csrf, register, token_for

pytestmark = pytest.mark.slow
SET_BY_MAKE_UP = ("REDIS_URL", "DYNAMODB_ENDPOINT_URL", "PHONEPE_BASE_URL", "SIMULATOR_WEBHOOK_URL", "DEV_MAILBOX")


class MakeUp:
    """`python -m dev.supervisor` in a folder of its own, its output in make-up.log."""

    def __init__(self, cwd: Path, overrides: dict[str, str]) -> None:
        self.cwd = cwd
        self.overrides = overrides
        self.log = cwd / "make-up.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{overrides['API_PORT']}"

    def shell_env(self) -> dict[str, str]:
        """A second terminal: the same overrides the person gave make up, nothing make up derives."""
        clean = {k: v for k, v in os.environ.items() if k not in SET_BY_MAKE_UP and not k.startswith("AWS_")}
        return {**clean, **self.overrides}

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dev.supervisor"],
                cwd=self.cwd,
                env=self.shell_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self, signum: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(60)

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def pid(self, name: str) -> int:
        """The latest pid the supervisor reported for `name`."""
        found = re.findall(rf'"(?:re)?started {re.escape(name)} \(pid (\d+)\)"', self.log.read_text())
        return int(found[-1])

    async def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await http.get("/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError("make up never became ready:\n" + self.log.read_text()[-3000:])

    async def wait_log(self, text: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log.read_text():
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + self.log.read_text()[-3000:]
            await asyncio.sleep(0.1)


@pytest.fixture
def make_up(stack: Stack, tmp_path: Path) -> Any:
    overrides = {
        "REDIS_PORT": str(free_port()),
        "DYNAMODB_PORT": str(free_port()),
        "SIMULATOR_PORT": str(free_port()),
        "TABLE_PREFIX": "makeup-",
        "CATALOG_PATH": stack.env["CATALOG_PATH"],
        "INDEX_DIR": stack.env["INDEX_DIR"],  # built by the session already: make up finds it
        "WORKERS": "1",
        "PAYMENT_POLL_SCALE": "0.05",
        "FLUSH_INTERVAL_S": "0.2",
    }
    api_port = str(free_port())
    overrides |= {"API_PORT": api_port, "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}"}
    running = MakeUp(tmp_path, overrides)
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop(signal.SIGTERM)


async def _buy_pro(make_up: MakeUp, http: httpx.AsyncClient) -> tuple[str, str, str]:
    email, headers = await register(http)
    token = await token_for(http, headers)
    validated = await http.post(
        "/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"}
    )
    assert validated.status_code == 200, validated.text
    order = (await checkout(http, headers))["merchant_order_id"]
    simulator = f"http://127.0.0.1:{make_up.overrides['SIMULATOR_PORT']}"
    async with httpx.AsyncClient(timeout=30) as browser:
        assert (await browser.post(f"{simulator}/simulator/orders/{order}/complete")).status_code == 200
    assert (await wait_state(http, order, "COMPLETED"))["state"] == "COMPLETED"
    return email, order, (await http.get("/api/me")).json()["user_id"]


async def _replace_a_killed_worker(make_up: MakeUp) -> float:
    old = make_up.pid("worker-1")
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)
    await make_up.wait_log("restarted worker-1", timeout_s=15)
    new = make_up.pid("worker-1")
    redis = Redis(port=int(make_up.overrides["REDIS_PORT"]))
    async with httpx.AsyncClient(base_url=make_up.base_url, timeout=5) as http:
        while True:
            workers = [w.decode() for w in await redis.zrange(WORKERS_KEY, 0, -1)]
            if any(f"-{new}-" in w for w in workers) and (await http.get("/ready")).status_code == 200:
                break
            assert time.monotonic() - started < 15, workers
            await asyncio.sleep(0.1)
    await redis.aclose()
    assert new != old and make_up.process is not None and make_up.process.poll() is None
    return time.monotonic() - started


async def test_make_up_keeps_what_people_did_and_replaces_what_dies(make_up: MakeUp) -> None:
    make_up.start()
    await make_up.wait_ready()
    async with httpx.AsyncClient(base_url=make_up.base_url, timeout=30) as http:
        email, order, user_id = await _buy_pro(make_up, http)
        # From a second terminal, with only the overrides the person gave `make up`.
        admin = subprocess.run(
            ["make", "-s", "admin", f"EMAIL={email}"], cwd=ROOT, env=make_up.shell_env(), capture_output=True, text=True
        )
        assert admin.returncode == 0 and "is now an admin" in admin.stderr, admin.stderr
        assert (await http.get("/api/me")).json()["role"] == "admin"
        os.kill(make_up.pid("dynamodb"), signal.SIGKILL)
        await make_up.wait_log("restarted dynamodb")
        assert await tier(http) == "pro"
    replaced_after_s = await _replace_a_killed_worker(make_up)
    metrics = httpx.get(f"{make_up.base_url}/metrics").text
    assert 'sf_process_restarts_total{process="worker-1"} 1.0' in metrics
    assert 'sf_process_restarts_total{process="dynamodb"} 1.0' in metrics
    assert make_up.stop(signal.SIGINT) == 0  # Ctrl-C

    make_up.start()
    await make_up.wait_ready()
    async with httpx.AsyncClient(base_url=make_up.base_url, timeout=30) as http:
        headers = await csrf(http)
        login = await http.post(
            "/api/auth/login", json={"email": email, "password": "correct horse 1"}, headers=headers
        )
        assert login.status_code == 200, login.text
        me = (await http.get("/api/me")).json()
        assert me["role"] == "admin" and await tier(http) == "pro"
        assert [p["merchant_order_id"] for p in (await http.get("/api/payments")).json()] == [order]
        invoice = await http.get(f"/api/payments/{order}/invoice.pdf")
        assert invoice.status_code == 200 and invoice.content.startswith(b"%PDF")
        assert len([t for t in (await http.get("/api/tokens")).json() if t["status"] == "active"]) == 1
        search = await http.post(  # the signed-in session searches (with its CSRF header)
            "/api/searches", json={"query": "resize images"}, headers={**headers, "X-Request-ID": "mu-1"}
        )
        assert (await read_events(http, search.json()["events_url"]))[-1][1] == "done"
        await make_up.wait_log('"request_id": "mu-1"')  # the worker's line about the search carries it
    settings = load_settings(
        {"DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{make_up.overrides['DYNAMODB_PORT']}", "TABLE_PREFIX": "makeup-"}
    )
    async with create_dynamodb_client(settings) as client:
        usage = (await client.scan(TableName=settings.table("usage")))["Items"]
    assert any(user_id in item["subject"]["S"] for item in usage)
    assert make_up.stop(signal.SIGTERM) == 0

    output = make_up.lines()
    assert not [line for line in output if "Traceback" in line]
    not_json = [line for line in output if not line.startswith("{") or not isinstance(json.loads(line), dict)]
    assert not not_json, not_json[:5]
    order = ("gateway", "worker-1", "payment-poller", "phonepe-simulator", "flusher", "dynamodb", "valkey")
    stopped = [json.loads(line)["msg"] for line in output if '"stopped ' in line]
    assert stopped[-len(order) :] == [f"stopped {name}" for name in order]
    assert replaced_after_s < 15


def test_supervisor_gives_up_on_a_child_that_keeps_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_module, "FIRST_BACKOFF_S", 0.01)
    monkeypatch.setattr(supervisor_module, "MAX_BACKOFF_S", 0.05)
    supervisor = Supervisor(dict(os.environ), tmp_path)
    supervisor.restarts = Counter("restarts", "restarts", ["process"], registry=(registry := CollectorRegistry()))
    supervisor.add("crasher", supervisor.python(["-c", "raise SystemExit(3)"]))
    started = time.monotonic()
    assert supervisor.watch() == 1
    assert time.monotonic() - started < 10
    restarts = registry.get_sample_value("restarts_total", {"process": "crasher"})
    assert restarts == supervisor_module.MAX_EXITS
