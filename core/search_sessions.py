"""Owns a search's lifecycle in Redis for both sides: the gateway creates, authorises, relays and cancels
it; the worker claims it, emits its events and finishes it; a periodic sweep ends searches whose worker
died. Whoever ends a search first (done, error, cancel, lost) wins a SET NX, so a search gets exactly
one terminal event and at most one refund, whichever process notices first.

A submit enqueues the arq job and then pushes to WAKE_KEY, which idle workers block on (BLPOP), so a job
starts within a round trip instead of at the workers' next poll. The gateway's SSE responses read their
streams through the process's one StreamRelay (one multiplexed XREAD), or each on its own on a cluster."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from redis.asyncio import Redis

from core.errors import NotFoundError, RateLimitedError, UnavailableError
from core.messages import TERMINAL_EVENTS, Charge, ErrorEvent, RefundRequest, SearchJob
from core.stream_relay import StreamEvent, StreamRelay, parse_id
from core.streams import (
    QUEUE_NAME,
    REFUND_STREAM,
    RUNNING_KEY,
    WAKE_KEY,
    WAKE_MAXLEN,
    WORKERS_KEY,
    cancel_key,
    ended_key,
    events_key,
    job_id,
    meta_key,
    streams_open_key,
)

__all__ = ["SearchSessions", "StreamEvent"]

_encoder = msgspec.json.Encoder()
WORKER_DEAD_AFTER_MS = 5000
MAX_STREAMS_PER_CALLER = 8
STREAM_LEASE_MS = 15 * 60 * 1000  # an open stream is counted at most this long, even if its process died
READ_BLOCK_MS = 2000  # how long a stream waits for an event before it checks whether its search ended
# `end` marks a search ended, queues its refund, then writes its terminal event (the mark decides who
# writes it), so a stream that sees the mark and no terminal event waits this many idle rounds for the
# event before it takes the writer for dead and seals the stream with an `error` itself (the sweep does the
# same for a search whose worker is gone); the mark says whether the search is refunded, so the seal
# queues a refund the dead writer may not have.
ENDED_GRACE_ROUNDS = 3
# The sweep seals a dead worker's search whose mark someone else holds only once the mark is this old: an
# ender still between its mark and its `error` (another gateway's sweep, a worker whose beat went stale
# while it ended) writes its own event with its own message.
SWEEP_SEAL_AFTER_MS = ENDED_GRACE_ROUNDS * READ_BLOCK_MS
PAST_END, ENDING, OPEN = "past_end", "ending", "open"
JOB_FUNCTION = "run_search"


# KEYS: the job record, its result, the queue, the wake-up list. A job id seen before is refused, as
# enqueue_job refuses it; nobody listening, the wake-ups are trimmed instead of piling up.
_ENQUEUE_SCRIPT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('LPUSH', KEYS[4], ARGV[5])
redis.call('LTRIM', KEYS[4], 0, ARGV[6])
return 1
"""

