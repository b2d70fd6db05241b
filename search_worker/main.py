"""The search workers: arq's worker woken by a blocking read instead of fast polling, a typed context,
msgpack jobs, heartbeats, and a thread pool sized to the cores for the CPU-bound steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from arq.connections import RedisSettings
from arq.worker import Worker

from core.connections import create_redis, queue_redis_settings
from core.cpu import create_cpu_pool
from core.logs import configure
from core.search_sessions import SearchSessions
from core.settings import Settings, load_settings
from core.streams import ABORT_KEY, QUEUE_NAME, WAKE_KEY, WORKERS_KEY, worker_index_key
from search_worker.answerers import create_answerer
from search_worker.embedders import create_embedder, create_scope_embedder
from search_worker.embedding_cache import models
from search_worker.index import open_current
from search_worker.jobs import WorkerContext, run_search

log = logging.getLogger("search_worker")
HEARTBEAT_INTERVAL_S = 1.0
MAX_JOBS = 8


class WakeableWorker(Worker):
    """arq's worker, but an idle one sleeps in BLPOP on WAKE_KEY, which every submit pushes to, so a job
    starts within a round trip and an idle worker costs nothing. arq's own loop then runs without a delay
    of its own; `safety_poll_s` bounds each wait, for a wake-up taken by a worker that died."""

    def __init__(self, *, safety_poll_s: float, **kwargs: Any) -> None:
        super().__init__(poll_delay=0, **kwargs)
        self.safety_poll_s = safety_poll_s

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        if not self.burst and self.allow_pick_jobs:
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        running = [task for task in self.tasks.values() if not task.done()]
        if self.job_counter >= self.max_jobs and running:
            # Every slot busy: the wake-ups stay in the list for a worker with room, or for us once a job ends.
            await asyncio.wait(running, timeout=self.safety_poll_s, return_when=asyncio.FIRST_COMPLETED)
            return
        await self.pool.blpop([WAKE_KEY], timeout=self.safety_poll_s)  # type: ignore[misc, arg-type]


async def _heartbeat(context: WorkerContext) -> None:
    while True:
        now_ms = int(time.time() * 1000)
        with contextlib.suppress(Exception):
            async with context.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(WORKERS_KEY, {context.worker_id: now_ms})
                pipe.zremrangebyscore(WORKERS_KEY, 0, now_ms - 60_000)
                pipe.set(worker_index_key(context.worker_id), context.index.version, px=10_000)
                await pipe.execute()
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    # Embedding and scoring run here, off the event loop, so eight jobs can share it; one thread per core.
    cpu = create_cpu_pool("search-cpu")
    ctx["cpu"] = cpu
    embedder = create_embedder(settings, executor=cpu)
    scope_embedder = create_scope_embedder(settings)
    index = open_current(settings.index_dir, embedder.name, *models(embedder, scope_embedder))
    if index is None:
        raise SystemExit("no search index: run `make index` (make up builds it on first start)")
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    # On a cluster arq's own client reaches only the queue's node; the search keys need a cluster client.
    redis = create_redis(settings) if settings.redis_cluster else ctx["redis"]
    context = WorkerContext(
        settings=settings,
        redis=redis,
        embedder=embedder,
        scope_embedder=scope_embedder,
        answerer=create_answerer(settings),
        index=index,
        worker_id=worker_id,
        cpu=cpu,
        sessions=SearchSessions(redis, ttl_s=settings.stream_ttl_s, maxlen=settings.stream_maxlen),
    )
    ctx["app"] = context
    ctx["heartbeat"] = asyncio.create_task(_heartbeat(context))
    log.info("worker %s ready with index %s", worker_id, index.version)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    task = ctx.get("heartbeat")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    context: WorkerContext | None = ctx.get("app")
    if context is not None:
        with contextlib.suppress(Exception):
            await context.redis.zrem(WORKERS_KEY, context.worker_id)
        if context.redis is not ctx["redis"]:
            await context.redis.aclose()
    cpu: ThreadPoolExecutor | None = ctx.get("cpu")
    if cpu is not None:
        cpu.shutdown(wait=False, cancel_futures=True)


def _tag_arq_abort_set() -> None:
    """arq names its abort set `arq:abort` and removes finished jobs from it in the same MULTI as their own
    keys; on a cluster that crosses slots. The name is a module global read at call time: give it the tag."""
    import arq.worker

    arq.worker.abort_jobs_ss = ABORT_KEY  # type: ignore[attr-defined]


def create_worker_settings(settings: Settings, redis_settings: RedisSettings | None = None) -> dict[str, Any]:
    _tag_arq_abort_set()
    return {
        "functions": [run_search],
        "queue_name": QUEUE_NAME,
        "redis_settings": redis_settings or RedisSettings.from_dsn(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {"settings": settings},
        "safety_poll_s": settings.arq_poll_delay_s,
        "job_timeout": settings.job_timeout_s,
        "max_tries": 1,
        "max_jobs": MAX_JOBS,
        "keep_result": 60,
        "job_serializer": msgspec.msgpack.Encoder(enc_hook=repr).encode,
        "job_deserializer": msgspec.msgpack.decode,
        "handle_signals": True,
    }


def main() -> None:
    settings = load_settings()
    configure(settings.log_level)
    # On a cluster, find the queue's node first (with a loop of its own; arq makes its loop afterwards).
    redis_settings = asyncio.run(queue_redis_settings(settings)) if settings.redis_cluster else None
    worker = WakeableWorker(**create_worker_settings(settings, redis_settings))
    worker.run()


if __name__ == "__main__":
    main()
