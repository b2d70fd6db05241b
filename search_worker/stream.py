"""Appends a search's events to its Redis Stream, bounded in length and in time."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from core.streams import cancel_key, events_key

_encoder = msgspec.json.Encoder()


class EventWriter:
    def __init__(self, redis: Redis, search_id: str, *, maxlen: int, ttl_s: int) -> None:
        self.redis = redis
        self.search_id = search_id
        self.key = events_key(search_id)
        self.maxlen = maxlen
        self.ttl_s = ttl_s

    async def emit(self, event: str, data: Any) -> str:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self.key,
                {"event": event, "data": _encoder.encode(data)},
                maxlen=self.maxlen,
                approximate=True,
            )
            pipe.expire(self.key, self.ttl_s)
            stream_id, _ = await pipe.execute()
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    async def cancelled(self) -> bool:
        return bool(await self.redis.exists(cancel_key(self.search_id)))

    async def started_before(self) -> bool:
        return bool(await self.redis.xlen(self.key))