# Every append to a search's events. KEYS: its events and its ended mark (one slot: both carry the search
# id's hash tag). ARGV: maxlen, event, data, ttl, and the rule the append follows:
#   "open"   a non-terminal event, refused once the search is marked ended (nothing after its terminal event);
#   "mark"   `done`: takes the ended mark in the same call, so no writer can die between the two;
#   "marked" an `error` by whoever holds the mark (`end` after its refund, or a reader sealing a stream whose
#            writer died), refused when the stream's last entry is a terminal event already.
_APPEND_SCRIPT = """
if ARGV[5] == 'open' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return false end
elseif ARGV[5] == 'mark' then
  if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[4]) then return false end
else
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if last and (last[2][2] == 'done' or last[2][2] == 'error') then return false end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return id
"""
SEALED_MESSAGE = "The search stopped before its last event was written; try again."
_MARK_SEP, _REFUND = "|", "refund"  # an ended mark: its reason, and "|refund" when `end` refunds the search


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def event_id_of(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


class SearchSessions:
    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: int,
        maxlen: int = 5000,
        queue: ArqRedis | None = None,
        relay: StreamRelay | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.maxlen = maxlen
        self.queue = queue  # arq's client (the queue's node on a cluster); the gateway's only
        self._enqueue = queue.register_script(_ENQUEUE_SCRIPT) if queue is not None else None
        self._append_script = redis.register_script(_APPEND_SCRIPT)
        self.relay = relay

    # --- gateway side -------------------------------------------------------------------------------
    async def create(self, search_id: str, owner: str, charge: Charge | None, created_ms: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                meta_key(search_id),
                mapping={"owner": owner, "charge": _encoder.encode(charge), "created_ms": created_ms},
            )
            pipe.expire(meta_key(search_id), self.ttl_s)
            await pipe.execute()

    async def authorize(self, search_id: str, owner: str) -> None:
        """Only the caller who started a search may read or cancel it; others learn nothing (404)."""
        stored = await self.redis.hget(meta_key(search_id), "owner")  # type: ignore[misc]
        if stored is None or not owner or _text(stored) != owner:
            raise NotFoundError("No such search.", reason="not_found")

    async def submit(self, job: SearchJob, defer_until: dt.datetime | None = None) -> None:
        """Queue the search's job (arq orders by score: an earlier `defer_until` jumps the line) and wake a
        worker; a search that cannot be queued is ended (and refunded) here."""
        assert self.queue is not None and self._enqueue is not None, "only the gateway submits"
        try:
            # What arq's enqueue_job writes (its job record and queue entry), and the wake-up, in one script
            # call: enqueue_job's WATCH, EXISTS and MULTI, then the push, were four round trips before a
            # worker could start. The job keys, the queue and WAKE_KEY share QUEUE_TAG's slot.
            now_ms = timestamp_ms()
            score = to_unix_ms(defer_until) if defer_until is not None else now_ms
            record = serialize_job(
                JOB_FUNCTION, (msgspec.to_builtins(job),), {}, None, now_ms, serializer=self.queue.job_serializer
            )
            arq_id = job_id(job.search_id)
            queued = await self._enqueue(
                keys=[job_key_prefix + arq_id, result_key_prefix + arq_id, QUEUE_NAME, WAKE_KEY],
                args=[
                    record,
                    score - now_ms + self.queue.expires_extra_ms,
                    score,
                    arq_id,
                    job.search_id,
                    WAKE_MAXLEN - 1,
                ],
            )
            if not queued:
                raise RuntimeError(f"search {job.search_id} is already queued")
        except Exception as exc:
            with contextlib.suppress(Exception):  # Redis itself may be what failed
                await self.end(job.search_id, "enqueue_failed", "The search queue is unavailable.")
            raise UnavailableError(
                "The search queue is unavailable; try again shortly.", reason="search_unavailable"
            ) from exc

    async def cancel(self, search_id: str) -> None:
        """Ask the worker to stop; a search that never left the queue is taken out of it and ended here."""
        assert self.queue is not None, "only the gateway cancels"
        still_queued = bool(await self.queue.zrem(QUEUE_NAME, job_id(search_id)))
        await self.redis.set(cancel_key(search_id), "1", ex=self.ttl_s)
        if still_queued:
            await self.end(search_id, "cancelled", "The search was cancelled.")

    async def open_stream(self, owner: str) -> str:
        """Count an SSE stream against its caller's cap; returns the lease to give back with close_stream."""
        key = streams_open_key(owner)
        lease = uuid.uuid4().hex
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, 0, now_ms - STREAM_LEASE_MS)
            pipe.zadd(key, {lease: now_ms})
            pipe.zcard(key)
            pipe.pexpire(key, STREAM_LEASE_MS)
            _, _, count, _ = await pipe.execute()
        if int(count) > MAX_STREAMS_PER_CALLER:
            await self.redis.zrem(key, lease)
            raise RateLimitedError(
                f"At most {MAX_STREAMS_PER_CALLER} open streams per caller; close one first.",
                retry_after_s=5,
                reason="too_many_streams",
            )
        return lease

    async def close_stream(self, owner: str, lease: str) -> None:
        await self.redis.zrem(streams_open_key(owner), lease)

    async def events(self, search_id: str, last_id: str) -> AsyncIterator[StreamEvent | None]:
        """The search's events after `last_id`, ending after the terminal one; None when idle (for a
        heartbeat). A resume id past the end of a finished search ends at once instead of waiting."""
        key = events_key(search_id)
        if last_id != "0-0" and await self._where(search_id, last_id) == PAST_END:
            return  # a browser reconnecting after the end: nothing to wait for
        if self.relay is None:
            async for item in self._events_alone(search_id, last_id):
                yield item
            return
        end = _EndWatch(self, search_id)
        async with self.relay.subscribe(key, last_id) as subscription:
            while True:
                event = await subscription.queue.get()
                if event is None:  # the relay's idle round: nothing came for a while
                    if subscription.queue.empty() and await end.over(event_id_of(subscription.last)):
                        return
                    yield None
                    continue
                yield event
                if event.event in TERMINAL_EVENTS:
                    return

    async def _events_alone(self, search_id: str, last_id: str) -> AsyncIterator[StreamEvent | None]:
        """The same, with a blocking XREAD of its own (a cluster, or a process without a relay)."""
        key = events_key(search_id)
        end = _EndWatch(self, search_id)
        while True:
            response = await self.redis.xread({key: last_id}, block=READ_BLOCK_MS, count=100)
            if not response:
                if await end.over(last_id):
                    return
                yield None
                continue
            for _, entries in response:
                for entry_id, fields in entries:
                    last_id = _text(entry_id)
                    event = _text(fields[b"event"])
                    yield StreamEvent(last_id, event, _text(fields[b"data"]))
                    if event in TERMINAL_EVENTS:
                        return

    async def _where(self, search_id: str, last_id: str) -> str:
        """Where a reader that has had everything up to `last_id` stands, from the ended mark and the
        stream's last entry read in one round trip: PAST_END (that entry is the terminal event and the
        reader has had it), ENDING (marked ended, but the terminal event is not written yet) or OPEN
        (more to read, or not ended)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(ended_key(search_id))
            pipe.xrevrange(events_key(search_id), count=1)
            ended, last = await pipe.execute()
        if last and parse_id(_text(last[0][0])) > parse_id(last_id):
            return OPEN
        if last and _text(last[0][1].get(b"event", b"")) in TERMINAL_EVENTS:
            return PAST_END
        return ENDING if ended else OPEN

    # --- worker side --------------------------------------------------------------------------------
    async def claim(self, search_id: str, worker_id: str) -> bool:
        """Mark the search as running on this worker; False if it already ran (its worker died)."""
        if await self.redis.xlen(events_key(search_id)) or await self.redis.exists(ended_key(search_id)):
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(meta_key(search_id), mapping={"worker": worker_id})
            pipe.zadd(RUNNING_KEY, {search_id: int(time.time() * 1000)})
            await pipe.execute()
        return True

    async def emit(self, search_id: str, event: str, data: Any) -> str:
        """Append a non-terminal event, unless the search has ended (a cancel or the sweep ended it while
        this worker was still answering): then nothing is written after its terminal event, and "" is
        returned."""
        return await self._append(search_id, event, data, "open")

    async def _append(
        self, search_id: str, event: str, data: Any, rule: Literal["open", "mark", "marked"] = "marked"
    ) -> str:
        """Append under one of _APPEND_SCRIPT's rules; "" when the rule refuses it. The default writes the
        terminal event for a caller that holds the ended mark; "mark" takes the mark in the same call."""
        stream_id = await self._append_script(
            keys=[events_key(search_id), ended_key(search_id)],
            args=[self.maxlen, event, _encoder.encode(data), self.ttl_s, rule],
        )
        return _text(stream_id) if stream_id else ""

    async def seal(self, search_id: str) -> bool:
        """A stream marked ended whose terminal event never came (its writer died between the two) gets an
        `error` with the mark's reason, so every stream ends with exactly one of `done` or `error`."""
        mark = await self.redis.get(ended_key(search_id))
        if mark is None:
            return False
        reason, _, then = _text(mark).partition(_MARK_SEP)
        if then == _REFUND:
            # The writer may have died before queuing the refund: queue it (again). The flusher gives a
            # search's unit back once, however many requests name it.
            await self.refund(search_id, reason)
        error = ErrorEvent(reason=reason, error=SEALED_MESSAGE)
        return bool(await self._append(search_id, "error", error))

    async def _mark_age_ms(self, search_id: str) -> int:
        """How long ago the ended mark was taken (it is set with the stream's TTL); -1 with no mark."""
        left = await self.redis.pttl(ended_key(search_id))
        return -1 if left < 0 else self.ttl_s * 1000 - left

    async def cancelled(self, search_id: str) -> bool:
        return bool(await self.redis.exists(cancel_key(search_id)))

    async def finish(self, search_id: str, data: Any) -> bool:
        """The `done` event, unless the search was already ended (cancelled or declared lost)."""
        if not await self._append(search_id, "done", data, "mark"):
            return False
        await self.redis.zrem(RUNNING_KEY, search_id)
        return True

    async def end(self, search_id: str, reason: str, message: str, *, refund: bool = True) -> bool:
        """End the search with an `error` event and give its unit back: once, whoever calls first."""
        # The mark says whether the search is to be refunded, so a reader that seals the stream of a writer
        # that died before its refund can still queue it.
        mark = f"{reason}{_MARK_SEP}{_REFUND}" if refund else reason
        if not await self.redis.set(ended_key(search_id), mark, nx=True, ex=self.ttl_s):
            return False
        if refund:
            await self.refund(search_id, reason)
        await self._append(search_id, "error", ErrorEvent(reason=reason, error=message))
        await self.redis.zrem(RUNNING_KEY, search_id)
        return True

    async def refund(self, search_id: str, reason: str) -> None:
        """Queue the refund of what the search charged (the flusher applies it once per search id)."""
        raw = await self.redis.hget(meta_key(search_id), "charge")  # type: ignore[misc]
        charge = msgspec.json.decode(raw, type=Charge | None) if raw else None
        if charge is None or not charge.subject:
            return
        request = RefundRequest(search_id=search_id, charge=charge, reason=reason)
        await self.redis.xadd(REFUND_STREAM, {"data": _encoder.encode(request)}, maxlen=100_000, approximate=True)

    # --- both: the sweep ----------------------------------------------------------------------------
    async def sweep(self) -> int:
        """End every running search whose worker stopped sending heartbeats; returns how many."""
        now_ms = int(time.time() * 1000)
        ended = 0
        for raw in await self.redis.zrange(RUNNING_KEY, 0, 999):
            search_id = _text(raw)
            worker = await self.redis.hget(meta_key(search_id), "worker")  # type: ignore[misc]
            if worker is None:
                await self.redis.zrem(RUNNING_KEY, search_id)  # expired meta: nothing left to end
                continue
            beat = await self.redis.zscore(WORKERS_KEY, worker)
            if beat is None or beat < now_ms - WORKER_DEAD_AFTER_MS:
                if await self.end(search_id, "worker_lost", "The search worker stopped; try again."):
                    ended += 1
                elif await self._mark_age_ms(search_id) >= SWEEP_SEAL_AFTER_MS:
                    # Marked long ago by an ender that died before its refund or its `error`.
                    ended += await self.seal(search_id)
                    await self.redis.zrem(RUNNING_KEY, search_id)
        return ended


class _EndWatch:
    """Asked at each idle round of one reader: is its stream over? Yes once the reader has had the terminal
    event. After ENDED_GRACE_ROUNDS rounds of "marked ended, terminal event not written" its writer is
    taken for dead and the stream is sealed with an `error`, which the reader then reads as any event."""

    def __init__(self, sessions: SearchSessions, search_id: str) -> None:
        self.sessions = sessions
        self.search_id = search_id
        self.ending_rounds = 0

    async def over(self, last_id: str) -> bool:
        where = await self.sessions._where(self.search_id, last_id)
        if where == ENDING:
            self.ending_rounds += 1
            if self.ending_rounds > ENDED_GRACE_ROUNDS:
                await self.sessions.seal(self.search_id)
                self.ending_rounds = 0
        return where == PAST_END
