"""Owns the stats:* Redis keys that feed admin analytics: searches per day by tier, distinct anonymous
visitors per day (HyperLogLog), and the questions that found no matching solution.

The per-day keys share one hash tag, so analytics can read a range of days in one MGET/PFCOUNT on a cluster.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

TAG = "{stats}"
NO_MATCH_STREAM = "stats:no-match"
NO_MATCH_MAXLEN = 10_000
RETENTION_S = 400 * 86400


def day(epoch_s: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if epoch_s is None else epoch_s))


def searches_key(day_text: str, tier: str) -> str:
    return f"stats:{TAG}:searches:{day_text}:{tier}"


def anonymous_visitors_key(day_text: str) -> str:
    return f"stats:{TAG}:anon-visitors:{day_text}"


async def count_search(redis: Redis, tier: str, anon_id: str | None) -> None:
    today = day()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(searches_key(today, tier))
        pipe.expire(searches_key(today, tier), RETENTION_S)
        if anon_id:
            pipe.pfadd(anonymous_visitors_key(today), anon_id)
            pipe.expire(anonymous_visitors_key(today), RETENTION_S)
        await pipe.execute()
