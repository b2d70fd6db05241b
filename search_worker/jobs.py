"""The search job: retrieve, stream `sources`, the answer's `token`s, then `done` or `error`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from core import stats
from core.logs import REQUEST_ID
from core.messages import DoneEvent, SearchJob, SourcesEvent, TokenEvent
from core.metrics import FIRST_TOKEN_SECONDS, JOB_SECONDS, QUEUE_WAIT_SECONDS, TOKENS_STREAMED
from core.search_sessions import SearchSessions
from core.settings import Settings
from search_worker.answerers import NO_MATCH_ANSWER, Answerer, AnswerError, AnswerUsage, parse_citations
from search_worker.embedders import Embedder
from search_worker.embedding_cache import models
from search_worker.index import LoadedIndex, current_version
from search_worker.retrieval import Retrieval, create_retriever

log = logging.getLogger("search_worker")


@dataclass
class WorkerContext:
    """What every job gets: built once in on_startup, never at import."""

    settings: Settings
    redis: Redis
    embedder: Embedder
    answerer: Answerer
    index: LoadedIndex
    worker_id: str
    sessions: SearchSessions
    cpu: Executor | None = None  # the CPU-bound steps run here, not on the event loop
    scope_embedder: Embedder | None = None  # the out-of-scope test's model when it is not the ranking one
    jobs_run: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    async def maybe_reload_index(self) -> None:
        """Switch to a newer index version between jobs, without a restart (loaded in the executor: it
        reads files and builds the spelling table, which would stall every other job's stream)."""
        version = current_version(self.settings.index_dir)
        if version and version != self.index.version:
            try:
                path = Path(self.settings.index_dir) / version
                loop = asyncio.get_running_loop()
                self.index = await loop.run_in_executor(
                    self.cpu, LoadedIndex, path, self.embedder.name, *models(self.embedder, self.scope_embedder)
                )
                log.info("loaded index version %s", version)
            except Exception:
                log.exception("could not load index version %s; keeping %s", version, self.index.version)


async def run_search(ctx: dict[str, Any], payload: dict[str, Any]) -> str:
    context: WorkerContext = ctx["app"]
    job = msgspec.convert(payload, SearchJob)
    REQUEST_ID.set(job.request_id)  # the gateway's request id follows the search into this job's logs
    started_at = time.perf_counter()
    outcome = "failed"
    try:
        outcome = await _run(context, job)
        return outcome
    finally:
        elapsed = time.perf_counter() - started_at
        JOB_SECONDS.labels(outcome).observe(elapsed)
        log.info("search %s %s in %.0f ms", job.search_id, outcome, elapsed * 1000)


async def _run(context: WorkerContext, job: SearchJob) -> str:
    sessions = context.sessions
    search_id = job.search_id
    started = time.perf_counter()
    queue_ms = max(0.0, time.time() * 1000 - job.enqueued_at_ms) if job.enqueued_at_ms else 0.0
    QUEUE_WAIT_SECONDS.observe(queue_ms / 1000)
    # Retrieval starts while the claim's round trip is in flight; nothing is written before the claim.
    retrieving = asyncio.ensure_future(_retrieve(context, job))
    try:
        claimed = await sessions.claim(search_id, context.worker_id)
    except BaseException:
        retrieving.cancel()
        raise
    if not claimed:
        # A job that already wrote events was interrupted (its worker died): never run it twice.
        retrieving.cancel()
        with contextlib.suppress(BaseException):
            await retrieving
        await sessions.end(search_id, "worker_lost", "The search worker stopped; try again.")
        return "duplicate"
    try:
        retrieval = await retrieving
        sources = [] if retrieval.no_match else retrieval.results
        await sessions.emit(
            search_id,
            "sources",
            SourcesEvent(results=sources, answer_mode=context.answerer.mode, no_match=retrieval.no_match),
        )
        usage = AnswerUsage()
        first_token_ms: float | None
        if retrieval.no_match:
            pieces, first_token_ms = await _refuse(context, job, started)
        else:
            answered = await _answer(context, job, sources, usage, started)
            if answered is None:
                return "cancelled"
            pieces, first_token_ms = answered
        answer = "".join(pieces)
        timings = {
            "queue_ms": round(queue_ms, 2),
            **{k: round(v, 2) for k, v in retrieval.timings_ms.items()},
            "first_token_ms": round(first_token_ms or 0.0, 2),
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        done = DoneEvent(
            answer=answer, citations=parse_citations(answer, sources), usage=usage.as_dict(), timings_ms=timings
        )
        if not await sessions.finish(search_id, done):
            return "ended_elsewhere"
        context.jobs_run += 1
        return "done"
    except asyncio.CancelledError:
        # arq cancels a job that runs past its timeout: end the stream and give the unit back.
        await asyncio.shield(sessions.end(search_id, "timeout", "The search took too long."))
        raise
    except AnswerError as exc:
        log.warning("answer failed for search %s: %s", search_id, exc.reason)
        await sessions.end(search_id, exc.reason, "The answer could not be generated; try again.")
        return "failed"
    except Exception:
        log.exception("search %s failed", search_id)
        await sessions.end(search_id, "search_failed", "The search failed; try again.")
        return "failed"


async def _retrieve(context: WorkerContext, job: SearchJob) -> Retrieval:
    await context.maybe_reload_index()
    retriever = create_retriever(context.index, context.embedder, context.settings, context.cpu, context.scope_embedder)
    return await retriever.retrieve(job.query, k=job.k, collection=job.collection)


async def _refuse(context: WorkerContext, job: SearchJob, started: float) -> tuple[list[str], float]:
    """An out-of-scope question costs nothing: its unit goes back before the answer is sent."""
    await context.sessions.refund(job.search_id, "no_match")
    # The catalog's to-do list: questions nothing in it answers.
    await context.redis.xadd(
        stats.NO_MATCH_STREAM,
        {"query": job.query[:300], "tier": job.access_tier},
        maxlen=stats.NO_MATCH_MAXLEN,
        approximate=True,
    )
    await context.sessions.emit(job.search_id, "token", TokenEvent(text=NO_MATCH_ANSWER))
    return [NO_MATCH_ANSWER], (time.perf_counter() - started) * 1000


async def _answer(
    context: WorkerContext, job: SearchJob, sources: list[Any], usage: AnswerUsage, started: float
) -> tuple[list[str], float | None] | None:
    """Stream the answer's pieces; None when the caller cancelled (the search is then ended)."""
    sessions = context.sessions
    first_token_ms: float | None = None
    pieces: list[str] = []
    async for piece in context.answerer.stream(job.query, sources, usage):
        if first_token_ms is None:
            first_token_ms = (time.perf_counter() - started) * 1000
            FIRST_TOKEN_SECONDS.observe(first_token_ms / 1000)
        TOKENS_STREAMED.labels(context.answerer.mode).inc()
        pieces.append(piece)
        await sessions.emit(job.search_id, "token", TokenEvent(text=piece))
        if await sessions.cancelled(job.search_id):
            # Cancelling after the answer started keeps the charge: the work was done for the caller.
            await sessions.end(job.search_id, "cancelled", "The search was cancelled.", refund=False)
            return None
    return pieces, first_token_ms
