"""The data plane's HTTP face: admit a search, relay its Redis Stream as SSE, cancel it, or answer in one go."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import Parameter
from litestar.response import ServerSentEventMessage, Stream
from msgspec import Meta

from api.admission import Admission, Caller, admit
from api.deps import owner_of, resolve_caller
from api.state import Services
from core import stats
from core.errors import BadRequestError, NotFoundError, UnavailableError
from core.logs import REQUEST_ID
from core.messages import SearchJob

PRIORITY_HEAD_START_S = {"pro": 120, "registered": 60, "anonymous": 0}
SEARCH_ID = re.compile(r"[0-9a-f]{32}")


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
    if not query.strip():
        raise BadRequestError("Type a question first.", reason="empty_query", detail="query")
    admission = await admit(services, caller)
    search_id = uuid.uuid4().hex
    settings = services.settings
    job = SearchJob(
        search_id=search_id,
        query=query.strip(),
        k=k or settings.search_k,
        collection=collection,
        access_tier=caller.access_tier,
        request_id=request_id,
        charge=admission.charge if admission.charge.subject else None,
        enqueued_at_ms=int(time.time() * 1000),
    )
    await services.searches.create(search_id, owner_of(caller), job.charge, job.enqueued_at_ms)
    # An earlier place in the queue lets pro and registered searches jump the line.
    head_start = PRIORITY_HEAD_START_S.get(caller.access_tier, 0)
    defer_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=head_start) if head_start else None
    await services.searches.submit(job, defer_until)
    await stats.count_search(services.redis, caller.access_tier, caller.anon_id)  # after: off the job's path
    return search_id, admission


def _set_anon_cookie(response: Response[Any], caller: Caller, secure: bool) -> None:
    if caller.new_anon_cookie:
        response.set_cookie(
            Cookie(
                key="anon_id",
                value=caller.new_anon_cookie,
                httponly=True,
                samesite="lax",
                max_age=400 * 86400,
                path="/",
                secure=secure,
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
    _set_anon_cookie(response, caller, services.settings.secure_cookies)
    return response


async def relay_events(
    services: Services, search_id: str, last_id: str
) -> AsyncGenerator[ServerSentEventMessage, None]:
    heartbeat_s = services.settings.heartbeat_s
    last_sent = time.monotonic()
    # A client that goes away only closes this generator; generation in the worker goes on regardless.
    async for item in services.searches.events(search_id, last_id):
        if item is None:
            if time.monotonic() - last_sent >= heartbeat_s:
                last_sent = time.monotonic()
                yield ServerSentEventMessage(comment="heartbeat")
            continue
        yield ServerSentEventMessage(data=item.data, event=item.event, id=item.event_id)
        last_sent = time.monotonic()


async def _counted(
    services: Services, owner: str, lease: str, events: AsyncGenerator[ServerSentEventMessage, None]
) -> AsyncGenerator[bytes, None]:
    """The stream's bytes, its lease given back at the end. Encoded here, as a plain `Stream`: Litestar's
    `ServerSentEvent` first asks a worker thread for its (empty) preamble, a thread hop on every stream's
    way to its first event."""
    try:
        async for message in events:
            yield message.encode()
    finally:
        # A client that left cancels this generator's scope; the lease is still given back.
        with anyio.CancelScope(shield=True):
            await services.searches.close_stream(owner, lease)


async def _owned(request: Request[Any, Any, Any], services: Services, search_id: str) -> str:
    """The caller's identity, once it is known to own the search (anyone else gets 404)."""
    if not SEARCH_ID.fullmatch(search_id):
        raise NotFoundError("No such search.")
    owner = owner_of(await resolve_caller(request, services, mint=False))
    await services.searches.authorize(search_id, owner)
    return owner


@get(
    "/api/searches/{search_id:str}/events",
    summary="The search's events as text/event-stream (its owner only)",
    media_type="text/event-stream",
)
async def search_events(
    search_id: str,
    request: Request[Any, Any, Any],
    services: Services,
    last_event_id: Annotated[str | None, Parameter(max_length=48)] = None,
) -> Stream:
    owner = await _owned(request, services, search_id)
    resume = request.headers.get("last-event-id") or last_event_id or "0-0"
    if not _valid_stream_id(resume):
        resume = "0-0"
    lease = await services.searches.open_stream(owner)
    return Stream(
        _counted(services, owner, lease, relay_events(services, search_id, resume)),
        headers={"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"},
    )


_STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?", re.ASCII)
_U64 = 2**64 - 1


def _valid_stream_id(value: str) -> bool:
    """A Redis stream id: ASCII digits, each part within 64 bits. `str.isdigit` let "١٢-0" and ids past
    2^64 through, which Redis refuses: in the process's one shared XREAD that stalled every open stream."""
    match = _STREAM_ID.fullmatch(value)
    return match is not None and all(int(part or 0) <= _U64 for part in match.groups())


@post("/api/searches/{search_id:str}/cancel", status_code=202, summary="Cancel a running search (its owner only)")
async def cancel_search(search_id: str, request: Request[Any, Any, Any], services: Services) -> Accepted:
    await _owned(request, services, search_id)
    # A search still waiting in the queue is ended at once; a running one stops at its next token.
    await services.searches.cancel(search_id)
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
    _set_anon_cookie(response, caller, services.settings.secure_cookies)
    return response


ROUTES = [create_search, search_events, cancel_search, query]
