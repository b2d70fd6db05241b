"""Sends script calls to Redis in batches: while a few batches are in flight, new calls wait and go
together in the next one.

Under load many decisions are waiting at once; one round trip for all of them costs far less per
decision than a call each. On a single server a batch is one EVALSHA of a wrapper script that runs the
script once per call (the client packs and parses one command instead of a pipeline of them, which
was most of the validator's Redis cost); each call's result or error comes back on its own. A cluster
refuses keys of several slots in one script, so there each call goes to its own node. When the gateway
is idle a call goes out at once, so nothing waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

MAX_BATCH = 256
MAX_IN_FLIGHT = 2
# ARGV: the number of calls, then per call its key count, its argument count and its arguments; KEYS: every
# call's keys in order. A failing call answers its own error; the others still run.
_WRAPPER = """
local function one(KEYS, ARGV)
{body}
end
local out, k, a = {}, 1, 2
for i = 1, tonumber(ARGV[1]) do
  local nkeys, nargs = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local call_keys, call_args = {}, {}
  for j = 1, nkeys do call_keys[j] = KEYS[k + j - 1] end
  for j = 1, nargs do call_args[j] = ARGV[a + 1 + j] end
  k, a = k + nkeys, a + 2 + nargs
  local ok, result = pcall(one, call_keys, call_args)
  if ok then out[i] = result else out[i] = redis.error_reply(tostring(result)) end
end
return out
"""


class ScriptBatcher:
    def __init__(self, redis: Redis | RedisCluster, source: str) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.source = source
        self.batch_source = _WRAPPER.replace("{body}", source)
        self.sha: str | None = None
        self.batch_sha: str | None = None
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
                await self._load()
            results = await self._run(batch)
            if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted and forgot the script
                await self._load()
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

    async def _load(self) -> None:
        self.sha = str(await self.redis.script_load(self.source))
        if not self.cluster:
            self.batch_sha = str(await self.redis.script_load(self.batch_source))

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> list[Any]:
        if len(batch) == 1 or self.cluster:
            calls: list[Any] = [self.redis.evalsha(self.sha, *call) for call, _ in batch]  # type: ignore[arg-type]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        keys: list[Any] = []
        args: list[Any] = [len(batch)]
        for call, _ in batch:
            count = call[0]
            keys.extend(call[1 : 1 + count])
            args.extend((count, len(call) - 1 - count, *call[1 + count :]))
        try:
            results = await self.redis.evalsha(self.batch_sha, len(keys), *keys, *args)  # type: ignore[arg-type, misc]
        except NoScriptError as exc:
            return [exc] * len(batch)
        return list(results)
