"""Issue 12 regressions on searches: only their owner reads or cancels them, finished streams end, open
streams are capped per caller, a dead worker's search is ended and refunded with nobody listening, the
session cookie searches as the signed-in user, refused questions cost nothing, forwarded headers are
believed only from configured proxies."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from core.messages import Charge
from core.search_sessions import MAX_STREAMS_PER_CALLER, SearchSessions
from core.streams import REFUND_STREAM, RUNNING_KEY, events_key, meta_key, streams_open_key
from quota import keys
from tests.conftest import Stack, read_events
from tests.helpers import register, start_gateway, token_for, wait_until


async def test_only_the_owner_reads_or_cancels_a_search(client: httpx.AsyncClient, stack: Stack) -> None:
    created = (await client.post("/api/searches", json={"query": "resize images on the fly"})).json()
    url, cancel = created["events_url"], f"/api/searches/{created['search_id']}/cancel"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as stranger:
        assert (await stranger.get(url)).status_code == 404  # no cookie at all
        await stranger.post("/api/searches", json={"query": "schedule ec2 instances"})  # an anonymous cookie of its own
        assert (await stranger.get(url)).status_code == 404
        assert (await stranger.post(cancel)).status_code == 404
        _, headers = await register(stranger)
        token = await token_for(stranger, headers)
        assert (await stranger.get(url, headers={"Authorization": f"Bearer {token}"})).status_code == 404
    events = await read_events(client, url)
    assert events[-1][1] == "done"


async def test_a_token_search_is_read_with_its_token(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    bearer = {"Authorization": f"Bearer {token}"}
    created = (await client.post("/api/searches", json={"query": "video on demand"}, headers=bearer)).json()
    client.cookies.clear()
    assert (await client.get(created["events_url"])).status_code == 404
    assert (await read_events(client, created["events_url"], headers=bearer))[-1][1] == "done"


async def test_resuming_past_the_end_of_a_finished_search_closes_the_stream(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/searches", json={"query": "resize images on the fly"})).json()
    events = await read_events(client, created["events_url"])
    last_id = events[-1][0]
    for resume in (last_id, "99999999999999-0"):
        async with asyncio.timeout(10):  # before: the stream stayed open (and held a Redis connection) forever
            response = await client.get(created["events_url"], headers={"Last-Event-ID": resume})
        assert response.status_code == 200 and "event:" not in response.text


async def _unfinished_search(redis: Redis, owner: str, search_id: str) -> None:
    await redis.hset(meta_key(search_id), mapping={"owner": owner, "charge": b"null", "created_ms": 0})


@pytest.mark.parametrize("bad", ["\u0661\u0662-0", "18446744073709551616-0", "1-99999999999999999999"])
async def test_a_resume_id_redis_refuses_reads_from_the_start_and_stalls_no_other_stream(
    client: httpx.AsyncClient, redis: Redis, bad: str
) -> None:
    """Unicode digits and ids past 64 bits passed the check; in the process's one shared XREAD Redis then
    refused every read, so every open stream stalled (found on review)."""
    await client.post("/api/searches", json={"query": "video on demand"})
    owner = f"anon:{str(client.cookies['anon_id']).rsplit('.', 1)[0]}"
    resumed, other = uuid.uuid4().hex, uuid.uuid4().hex
    for search_id in (resumed, other):
        await _unfinished_search(redis, owner, search_id)
    await redis.xadd(events_key(resumed), {"event": "token", "data": '{"text": "a"}'})
    readers = asyncio.gather(
        read_events(client, f"/api/searches/{resumed}/events?last_event_id={bad}"),
        read_events(client, f"/api/searches/{other}/events"),
    )
    opened = await wait_until(lambda: redis.zcard(streams_open_key(owner)), lambda n: n >= 2)
    assert opened >= 2
    for search_id in (resumed, other):
        await redis.xadd(events_key(search_id), {"event": "done", "data": '{"answer": ""}'})
    async with asyncio.timeout(15):  # before: neither stream got anything
        first, second = await readers
    assert [e[1] for e in first] == ["token", "done"] and [e[1] for e in second] == ["done"]


async def test_open_streams_are_capped_per_caller(client: httpx.AsyncClient, redis: Redis) -> None:
    await client.post("/api/searches", json={"query": "video on demand"})
    anon_id = str(client.cookies["anon_id"]).rsplit(".", 1)[0]
    search_id = "a" * 32
    await _unfinished_search(redis, f"anon:{anon_id}", search_id)
    url = f"/api/searches/{search_id}/events"
    async with contextlib_streams(client, url, MAX_STREAMS_PER_CALLER) as opened:
        assert [r.status_code for r in opened] == [200] * MAX_STREAMS_PER_CALLER
        over = await client.get(url)
        assert over.status_code == 429 and over.json()["reason"] == "too_many_streams"
    # Closed streams give their places back.
    again = await wait_until(lambda: _status_of_one_stream(client, url), lambda s: s == 200)
    assert again == 200


async def _status_of_one_stream(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("GET", url) as response:
        return response.status_code


class contextlib_streams:  # noqa: N801  (reads like the context manager it is)
    """Opens n SSE streams and keeps them open for the body of the `async with`."""

    def __init__(self, client: httpx.AsyncClient, url: str, n: int) -> None:
        self.client, self.url, self.n = client, url, n
        self.streams: list[object] = []

    async def __aenter__(self) -> list[httpx.Response]:
        self.streams = [self.client.stream("GET", self.url) for _ in range(self.n)]
        return [await s.__aenter__() for s in self.streams]  # type: ignore[attr-defined]

    async def __aexit__(self, *exc: object) -> None:
        for s in self.streams:
            await s.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def _charged_user(client: httpx.AsyncClient) -> tuple[dict[str, str], str, Charge]:
    """A registered user who has used one unit today: the validate body, their id, and the charge a search
    of theirs would carry."""
    _, headers = await register(client)
    token = await token_for(client, headers)
    body = {"token": token, "solution_id": "aws-solution-finder"}
    assert (await client.post("/api/validate-solution-token", json=body)).json()["quota"]["daily_used"] == 1
    user_id = (await client.get("/api/me")).json()["user_id"]
    period = time.strftime("%Y-%m-%d", time.gmtime())
    charge = Charge(
        subject=keys.user_subject(user_id, "aws-solution-finder"), solution_id="aws-solution-finder", period=period
    )
    return body, user_id, charge


async def _until_unit_given_back(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    check = {**body, "check_only": True}
    after = await wait_until(
        lambda: client.post("/api/validate-solution-token", json=check),
        lambda r: r.json()["quota"]["daily_used"] == 0,
    )
    assert after.json()["quota"]["daily_used"] == 0


async def test_a_dead_workers_search_is_ended_and_refunded_with_nobody_listening(
    client: httpx.AsyncClient, redis: Redis, flusher: None
) -> None:
    body, user_id, charge = await _charged_user(client)
    # A search that a worker (which then died: it never sends a heartbeat) had started and charged for.
    search_id = "d" * 32
    await redis.hset(
        meta_key(search_id),
        mapping={"owner": f"user:{user_id}", "charge": msgspec.json.encode(charge), "worker": "gone-worker"},
    )
    await redis.xadd(events_key(search_id), {"event": "sources", "data": b'{"results": []}'})
    await redis.zadd(RUNNING_KEY, {search_id: int(time.time() * 1000)})
    entries = await wait_until(lambda: redis.xrange(events_key(search_id)), lambda e: len(e) == 2, timeout_s=15)
    assert entries[-1][1][b"event"] == b"error" and b"worker_lost" in entries[-1][1][b"data"]
    await _until_unit_given_back(client, body)


@pytest.mark.parametrize(
    ("found_by", "refunded"), [("reader", True), ("sweep", True), ("reader", False)], ids=["reader", "sweep", "cancel"]
)
async def test_a_search_whose_ender_died_before_its_refund_is_refunded_when_its_stream_is_sealed(
    client: httpx.AsyncClient, redis: Redis, flusher: None, found_by: str, refunded: bool
) -> None:
    """`end` takes the ended mark, queues the refund, then writes `error`. A process that died between the
    mark and the refund left a stream that readers seal with an `error`, and the unit was never given back
    (before: daily_used stayed 1); with nobody reading, the sweep passed it over (its own `end` found the
    mark taken). The mark now says the search is to be refunded, and the seal, by a reader or by the
    sweep once the search's worker is gone, queues it. A cancel is not refunded, sealed or not."""
    body, user_id, charge = await _charged_user(client)
    search_id = uuid.uuid4().hex
    sessions = SearchSessions(redis, ttl_s=120)
    await sessions.create(search_id, f"user:{user_id}", charge, int(time.time() * 1000))
    await sessions.emit(search_id, "sources", {"results": []})
    if found_by == "sweep":  # its worker had claimed it, then died
        await redis.hset(meta_key(search_id), "worker", "gone-worker")  # type: ignore[misc]
        await redis.zadd(RUNNING_KEY, {search_id: int(time.time() * 1000)})

    class Died(Exception):
        pass

    async def dies(*_: object) -> None:
        raise Died  # the process ending the search stops here: after its mark, before its refund or event

    reason = "answer_failed" if refunded else "cancelled"
    ender = SearchSessions(redis, ttl_s=120)
    ender.refund = dies  # type: ignore[method-assign]
    ender._append = dies  # type: ignore[method-assign]
    with pytest.raises(Died):
        await ender.end(search_id, reason, "The search stopped.", refund=refunded)
    # A mark just taken is not the sweep's to seal: its ender may still write its own event.
    assert await sessions.sweep() == 0 and await redis.xlen(events_key(search_id)) == 1

    if found_by == "reader":
        events = await read_events(client, f"/api/searches/{search_id}/events")
        assert [e[1] for e in events] == ["sources", "error"] and events[-1][2]["reason"] == reason
    else:
        entries = await wait_until(lambda: redis.xrange(events_key(search_id)), lambda e: len(e) == 2, timeout_s=20)
        assert entries[-1][1][b"event"] == b"error" and reason.encode() in entries[-1][1][b"data"]
        assert await wait_until(lambda: redis.zscore(RUNNING_KEY, search_id), lambda v: v is None) is None
    counter = keys.counter(charge.subject)
    if not refunded:
        # The seal queues a refund before its `error`: none queued and none applied means none was asked.
        assert await redis.xlen(REFUND_STREAM) == 0 and await redis.hget(counter, "refunded") in (None, b"0")
        return
    await _until_unit_given_back(client, body)
    # Each reader that seals queues the refund again; the unit still comes back once.
    assert await redis.hget(counter, "refunded") == b"1"


