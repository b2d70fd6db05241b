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
from typing import Any

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
    """One SSE response's place in a stream: the entries after `last` arrive on `queue`, and a None
    when nothing came for `idle_s` (so the response can send a heartbeat or see that its search ended)."""

    last: tuple[int, int]
    queue: asyncio.Queue[StreamEvent | None] = field(default_factory=asyncio.Queue)
    active: bool = True  # something arrived since the last idle round


@dataclass
class _Feed:
    cursor: str
    subscribers: set[Subscription] = field(default_factory=set)


def _raw(response: Any, **_: Any) -> Any:
    return response


class StreamRelay:
    def __init__(self, redis: Redis, *, idle_s: float = 2.0, block_ms: int = READ_BLOCK_MS) -> None:
        self.redis = redis
        # Its own client on the same pool, with XREAD's reply left as Redis sent it: redis-py would build a
        # dict per entry, which at 25k events/s was a sixth of the process.
        self._reader = Redis(connection_pool=redis.connection_pool)
        self._reader.set_response_callback("XREAD", _raw)
        self.idle_s = idle_s
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
        """The reader and the idle ticker: run until cancelled (the gateway's lifespan owns them)."""
        ticker = asyncio.create_task(self._tick_idle())
        try:
            await self._read_forever()
        finally:
            ticker.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.redis.delete(self.control))

    async def _tick_idle(self) -> None:
        """One timer for every open stream instead of a timeout around each event's wait."""
        while True:
            await asyncio.sleep(self.idle_s)
            for feed in list(self._feeds.values()):
                for subscription in feed.subscribers:
                    if not subscription.active and subscription.queue.empty():
                        subscription.queue.put_nowait(None)
                    subscription.active = False

    async def _read_forever(self) -> None:
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

    async def _read_once(self) -> None:
        self._poke_pending = False  # a stream opened from here on must poke again
        streams = {self.control: self._control_id, **{key: feed.cursor for key, feed in self._feeds.items()}}
        response = await self._reader.xread(streams, block=self.block_ms, count=READ_COUNT)  # type: ignore[arg-type]
        for raw_key, entries in response or []:
            key = _text(raw_key)
            if key == self.control:
                self._control_id = _text(entries[-1][0])
                continue
            feed = self._feeds.get(key)
            if feed is not None and entries:
                self._deliver(feed, entries)

    @staticmethod
    def _deliver(feed: _Feed, entries: list[list[Any]]) -> None:
        events = [(parse_id(entry_id.decode()), _event(entry_id, fields)) for entry_id, fields in entries]
        feed.cursor = events[-1][1].event_id
        for subscription in feed.subscribers:
            for position, event in events:
                if position > subscription.last:
                    subscription.queue.put_nowait(event)
                    subscription.last = position
                    subscription.active = True


def _event(entry_id: bytes, fields: list[bytes]) -> StreamEvent:
    """An entry as XREAD sends it: its id and a flat list of fields and values (emit writes event, data)."""
    if fields[0] == b"event" and len(fields) >= 4 and fields[2] == b"data":
        return StreamEvent(entry_id.decode(), fields[1].decode(), fields[3].decode())
    named = dict(zip(fields[::2], fields[1::2], strict=False))
    return StreamEvent(entry_id.decode(), _text(named.get(b"event", b"")), _text(named.get(b"data", b"")))
