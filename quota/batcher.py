"""Sends script calls to Redis in pipelines: while a few pipelines are in flight, new calls wait and go
together in the next one.

Under load many decisions are waiting at once; one round trip and one connection checkout for all of
them costs far less per decision than a call each. Each call keeps its own atomic script run. When the
gateway is idle a call goes out at once, so nothing waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

MAX_BATCH = 256
MAX_IN_FLIGHT = 2


class ScriptBatcher:
    def __init__(self, redis: Redis | RedisCluster, source: str) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.source = source
        self.sha: str | None = None
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._in_flight = 0

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(([len(keys), *keys, *args], future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._pending and not self._scheduled and self._in_flight < MAX_IN_FLIGHT:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._in_flight += 1
        task = asyncio.ensure_future(self._flush(batch))
        task.add_done_callback(self._flushed)
        self._schedule()

    def _flushed(self, task: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        if not task.cancelled():
            task.exception()  # _flush hands every error to its callers; this only marks it retrieved
        self._schedule()

    async def _flush(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            if self.sha is None:
                self.sha = str(await self.redis.script_load(self.source))
            results = await self._run(batch)
            if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted and forgot the script
                self.sha = str(await self.redis.script_load(self.source))
                results = await self._run(batch)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> list[Any]:
        if len(batch) == 1 or self.cluster:
            # redis-py refuses EVALSHA in cluster pipelines: there each call goes to its own slot's node.
            calls: list[Any] = [self.redis.evalsha(self.sha, *call) for call, _ in batch]  # type: ignore[arg-type]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        async with self.redis.pipeline(transaction=False) as pipe:
            for call, _ in batch:
                pipe.evalsha(self.sha, *call)  # type: ignore[arg-type]
            return list(await pipe.execute(raise_on_error=False))
