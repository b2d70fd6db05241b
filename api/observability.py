"""The gateway's request ids, request metrics and the /metrics endpoint."""

from __future__ import annotations

import re
import time
import uuid

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.state import Services
from core.logs import REQUEST_ID
from core.metrics import REQUEST_SECONDS, REQUESTS, render
from core.streams import QUEUE_NAME, WORKERS_KEY, worker_index_key

_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def observability_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
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
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
            REQUEST_ID.reset(token)

    return middleware


@get("/metrics", summary="Prometheus text format", include_in_schema=False)
async def metrics(services: Services) -> Response[bytes]:
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
