"""The gateway's request ids, request metrics and the /metrics endpoint."""

from __future__ import annotations

import hmac
import random
import re
import time
from collections.abc import Iterable
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.state import Services
from core.errors import ForbiddenError
from core.logs import REQUEST_ID
from core.metrics import REQUEST_SECONDS, REQUESTS, render
from core.streams import QUEUE_NAME, WORKERS_KEY, worker_index_key

_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            if _VALID_ID.fullmatch(incoming):
                return incoming
            break
    # Unique, not secret (the module generator is reseeded in a forked child); os.urandom was 5 % of /health.
    return f"{random.getrandbits(128):032x}"


def _observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count and time a request; the labelled children are looked up once per (method, route, status)."""
    key = (method, route, str(status))
    children = _children.get(key)
    if children is None:
        children = _children[key] = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(method, route))
    children[0].inc()
    children[1].observe(seconds)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_PATH = b'{"error":"The path holds control characters.","reason":"bad_request"}'


async def _refuse_path(send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BAD_PATH)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": _BAD_PATH, "more_body": False})


def observability_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        if _CONTROL.search(scope["path"]):
            # A NUL or newline in a path only ever comes from an attacker: it broke file lookups and
            # forged log lines. Refused before routing, and never logged.
            await _refuse_path(send)
            return
        request_id = _request_id(scope["headers"])
        token = REQUEST_ID.set(request_id)
        handler = scope.get("route_handler")
        route = next(iter(handler.paths)) if handler is not None and getattr(handler, "paths", None) else "unmatched"
        method = str(scope.get("method", ""))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            _observe(method, route, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    return middleware


def _may_scrape(request: Request[Any, Any, Any], services: Services) -> bool:
    """Metrics name payment counts: with METRICS_TOKEN set they need it, otherwise only loopback sees them."""
    expected = services.settings.metrics_token
    if expected:
        return hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {expected}")
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1", "localhost")


@get("/metrics", summary="Prometheus text format", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], services: Services) -> Response[bytes]:
    if not _may_scrape(request, services):
        raise ForbiddenError("Metrics need the scrape token (METRICS_TOKEN).", reason="metrics_forbidden")
    redis = services.redis
    now_ms = time.time() * 1000
    lines = [render().decode()]
    try:
        depth = await redis.zcard(QUEUE_NAME)
        live = await redis.zrangebyscore(WORKERS_KEY, now_ms - 5000, "+inf")
        versions: dict[str, int] = {}
        for worker in live:
            version = await redis.get(worker_index_key(worker.decode()))
            if version:
                versions[version.decode()] = versions.get(version.decode(), 0) + 1
        lag = await redis.get("quota:flusher:lag-ms")
        lines += [
            "# HELP sf_search_queue_depth Searches waiting in the queue",
            "# TYPE sf_search_queue_depth gauge",
            f"sf_search_queue_depth {depth}",
            "# HELP sf_search_workers_live Search workers with a fresh heartbeat",
            "# TYPE sf_search_workers_live gauge",
            f"sf_search_workers_live {len(live)}",
            "# HELP sf_search_index_loaded Live workers per loaded index version",
            "# TYPE sf_search_index_loaded gauge",
            *[f'sf_search_index_loaded{{version="{v}"}} {n}' for v, n in versions.items()],
            "# HELP sf_quota_flusher_lag_seconds Age of the oldest usage entry not yet in DynamoDB",
            "# TYPE sf_quota_flusher_lag_seconds gauge",
            f"sf_quota_flusher_lag_seconds {int(lag or 0) / 1000:.3f}",
        ]
    except Exception:  # Redis away: still serve the process metrics
        lines.append("# redis unavailable: queue, worker and flusher gauges omitted")
    body = "\n".join(lines) + "\n"
    return Response(body.encode(), media_type="text/plain; version=0.0.4; charset=utf-8")
