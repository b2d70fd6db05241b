"""Issue 15: workers are woken by a submit instead of polling, one reader per gateway process relays every
open stream, the validator's Redis calls go in one script per batch and it is in the OpenAPI document,
CPU-bound steps run off the event loop, and an index build embeds only what the shipped cache lacks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from api.identity import ANON_COOKIE, mint_anon_id
from core import search_sessions
from core.search_sessions import MAX_STREAMS_PER_CALLER, SearchSessions
from core.settings import DEV_SECRET, Settings, load_settings
from core.stream_relay import StreamRelay
from core.streams import ended_key, events_key, meta_key
from quota.batcher import ScriptBatcher
from search_worker.embedders import MiniLMEmbedder, create_embedder, create_scope_embedder
from search_worker.embedding_cache import EmbeddingCache, scope_cache_path
from search_worker.index import SCOPE_GROUPS, TEXT_GROUPS, build_index, index_texts, open_current, read_catalog
from search_worker.retrieval import Retriever
from tests.conftest import CATALOG, ROOT, Stack, read_events
from tests.helpers import wait_until


async def _command_calls(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


# --- the queue: wake-ups, not polling ---------------------------------------------------------------------
async def test_a_submit_wakes_the_worker_though_its_poll_is_five_minutes(client: httpx.AsyncClient) -> None:
    # The session's worker runs with ARQ_POLL_DELAY_S=300: only the wake-up can start this job quickly.
    started = time.monotonic()
    created = (await client.post("/api/searches", json={"query": "resize images on the fly"})).json()
    events = await read_events(client, created["events_url"])
    assert events[-1][1] == "done"
    assert events[-1][2]["timings_ms"]["queue_ms"] < 1000  # before: up to the poll delay
    assert time.monotonic() - started < 15


async def test_an_idle_worker_does_not_poll_the_queue(stack: Stack, redis: Redis, clean: None) -> None:
    default_poll = str(Settings().arq_poll_delay_s)  # the shipped default, not the session's 300 s
    stack.spawn("worker-idle", ["-m", "search_worker.main"], env={"ARQ_POLL_DELAY_S": default_poll})
    try:
        live = await wait_until(lambda: redis.zcard("search:workers"), lambda n: n >= 2, timeout_s=60)
        assert live >= 2
        # Wait for three of its polls, then see how long they took: the 1 s safety net needs ~3 s for them;
        # the old default, polling every 10 ms, needed 30 ms.
        before = await _command_calls(redis, "zrangebyscore")
        started = time.monotonic()
        await wait_until(lambda: _command_calls(redis, "zrangebyscore"), lambda n: n - before >= 3, timeout_s=30)
        elapsed = time.monotonic() - started
        assert elapsed >= 1.5, f"three polls of the queue in {elapsed:.2f} s"
    finally:
        stack.stop("worker-idle")


# --- the relay: one reader per gateway process --------------------------------------------------------------
async def _owned_searches(redis: Redis, count: int) -> list[tuple[str, str]]:
    """Unfinished searches, eight to an anonymous visitor: (cookie, search id)."""
    visitors = [mint_anon_id(DEV_SECRET) for _ in range(0, count, MAX_STREAMS_PER_CALLER)]
    pairs = []
    for n in range(count):
        anon_id, cookie = visitors[n // MAX_STREAMS_PER_CALLER]
        search_id = uuid.uuid4().hex
        await redis.hset(meta_key(search_id), mapping={"owner": f"anon:{anon_id}", "charge": b"null"})
        pairs.append((cookie, search_id))
    return pairs


async def _blocked_xreads(redis: Redis) -> int:
    clients = await redis.client_list()
    return sum(1 for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


async def test_one_reader_relays_many_streams_and_closes_them(stack: Stack, redis: Redis, clean: None) -> None:
    pairs = await _owned_searches(redis, 40)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        readers = [
            asyncio.create_task(read_events(http, f"/api/searches/{sid}/events", {"Cookie": f"{ANON_COOKIE}={c}"}))
            for c, sid in pairs
        ]
        leases = await wait_until(lambda: redis.keys("search:streams:*"), lambda k: len(k) == 5, timeout_s=15)
        assert len(leases) == 5  # every visitor's streams are open
        await asyncio.sleep(0.3)
        assert await _blocked_xreads(redis) <= 1  # before: one blocked XREAD (and connection) per stream
        for n in range(5):
            async with redis.pipeline(transaction=False) as pipe:
                for _, sid in pairs:
                    name = "done" if n == 4 else "token"
                    pipe.xadd(events_key(sid), {"event": name, "data": json.dumps({"n": n, "of": sid})})
                await pipe.execute()
        results = await asyncio.wait_for(asyncio.gather(*readers), 20)
    for (_, sid), events in zip(pairs, results, strict=True):
        assert [e[1] for e in events] == ["token"] * 4 + ["done"]
        assert [e[2] for e in events] == [{"n": n, "of": sid} for n in range(5)]  # its own, in order
    released = await wait_until(lambda: redis.keys("search:streams:*"), lambda k: not k)
    assert released == []


async def test_the_relay_takes_a_new_stream_without_waiting_for_its_block(redis: Redis, clean: None) -> None:
    relay = StreamRelay(redis, block_ms=30_000)
    reader = asyncio.create_task(relay.run())
    try:
        first, second = events_key("a" * 32), events_key("b" * 32)
        async with relay.subscribe(first, "0-0") as one:
            await redis.xadd(first, {"event": "token", "data": "1"})
            assert (await asyncio.wait_for(one.queue.get(), 5)).data == "1"  # the reader is now blocked
            await redis.xadd(second, {"event": "token", "data": "early"})
            started = time.monotonic()
            async with relay.subscribe(second, "0-0") as late, relay.subscribe(second, "0-0") as twin:
                got = [await asyncio.wait_for(s.queue.get(), 5) for s in (late, twin)]
                assert [g.data for g in got] == ["early", "early"]
                assert time.monotonic() - started < 2  # not after the 30 s block
            assert relay.open_streams == 1
        assert relay.open_streams == 0
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


@pytest.mark.parametrize("multiplexed", [True, False], ids=["relay", "own-xread"])
async def test_a_stream_that_sees_the_ended_mark_before_the_error_still_gets_the_error(
    redis: Redis, clean: None, monkeypatch: pytest.MonkeyPatch, multiplexed: bool
) -> None:
    """`end` marks the search ended, queues its refund, then writes `error`. A stream whose idle round fell
    between the two used to stop there without the error event (CI caught it on a Bedrock failure). And a
    worker still answering a search that a cancel or the sweep ended wrote tokens after its error."""
    monkeypatch.setattr(search_sessions, "READ_BLOCK_MS", 100)
    relay = StreamRelay(redis, idle_s=0.1) if multiplexed else None
    reader = asyncio.create_task(relay.run()) if relay else None
    sessions = SearchSessions(redis, ttl_s=60, relay=relay)
    sid = uuid.uuid4().hex
    stream = sessions.events(sid, "0-0")
    try:
        token_id = await sessions.emit(sid, "token", {"text": "Use "})
        assert (await asyncio.wait_for(anext(stream), 10)).event == "token"  # type: ignore[union-attr]
        await redis.set(ended_key(sid), "answer_failed")  # the writer is between its mark and its event
        assert await asyncio.wait_for(anext(stream), 10) is None  # before: StopAsyncIteration, no error event
        # The worker, still answering, cannot write after the mark; the mark's owner writes the error.
        assert await sessions.emit(sid, "token", {"text": "late"}) == ""  # before: appended
        await sessions._append(sid, "error", {"reason": "answer_failed", "error": "The model stream failed."})
        # The check reads the mark and the stream's last entry together: an error written after the mark
        # and after the reader's last event means "more to read" (two separate reads could say "ended").
        assert await sessions._where(sid, token_id) == search_sessions.OPEN
        item = await asyncio.wait_for(anext(stream), 10)
        while item is None:  # an idle round may come first
            item = await asyncio.wait_for(anext(stream), 10)
        assert item.event == "error"
        assert await sessions._where(sid, item.event_id) == search_sessions.PAST_END
        # A writer that died between the two: after a few idle rounds the reader seals the stream with the
        # mark's reason, so it still ends with an `error` (before: it ended with none, and every reconnect
        # waited the same rounds again until the stream's TTL).
        gone = uuid.uuid4().hex
        await sessions.emit(gone, "sources", {"results": []})
        await redis.set(ended_key(gone), "answer_failed")
        items = [item async for item in sessions.events(gone, "0-0")]
        assert items[0] is not None and items[0].event == "sources"
        assert items[1:-1] == [None] * len(items[1:-1]) and len(items[1:-1]) > search_sessions.ENDED_GRACE_ROUNDS
        sealed = items[-1]
        assert sealed is not None and sealed.event == "error"
        assert json.loads(sealed.data)["reason"] == "answer_failed"
        # The writer was only slow: its terminal event comes too late and is refused, one terminal stays.
        assert await sessions._append(gone, "error", {"reason": "answer_failed", "error": "late"}) == ""
        assert not await sessions.finish(gone, {"answer": "late"})
        assert [item async for item in sessions.events(gone, sealed.event_id)] == []  # past the end at once
        assert await redis.xlen(events_key(gone)) == 2
    finally:
        await stream.aclose()
        if reader:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


# --- the validator ----------------------------------------------------------------------------------------
async def test_one_script_call_answers_a_batch_and_each_call_keeps_its_error(redis: Redis, clean: None) -> None:
    script = "if ARGV[1] == 'boom' then error('boom') end return {KEYS[1], ARGV[1], #KEYS}"
    batcher = ScriptBatcher(redis, script)
    await batcher(["warm"], ["up"])  # loads the scripts
    before = await _command_calls(redis, "evalsha")
    calls = [
        batcher([f"k{n}", f"extra{n}"] if n % 2 else [f"k{n}"], ["boom" if n == 7 else f"a{n}"]) for n in range(40)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[7], ResponseError) and "boom" in str(results[7])
    for n, result in enumerate(results):
        if n != 7:
            assert result == [f"k{n}".encode(), f"a{n}".encode(), 2 if n % 2 else 1]
    assert await _command_calls(redis, "evalsha") - before < 40 // 4  # batches, not a call each


async def test_the_events_route_is_documented_as_an_event_stream(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    ok = document["paths"]["/api/searches/{search_id}/events"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}  # before: "application/json"


async def test_the_validator_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/api/validate-solution-token"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(document["components"]["schemas"][body]["properties"]) >= {"token", "solution_id", "check_only"}
    responses = operation["responses"]
    assert {"200", "401", "403", "405", "413", "422", "429"} <= set(responses)
    ok = responses["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"allowed", "quota_remaining", "quota"} <= set(document["components"]["schemas"][ok]["properties"])
    assert "RateLimit" in responses["200"]["headers"]
    assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    refused = await client.post(
        "/api/validate-solution-token", json={"token": "x", "solution_id": "aws-solution-finder"}
    )
    assert refused.status_code == 401 and refused.json()["reason"] == "invalid_token"  # still the bare handler


# --- CPU off the event loop ---------------------------------------------------------------------------------
async def test_retrieval_embeds_and_scores_off_the_event_loop(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    index = open_current(stack.settings.index_dir, "minilm")
    assert index is not None
    seen: list[str] = []
    with ThreadPoolExecutor(2, thread_name_prefix="search-cpu") as cpu:
        embedder = MiniLMEmbedder(1, cpu)
        retriever = Retriever(index, embedder, min_relevance=0.3, executor=cpu)
        real_embed, real_fuse = embedder.embed_sync, retriever._fuse

        def embed(texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
            seen.append(threading.current_thread().name)
            return real_embed(texts)

        def fuse(*args: object) -> object:
            seen.append(threading.current_thread().name)
            return real_fuse(*args)  # type: ignore[arg-type]

        embedder.embed_sync = embed  # type: ignore[method-assign]
        retriever._fuse = fuse  # type: ignore[method-assign,assignment]
        result = await retriever.retrieve("resize images on the fly", k=3)
    assert result.results and not result.no_match
    assert len(seen) == 2 and all(name.startswith("search-cpu") for name in seen), seen


# --- the shipped embedding cache ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(1)


def test_the_shipped_cache_holds_every_text_of_the_shipped_catalog() -> None:
    """Else the first `make up` embeds for minutes: run `make embeddings` after editing the catalog (or
    after changing MINILM_MODEL / MINILM_SCOPE_MODEL). Both shipped models: ranking and scope."""
    settings = load_settings({})
    path = ROOT / settings.embedding_cache_path
    by_group = index_texts(read_catalog(CATALOG))
    ranking, scope = create_embedder(settings), create_scope_embedder(settings)
    assert scope is not None
    for model, cache_file, groups in ((ranking, path, TEXT_GROUPS), (scope, scope_cache_path(path), SCOPE_GROUPS)):
        cache = EmbeddingCache.load(cache_file, model)
        missing = [t[:60] for group in groups for t in by_group[group] if cache.get(t) is None]
        assert not missing, f"{cache_file.name}: {len(missing)} texts not in the cache, e.g. {missing[:3]}"


def test_a_build_embeds_only_what_the_cache_lacks(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in CATALOG.read_text().splitlines()[:4]]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    embedded: list[int] = []
    real = embedder.embed_sync

    def counting(texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        embedded.append(len(texts))
        return real(texts)

    embedder.embed_sync = counting  # type: ignore[method-assign]
    try:
        cache = EmbeddingCache.load(None, embedder)
        build_index(catalog, tmp_path / "first", embedder, cache=cache)
        first = sum(embedded)
        path = tmp_path / "cache.npz"
        cache.save(path)
        embedded.clear()
        build_index(catalog, tmp_path / "second", embedder, cache=EmbeddingCache.load(path, embedder))
        assert first >= 3 * 4 + len(index_texts([])["off_topic"]) and sum(embedded) == 0
        rows[0]["summary"] = "An entirely new summary of the first entry."
        catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
        build_index(catalog, tmp_path / "third", embedder, cache=EmbeddingCache.load(path, embedder))
        assert sum(embedded) == 2  # its summary view and its full text changed; nothing else
    finally:
        embedder.embed_sync = real  # type: ignore[method-assign]
    versions = [open_current(tmp_path / name, "minilm") for name in ("first", "second")]
    assert versions[0] is not None and versions[1] is not None
    assert np.allclose(versions[0].views, versions[1].views, atol=2e-3)  # float16 in the cache


def test_a_cache_made_with_another_model_is_not_used(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    cache = EmbeddingCache("minilm:0.9.0", embedder.dimension)
    cache.put("a text", np.ones(embedder.dimension, dtype=np.float32))
    cache.save(tmp_path / "old.npz")
    assert len(EmbeddingCache.load(tmp_path / "old.npz", embedder)) == 0