async def test_the_session_cookie_searches_as_the_signed_in_user(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    no_csrf = await client.post("/api/searches", json={"query": "video on demand"})
    assert no_csrf.status_code == 403 and no_csrf.json()["reason"] == "csrf"
    created = await client.post("/api/searches", json={"query": "video on demand"}, headers=headers)
    assert created.status_code == 202, created.text
    assert created.json()["quota"]["access_tier"] == "registered" and created.json()["quota"]["limit"] == 10
    assert (await read_events(client, created.json()["events_url"]))[-1][1] == "done"


async def test_a_refused_question_costs_nothing(client: httpx.AsyncClient, redis: Redis, flusher: None) -> None:
    before = (await client.post("/api/searches", json={"query": "resize images on the fly"})).json()
    await read_events(client, before["events_url"])
    assert before["quota"]["remaining"] == 2
    refused = (await client.post("/api/searches", json={"query": "what is the best lasagne recipe"})).json()
    events = await read_events(client, refused["events_url"])
    assert events[0][2]["no_match"] is True and events[-1][1] == "done"
    assert events[-1][2]["answer"].count("catalog") == 1  # said once, with a suggestion, not twice
    anon_id = str(client.cookies["anon_id"]).rsplit(".", 1)[0]
    counter = keys.counter(keys.anonymous_subject(anon_id, "aws-solution-finder"))
    refunded = await wait_until(lambda: redis.hget(counter, "refunded"), lambda v: v == b"1")
    assert refunded == b"1"
    after = (await client.post("/api/searches", json={"query": "schedule ec2 instances"})).json()
    assert after["quota"]["remaining"] == 1, after  # only the two answered questions counted


async def test_forwarded_for_is_believed_only_from_configured_proxies(client: httpx.AsyncClient, stack: Stack) -> None:
    base = start_gateway(stack, "gateway-forwarded", {"ANONYMOUS_IP_DAILY_LIMIT": "3"})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            statuses = []
            for n in range(5):
                http.cookies.clear()  # a fresh anonymous visitor each time, from a "different" address
                r = await http.post(
                    "/api/searches", json={"query": "video on demand"}, headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
                statuses.append(r.status_code)
        assert statuses == [202, 202, 202, 429, 429]
    finally:
        stack.stop("gateway-forwarded")
    trusted = start_gateway(stack, "gateway-proxied", {"ANONYMOUS_IP_DAILY_LIMIT": "1", "TRUSTED_PROXIES": "127.0.0.1"})
    try:
        async with httpx.AsyncClient(base_url=trusted, timeout=30) as http:
            statuses = []
            for n in range(3):
                http.cookies.clear()
                r = await http.post(
                    "/api/searches", json={"query": "video on demand"}, headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
                statuses.append(r.status_code)
        assert statuses == [202, 202, 202]  # behind a configured proxy, each visitor is their own address
    finally:
        stack.stop("gateway-proxied")


async def test_metrics_need_the_scrape_token_when_one_is_set(stack: Stack, clean: None) -> None:
    base = start_gateway(stack, "gateway-metrics", {"METRICS_TOKEN": "scrape-secret-123"})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await http.get("/metrics")).status_code == 403
            ok = await http.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
            assert ok.status_code == 200 and "sf_http_requests_total" in ok.text
    finally:
        stack.stop("gateway-metrics")


async def test_cookies_are_secure_under_https(stack: Stack, clean: None) -> None:
    base = start_gateway(
        stack,
        "gateway-https",
        {"PUBLIC_BASE_URL": "https://finder.example.com", "SECRET_KEY": "a-production-secret-of-enough-length-1234"},
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            page = await http.get("/api/auth/csrf")
            search = await http.post("/api/searches", json={"query": "video on demand"})
        for response, name in ((page, "csrftoken"), (search, "anon_id")):
            cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(name))
            assert "secure" in cookie.lower(), cookie
    finally:
        stack.stop("gateway-https")
