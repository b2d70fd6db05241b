"""Session-wide real servers: valkey, moto's DynamoDB, a small search index, the gateway and workers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes
from email.message import Message as EmailMessageType
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from core.settings import Settings, load_settings
from core.streams import WORKERS_KEY, worker_index_key
from dev.servers import free_port, start_dynamodb, start_valkey, stop, wait_for_port

pytest_plugins = ["tests.helpers"]  # its fixtures (cognito) are everyone's

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "data" / "catalog" / "solutions.jsonl"
# A slice of the real catalog keeps the session's index build to seconds; these entries are always in it.
KEEP = {
    "solution/serverless-image-handler",
    "solution/instance-scheduler-on-aws",
    "solution/qnabot-on-aws",
    "solution/video-on-demand-on-aws",
    "solution/dynamic-image-transformation-for-amazon-cloudfront",
}


class Stack:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, *args],
                env={**self.env, **(env or {})},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def start_gateway(self, workers: int = 1) -> None:
        process = self.spawn(
            "gateway",
            [
                "-m",
                "api.serve",
                "--host",
                "127.0.0.1",
                "--port",
                self.env["API_PORT"],
                "--workers",
                str(workers),
            ],
        )
        wait_for_port(int(self.env["API_PORT"]), timeout_s=60, process=process)

    def start_worker(self, name: str = "worker-1") -> subprocess.Popen[bytes]:
        return self.spawn(name, ["-m", "search_worker.main"])

    def start_flusher(self) -> subprocess.Popen[bytes]:
        return self.spawn("flusher", ["-m", "quota.flusher"])

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop(process)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")


def _small_catalog(path: Path) -> None:
    rows = [json.loads(line) for line in CATALOG.read_text().splitlines() if line.strip()]
    chosen = [r for i, r in enumerate(rows) if r["id"] in KEEP or i % 12 == 0]
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="sf-test-"))
    redis_port, dynamodb_port, api_port, simulator_port = free_port(), free_port(), free_port(), free_port()
    valkey = start_valkey(redis_port, root / "redis", appendonly=False, log=root / "valkey.log")
    moto = start_dynamodb(dynamodb_port, log=root / "moto.log")
    (root / "prometheus").mkdir()
    catalog = root / "catalog.jsonl"
    _small_catalog(catalog)
    env = {
        **os.environ,
        "API_PORT": str(api_port),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{dynamodb_port}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_PREFIX": "test-",
        "CATALOG_PATH": str(catalog),
        "INDEX_DIR": str(root / "index"),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "DEV_MAILBOX": "true",
        "MAIL_DIR": str(root / "mail"),
        "INVOICE_DIR": str(root / "invoices"),  # numbers restart with each session's empty DynamoDB
        "FLUSH_INTERVAL_S": "0.2",
        # Workers take jobs only when a submit wakes them: a missed wake-up would stall a test for minutes.
        "ARQ_POLL_DELAY_S": "300",
        "SIMULATOR_PORT": str(simulator_port),
        "PHONEPE_BASE_URL": f"http://127.0.0.1:{simulator_port}",
        "SIMULATOR_WEBHOOK_URL": f"http://127.0.0.1:{api_port}/api/payments/phonepe/webhook",
        "PAYMENT_POLL_SCALE": "0.05",
        "MAIL_RETRY_BASE_S": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(root, env)
    subprocess.run([sys.executable, "-m", "api.bootstrap"], env=env, cwd=ROOT, check=True)
    subprocess.run(
        [sys.executable, "-m", "search_worker.index", "build"],
        env=env,
        cwd=ROOT,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    stack.start_worker()
    simulator = stack.spawn("simulator", ["-m", "payments.simulator"])
    wait_for_port(simulator_port, timeout_s=30, process=simulator)
    stack.start_gateway()
    try:
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        stop(moto)
        stop(valkey)


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.env["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
async def clean(stack: Stack, redis: Redis) -> None:
    """Each test starts with empty Redis and a live worker heartbeat. The live workers' beats are put back
    after the flush (waiting for the next beat cost each test half a second on average)."""
    fresh_after_ms = time.time() * 1000 - 2000
    beats = [
        (w, score) for w, score in await redis.zrange(WORKERS_KEY, 0, -1, withscores=True) if score > fresh_after_ms
    ]
    versions = [await redis.get(worker_index_key(w.decode())) for w, _ in beats]
    await redis.flushall()
    async with redis.pipeline(transaction=False) as pipe:
        for (worker, score), version in zip(beats, versions, strict=True):
            pipe.zadd(WORKERS_KEY, {worker: score})
            if version is not None:
                pipe.set(worker_index_key(worker.decode()), version, px=10_000)
        await pipe.execute()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not await redis.zcard(WORKERS_KEY):
        await asyncio.sleep(0.05)


@pytest.fixture
def flusher(stack: Stack, clean: None) -> Iterator[None]:
    """A quota flusher for this test only: it applies refunds (and writes usage behind)."""
    stack.spawn("flusher-test", ["-m", "quota.flusher"])
    yield
    stack.stop("flusher-test")


@pytest.fixture
async def client(stack: Stack, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        yield http


def pdf_text(data: bytes) -> str:
    """The text of a PDF as a reader would copy it (invoices embed subset fonts, so bytes alone say little)."""
    import io

    import pypdf

    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


async def read_events(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None, stop_after: int | None = None
) -> list[tuple[str, str, dict]]:
    """Reads an SSE stream into (id, event, data) tuples until done/error (or stop_after events); a stream
    that never ends fails the test after two minutes instead of hanging the suite."""
    events: list[tuple[str, str, dict]] = []
    async with asyncio.timeout(120), http.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = event = ""
        data = ""
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and event:
                events.append((event_id, event, json.loads(data)))
                if event in ("done", "error") or (stop_after and len(events) >= stop_after):
                    return events
                event_id = event = data = ""
    return events


# Payments: drive the PhonePe simulator and wait on what the API shows.
SOLUTION = "aws-solution-finder"


async def checkout(client: httpx.AsyncClient, headers: dict[str, str], billing: dict | None = None) -> dict:
    body: dict = {"plan": "pro", "solution_id": SOLUTION}
    if billing is not None:
        body["billing"] = billing
    r = await client.post("/api/payments/checkout", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def settle(stack: Stack, order: str, action: str = "complete", **params: str) -> None:
    """Press Pay (complete), Fail or let the order expire in the simulator; it then calls our webhook."""
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{stack.env['PHONEPE_BASE_URL']}/simulator/orders/{order}/{action}", params=params)
        assert r.status_code == 200, r.text


async def simulator_get(stack: Stack, path: str) -> Any:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{stack.env['PHONEPE_BASE_URL']}{path}")
        assert r.status_code == 200, r.text
        return r.json()


async def wait_until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 15) -> T:
    """Poll an observable state until it is done (or the time is up; the caller's assert then says what)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def webhooks_delivered(stack: Stack, before: int, count: int) -> list[dict[str, Any]]:
    """Waits until the simulator has delivered `count` more webhooks than `before` (and had our answers)."""
    delivered: list[dict[str, Any]] = await wait_until(
        lambda: simulator_get(stack, "/simulator/webhooks"), lambda d: len(d) >= before + count
    )
    assert len(delivered) >= before + count, delivered[before:]
    return delivered[before:]


async def wait_state(client: httpx.AsyncClient, order: str, want: str, timeout_s: float = 10) -> dict:
    async def probe() -> dict:
        return dict((await client.get(f"/api/payments/{order}")).json())

    return await wait_until(probe, lambda body: body["state"] == want, timeout_s)


async def tier(client: httpx.AsyncClient) -> str:
    entitlements = (await client.get("/api/me")).json()["entitlements"]
    return str(next(e["access_tier"] for e in entitlements if e["solution_id"] == SOLUTION))


class Sink:
    """An SMTP server's message handler that keeps what it receives; it answers 451 (try again later)
    to the first `refuse[address]` messages for an address, as a mail server that is briefly unwell does."""

    def __init__(self) -> None:
        self.messages: list[EmailMessageType] = []
        self.refuse: dict[str, int] = {}

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        for address in envelope.rcpt_tos:
            if self.refuse.get(address, 0) > 0:
                self.refuse[address] -= 1
                return "451 4.3.0 Try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Sink]]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, sink
    controller.stop()
