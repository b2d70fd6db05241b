"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Response, get

from api.state import Services
from core.streams import WORKERS_KEY, worker_index_key

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

    async def worker_checks() -> tuple[str, str]:
        """One look at the heartbeats answers both: is a worker alive, and has one loaded an index."""
        try:
            async with asyncio.timeout(2):
                live = await services.redis.zrangebyscore(WORKERS_KEY, time.time() * 1000 - WORKER_FRESH_MS, "+inf")
                if not live:
                    return "no live search worker", "no worker reports a loaded index"
                for worker in live:
                    version = await services.redis.get(worker_index_key(worker.decode()))
                    if version:
                        return f"ok ({len(live)} live)", f"ok ({version.decode()})"
                return f"ok ({len(live)} live)", "no worker reports a loaded index"
        except Exception as exc:
            return (f"unreachable: {type(exc).__name__}",) * 2

    (_, redis_status), (_, dynamodb_status), (workers_status, index_status) = await asyncio.gather(
        _check("redis", redis_check()), _check("dynamodb", dynamodb_check()), worker_checks()
    )
    results = {"redis": redis_status, "dynamodb": dynamodb_status, "workers": workers_status, "index": index_status}
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
