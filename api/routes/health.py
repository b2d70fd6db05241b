"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Response, get

from api.state import Services
from core.streams import WORKERS_KEY

WORKER_FRESH_MS = 5000


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]
    missing: list[str]


@get("/health", summary="200 while the process runs", sync_to_thread=False)
def health() -> Health:
    return Health(status="ok")


async def _check(name: str, coro: Any) -> tuple[str, str]:
    try:
        async with asyncio.timeout(2):
            return name, await coro
    except Exception as exc:
        return name, f"unreachable: {type(exc).__name__}"


@get("/ready", summary="200 only when Redis, DynamoDB, a worker and a loaded index are reachable")
async def ready(services: Services) -> Response[Any]:
    async def redis_check() -> str:
        await services.redis.ping()
        return "ok"

    async def dynamodb_check() -> str:
        await services.dynamodb.describe_table(TableName=services.settings.table("usage"))
        return "ok"

    async def workers_check() -> str:
        live = await services.redis.zrangebyscore(WORKERS_KEY, time.time() * 1000 - WORKER_FRESH_MS, "+inf")
        if not live:
            return "no live search worker"
        return f"ok ({len(live)} live)"

    async def index_check() -> str:
        live = await services.redis.zrangebyscore(WORKERS_KEY, time.time() * 1000 - WORKER_FRESH_MS, "+inf")
        for worker in live:
            version = await services.redis.get(f"{WORKERS_KEY}:index:{worker.decode()}")
            if version:
                return f"ok ({version.decode()})"
        return "no worker reports a loaded index"

    results = dict(
        await asyncio.gather(
            _check("redis", redis_check()),
            _check("dynamodb", dynamodb_check()),
            _check("workers", workers_check()),
            _check("index", index_check()),
        )
    )
    missing = [name for name, value in results.items() if not value.startswith("ok")]
    body = Readiness(status="ready" if not missing else "not_ready", checks=results, missing=missing)
    if missing:
        return Response(
            {
                "error": "Not ready: " + ", ".join(f"{m} ({results[m]})" for m in missing),
                "reason": "not_ready",
                "checks": results,
                "missing": missing,
            },
            status_code=503,
        )
    return Response(body)


ROUTES = [health, ready]
