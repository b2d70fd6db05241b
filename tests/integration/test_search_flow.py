"""The walking skeleton end to end: POST a search, read its SSE events in order, anonymous quota, bad input."""

from __future__ import annotations

import httpx

from tests.conftest import read_events


async def test_search_streams_sources_tokens_then_done(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/searches", json={"query": "resize and crop images on the fly for a CDN"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["quota"] == {"access_tier": "anonymous", "limit": 3, "used": 1, "remaining": 2}
    assert "anon_id" in response.cookies
    assert "RateLimit-Policy" in response.headers and "RateLimit" in response.headers

    events = await read_events(client, body["events_url"])
    names = [name for _, name, _ in events]
    assert names[0] == "sources"
    assert names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) > 3
    sources = events[0][2]["results"]
    assert sources and {"id", "title", "url", "summary", "score"} <= set(sources[0])
    assert "solution/serverless-image-handler" in [s["id"] for s in sources[:3]]
    done = events[-1][2]
    streamed = "".join(data["text"] for _, name, data in events if name == "token")
    assert done["answer"] == streamed
    assert done["citations"] and done["citations"][0] == sources[0]["id"]
    assert {"total_ms", "first_token_ms", "embed_ms"} <= set(done["timings_ms"])
    ids = [event_id for event_id, _, _ in events]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


async def test_fourth_anonymous_search_is_refused(client: httpx.AsyncClient) -> None:
    for n in range(3):
        response = await client.post("/api/searches", json={"query": f"serverless api number {n}"})
        assert response.status_code == 202, response.text
    refused = await client.post("/api/searches", json={"query": "one more please"})
    assert refused.status_code == 429
    body = refused.json()
    assert body["reason"] == "anonymous_limit_exceeded"
    assert body["limit"] == 3 and body["used"] == 3 and body["access_tier"] == "anonymous"
    assert body["register_url"].endswith("/register?solution_id=aws-solution-finder")
    assert int(refused.headers["Retry-After"]) > 0
    assert "RateLimit" in refused.headers


async def test_forged_anonymous_cookie_gets_a_fresh_identity(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.post("/api/searches", json={"query": "data lake"})).status_code == 202
    client.cookies.set("anon_id", "someone-else.forgedmac")
    response = await client.post("/api/searches", json={"query": "data lake"})
    # A forged cookie is not honoured: the caller gets a new identity, and a new signed cookie.
    assert response.status_code == 202
    assert response.cookies["anon_id"] != "someone-else.forgedmac"


async def test_resume_with_last_event_id_skips_what_was_seen(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/searches", json={"query": "schedule EC2 instances to stop at night"})).json()
    full = await read_events(client, body["events_url"])
    cut = full[2][0]
    resumed = await read_events(client, body["events_url"], headers={"Last-Event-ID": cut})
    assert [e[0] for e in resumed] == [e[0] for e in full[3:]]
    # Resuming is not a new search: the quota is unchanged.
    again = await client.post("/api/searches", json={"query": "x"})
    assert again.json()["quota"]["used"] == 2


async def test_out_of_scope_question_gets_no_matching_solution(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/searches", json={"query": "best pizza in Mumbai"})).json()
    events = await read_events(client, body["events_url"])
    assert events[0][1] == "sources"
    assert events[0][2]["no_match"] is True and events[0][2]["results"] == []
    assert "No matching solution" in events[-1][2]["answer"]


async def test_query_endpoint_answers_in_one_document(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/query", json={"query": "video on demand transcoding"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] and body["results"] and body["total_time"] > 0


async def test_unknown_search_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/searches/does-not-exist/events")
    assert response.status_code == 404
    assert response.json()["reason"] == "not_found"


async def test_malformed_bodies_get_400_with_reason(client: httpx.AsyncClient) -> None:
    cases = [
        b"{not json",
        b'{"query": 5}',
        b'{"query": ""}',
        b"{}",
        b'{"query": "ok", "extra": 1}',
        b'{"query": "' + b"x" * 1001 + b'"}',
        b'{"query": "ok", "k": 0}',
        b"[]",
    ]
    for raw in cases:
        response = await client.post("/api/searches", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, (raw[:40], response.status_code, response.text)
        body = response.json()
        assert body["reason"] == "bad_request" and body["error"] and "detail" in body


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text


async def test_search_page_has_the_elements_the_browser_tests_use(client: httpx.AsyncClient) -> None:
    response = await client.get("/search")
    assert response.status_code == 200
    assert 'name="q"' in response.text and 'id="answer"' in response.text and 'id="sources"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
