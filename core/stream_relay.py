"""Owns a gateway process's one reader of the search event streams: a single task blocks in one XREAD over
every stream an SSE response has open and hands each new entry to the responses that follow it.

One blocked XREAD per open stream cost a Redis connection and a round trip per event per stream, which
put 500 streams' event delay at three times the measured limit. A stream that opens while the reader is
blocked would wait for the block to end, so opening one writes to the process's control stream, which is
in the same XREAD. A Redis Cluster refuses an XREAD whose keys span slots (every search has a slot of its
own), so there SearchSessions reads each stream on its own instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis

from core.streams import relay_control_key

log = logging.getLogger("core.relay")
READ_BLOCK_MS = 10_000  # the control stream interrupts a block, so this only bounds an idle round
READ_COUNT = 100  # entries per stream per read
CONTROL_TTL_S = 3600
RETRY_S = 0.5


@dataclass(frozen=True)
class StreamEvent:
    event_id: str
    event: str
    data: str


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms or 0), int(seq or 0)


@dataclass(eq=False)
class Subscription:
    """One SSE response's place in a stream: the entries after `last` arrive on `queue`."""

    last: tuple[int, int]
    queue: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)


@dataclass
class _Feed:
    cursor: str
    subscribers: set[Subscription] = field(default_factory=set)


class StreamRelay:
    def __init__(self, redis: Redis, *, block_ms: int = READ_BLOCK_MS) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.control = relay_control_key(uuid.uuid4().hex)
        self._control_id = "0-0"
        self._feeds: dict[str, _Feed] = {}
        self._changed = asyncio.Event()
        self._poke_pending = False

    @property
    def open_streams(self) -> int:
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str, last_id: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(parse_id(last_id))
        feed = self._feeds.setdefault(key, _Feed(last_id))
        if parse_id(feed.cursor) > subscription.last:
            feed.cursor = last_id  # a reader further back: read again from there, the others skip repeats
        feed.subscribers.add(subscription)
        try:
            await self._poke()
            yield subscription
        finally:
            feed.subscribers.discard(subscription)
            if not feed.subscribers and self._feeds.get(key) is feed:
                del self._feeds[key]

    async def _poke(self) -> None:
        """Make the blocked read start again with the new stream in it (one write for a burst of opens)."""
        self._changed.set()
        if self._poke_pending:
            return
        self._poke_pending = True
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.control, {"o": "1"}, maxlen=8, approximate=False)
            pipe.expire(self.control, CONTROL_TTL_S)
            await pipe.execute()

    async def run(self) -> None:
        """The reader: runs until cancelled (the gateway's lifespan owns it)."""
        try:
            while True:
                if not self._feeds:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                try:
                    await self._read_once()
                except Exception as exc:  # Redis away: the responses see it in their own idle checks
                    log.warning("event relay read failed: %s", type(exc).__name__)
                    self._poke_pending = False
                    await asyncio.sleep(RETRY_S)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.redis.delete(self.control))

    async def _read_once(self) -> None:
        self._poke_pending = False  # a stream opened from here on must poke again
        streams = {self.control: self._control_id, **{key: feed.cursor for key, feed in self._feeds.items()}}
        response = await self.redis.xread(streams, block=self.block_ms, count=READ_COUNT)  # type: ignore[arg-type]
        for raw_key, entries in response or []:
            key = _text(raw_key)
            if key == self.control:
                self._control_id = _text(entries[-1][0])
                continue
            feed = self._feeds.get(key)
            if feed is not None and entries:
                self._deliver(feed, entries)

    @staticmethod
    def _deliver(feed: _Feed, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        events = [
            (parse_id(_text(entry_id)), StreamEvent(_text(entry_id), _text(f[b"event"]), _text(f[b"data"])))
            for entry_id, f in entries
        ]
        feed.cursor = events[-1][1].event_id
        for subscription in feed.subscribers:
            for position, event in events:
                if position > subscription.last:
                    subscription.queue.put_nowait(event)
                    subscription.last = position
