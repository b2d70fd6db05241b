"""The data plane's HTTP face: admit a search, relay its Redis Stream as SSE, cancel it, or answer in one go."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import ServerSentEvent, ServerSentEventMessage
from msgspec import Meta

from api.admission import Admission, Caller, admit
from api.deps import resolve_caller
from api.state import Services
from core import stats
from core.errors import NotFoundError, UnavailableError
from core.logs import REQUEST_ID
from core.messages import Charge, ErrorEvent, RefundRequest, SearchJob
from core.streams import (
    QUEUE_NAME,
    REFUND_STREAM,
    WORKERS_KEY,
    cancel_key,
    events_key,
    job_id,
    lost_key,
    meta_key,
)

PRIORITY_HEAD_START_S = {"pro": 120, "registered": 60, "anonymous": 0}
READ_BLOCK_MS = 2000
WORKER_DEAD_AFTER_MS = 5000


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/searches and of POST /api/query."""

    query: Annotated[str, Meta(min_length=1, max_length=1000)]
    collection: Annotated[str, Meta(max_length=100)] | None = None
    k: Annotated[int, Meta(ge=1, le=20)] | None = None


class QuotaView(msgspec.Struct):
    access_tier: str
    limit: int
    used: int
    remaining: int


class SearchCreated(msgspec.Struct):
    search_id: str
    events_url: str
    quota: QuotaView


class QueryAnswer(msgspec.Struct):
    answer: str
    results: list[dict[str, Any]]
    usage: dict[str, Any]
    total_time: float
    citations: list[str] = []
    search_id: str = ""


class Accepted(msgspec.Struct):
    search_id: str
    status: str


def _quota_view(caller: Caller, admission: Admission) -> QuotaView:
    d = admission.decision
    return QuotaView(access_tier=caller.access_tier, limit=d.limit, used=d.used, remaining=d.remaining)


async def start_search(
    services: Services, caller: Caller, query: str, k: int | None, collection: str | None, request_id: str
) -> tuple[str, Admission]:
    admission = await admit(services, caller)
    search_id = uuid.uuid4().hex
    settings = services.settings
    job = SearchJob(
        search_id=search_id,
        query=query,
        k=k or settings.search_k,
        collection=collection,
        access_tier=caller.access_tier,
        request_id=request_id,
        charge=admission.charge if admission.charge.subject else None,
        enqueued_at_ms=int(time.time() * 1000),
    )
    owner = caller.user_id or caller.anon_id or ""
    await services.redis.hset(  # type: ignore[misc]
        meta_key(search_id),
        mapping={
            "owner": owner,
            "charge": msgspec.json.encode(job.charge),
            "created_ms": job.enqueued_at_ms,
        },
    )
    await services.redis.expire(meta_key(search_id), settings.stream_ttl_s)
    today = stats.day()
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.incr(stats.searches_key(today, caller.access_tier))
        pipe.expire(stats.searches_key(today, caller.access_tier), stats.RETENTION_S)
        if caller.anon_id:
            pipe.pfadd(stats.anonymous_visitors_key(today), caller.anon_id)
            pipe.expire(stats.anonymous_visitors_key(today), stats.RETENTION_S)
        await pipe.execute()
    # arq orders its queue by score: an earlier score lets pro and registered searches jump the line.
    head_start = PRIORITY_HEAD_START_S.get(caller.access_tier, 0)
    defer_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=head_start) if head_start else None
    try:
        await services.arq.enqueue_job(
            "run_search",
            msgspec.to_builtins(job),
            _job_id=job_id(search_id),
            _queue_name=QUEUE_NAME,
            _defer_until=defer_until,
        )
    except Exception as exc:
        if job.charge is not None:
            await _refund(services, search_id, job.charge, "enqueue_failed")
        raise UnavailableError(
            "The search queue is unavailable; try again shortly.", reason="search_unavailable"
        ) from exc
    return search_id, admission


async def _refund(services: Services, search_id: str, charge: Charge, reason: str) -> None:
    request = RefundRequest(search_id=search_id, charge=charge, reason=reason)
    await services.redis.xadd(REFUND_STREAM, {"data": msgspec.json.encode(request)})


def _set_anon_cookie(response: Response[Any], caller: Caller) -> None:
    if caller.new_anon_cookie:
        response.set_cookie(
            Cookie(
                key="anon_id",
                value=caller.new_anon_cookie,
                httponly=True,
                samesite="lax",
                max_age=400 * 86400,
                path="/",
            )
        )


@post("/api/searches", status_code=202, summary="Start a search; its answer streams from events_url")
async def create_search(
    data: SearchRequest, request: Request[Any, Any, Any], services: Services
) -> Response[SearchCreated]:
    caller = await resolve_caller(request, services)
    search_id, admission = await start_search(
        services,
        caller,
        data.query,
        data.k,
        data.collection,
        REQUEST_ID.get() or uuid.uuid4().hex,
    )
    body = SearchCreated(
        search_id=search_id,
        events_url=f"/api/searches/{search_id}/events",
        quota=_quota_view(caller, admission),
    )
    response = Response(body, status_code=202, headers=admission.headers)
    _set_anon_cookie(response, caller)
    return response


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _worker_lost(services: Services, search_id: str) -> bool:
    """True when the worker that took this search has stopped sending heartbeats."""
    worker = await services.redis.hget(meta_key(search_id), "worker")  # type: ignore[misc]
    if worker is None:
        return False
    beat = await services.redis.zscore(WORKERS_KEY, worker)
    return beat is None or beat < time.time() * 1000 - WORKER_DEAD_AFTER_MS


