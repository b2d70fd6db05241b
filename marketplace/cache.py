"""A read-through cache on Redis that steps aside when Redis is down, so lookups fall back to DynamoDB."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("marketplace.cache")


class TolerantCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(key)
        except (RedisError, OSError):
            log.warning("cache unavailable; reading the system of record")
            return None
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: str, *, ex: int) -> None:
        try:
            await self.redis.set(key, value, ex=ex)
        except (RedisError, OSError):
            pass

    async def delete(self, key: str) -> None:
        """Invalidation must not be skipped silently: a Redis error here is raised to the caller."""
        await self.redis.delete(key)