async def _fail_lost_search(services: Services, search_id: str) -> None:
    # Only one gateway process may end the stream and give the unit back.
    if not await services.redis.set(lost_key(search_id), "1", nx=True, ex=3600):
        return
    data = msgspec.json.encode(ErrorEvent(reason="worker_lost", error="The search worker stopped; try again."))
    await services.redis.xadd(events_key(search_id), {"event": "error", "data": data})
    raw = await services.redis.hget(meta_key(search_id), "charge")  # type: ignore[misc]
    charge = msgspec.json.decode(raw, type=Charge | None) if raw else None
    if charge is not None:
        await _refund(services, search_id, charge, "worker_lost")


async def relay_events(
    services: Services, search_id: str, last_id: str
) -> AsyncGenerator[ServerSentEventMessage, None]:
    key = events_key(search_id)
    heartbeat_s = services.settings.heartbeat_s
    last_sent = time.monotonic()
    # A client that goes away only closes this generator; generation in the worker goes on regardless.
    while True:
        response = await services.redis.xread({key: last_id}, block=READ_BLOCK_MS, count=100)
        if not response:
            if await _worker_lost(services, search_id):
                await _fail_lost_search(services, search_id)
                continue
            if time.monotonic() - last_sent >= heartbeat_s:
                last_sent = time.monotonic()
                yield ServerSentEventMessage(comment="heartbeat")
            continue
        for _, entries in response:
            for entry_id, fields in entries:
                last_id = _text(entry_id)
                event = _text(fields[b"event"])
                yield ServerSentEventMessage(data=_text(fields[b"data"]), event=event, id=last_id)
                last_sent = time.monotonic()
                if event in ("done", "error"):
                    return


@get("/api/searches/{search_id:str}/events", summary="The search's events as text/event-stream")
async def search_events(
    search_id: str, request: Request[Any, Any, Any], services: Services, last_event_id: str | None = None
) -> ServerSentEvent:
    if len(search_id) > 64 or not await services.redis.exists(meta_key(search_id)):
        raise NotFoundError("No such search.")
    resume = request.headers.get("last-event-id") or last_event_id or "0-0"
    if not _valid_stream_id(resume):
        resume = "0-0"
    return ServerSentEvent(
        relay_events(services, search_id, resume),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _valid_stream_id(value: str) -> bool:
    ms, _, seq = value.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit()) and len(value) < 48


@post("/api/searches/{search_id:str}/cancel", status_code=202, summary="Cancel a running search")
async def cancel_search(search_id: str, services: Services) -> Accepted:
    if len(search_id) > 64 or not await services.redis.exists(meta_key(search_id)):
        raise NotFoundError("No such search.")
    await services.redis.set(cancel_key(search_id), "1", ex=services.settings.stream_ttl_s)
    # A search still waiting in the queue is cancelled here; a running one stops at its next token.
    aborted = await services.arq.zrem(QUEUE_NAME, job_id(search_id))
    if aborted:
        data = msgspec.json.encode(ErrorEvent(reason="cancelled", error="The search was cancelled."))
        await services.redis.xadd(events_key(search_id), {"event": "error", "data": data})
    return Accepted(search_id=search_id, status="cancelling")


@post(
    "/api/query",
    status_code=200,
    summary="The same search answered as one JSON document, for clients without SSE",
)
async def query(data: SearchRequest, request: Request[Any, Any, Any], services: Services) -> Response[QueryAnswer]:
    started = time.perf_counter()
    caller = await resolve_caller(request, services)
    search_id, admission = await start_search(
        services,
        caller,
        data.query,
        data.k,
        data.collection,
        REQUEST_ID.get() or uuid.uuid4().hex,
    )
    results: list[dict[str, Any]] = []
    answer = ""
    citations: list[str] = []
    usage: dict[str, Any] = {}
    deadline = services.settings.job_timeout_s + 15
    async with asyncio.timeout(deadline):
        async for message in relay_events(services, search_id, "0-0"):
            if message.event == "sources":
                results = msgspec.json.decode(str(message.data or "{}"))["results"]
            elif message.event == "done":
                done = msgspec.json.decode(str(message.data or "{}"))
                answer, citations, usage = done["answer"], done["citations"], done["usage"]
            elif message.event == "error":
                err = msgspec.json.decode(str(message.data or "{}"))
                raise UnavailableError(err["error"], reason=err["reason"])
    body = QueryAnswer(
        answer=answer,
        results=results,
        usage=usage,
        citations=citations,
        search_id=search_id,
        total_time=round(time.perf_counter() - started, 4),
    )
    response = Response(body, headers=admission.headers)
    _set_anon_cookie(response, caller)
    return response


ROUTES = [create_search, search_events, cancel_search, query]
