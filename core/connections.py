"""Opens the Redis clients, for a single server or (REDIS_CLUSTER=true) a Redis Cluster such as ElastiCache
in cluster mode: one client for every key, and arq's client for the queue.

On a cluster every key is hash-tagged (core.streams, quota.keys, core.stats), and arq's keys all carry the
queue's tag, so arq, which needs MULTI/WATCH and a plain client, talks to the one node that holds the
queue's slot. After a failover moves that slot the queue's client gets MOVED errors; the process exits and
its supervisor (make up, ECS) starts it again against the new owner.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import msgspec
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from core.settings import Settings
from core.streams import QUEUE_NAME

CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2, "health_check_interval": 10}


def create_redis(settings: Settings) -> Redis:
    """The client for every key but arq's. A RedisCluster speaks the same commands, so callers keep one type."""
    if settings.redis_cluster:
        return cast(Redis, RedisCluster.from_url(settings.redis_url, **CLIENT_OPTIONS))
    return cast(Redis, Redis.from_url(settings.redis_url, **CLIENT_OPTIONS))


async def queue_node(settings: Settings) -> tuple[str, int]:
    """Host and port of the server that holds the queue's keys: REDIS_URL's, or the slot owner on a cluster."""
    base = RedisSettings.from_dsn(settings.redis_url)
    if not settings.redis_cluster:
        return str(base.host), int(base.port)
    cluster = RedisCluster.from_url(settings.redis_url, **CLIENT_OPTIONS)
    try:
        await cluster.initialize()
        node = cluster.get_node_from_key(QUEUE_NAME)
        return str(node.host), int(node.port)
    finally:
        await cluster.aclose()


async def queue_redis_settings(settings: Settings) -> RedisSettings:
    """arq's RedisSettings for the workers."""
    host, port = await queue_node(settings)
    return dataclasses.replace(RedisSettings.from_dsn(settings.redis_url), host=host, port=port)


async def open_gateway_redis(settings: Settings) -> tuple[Redis, ArqRedis]:
    """The gateway's two clients. On a single server they are one client, which connects on first use, so
    the gateway starts (and /ready says what is missing) while Redis is down; a cluster must answer now."""
    pool = ConnectionPool.from_url(settings.redis_url, **CLIENT_OPTIONS)
    if settings.redis_cluster:
        host, port = await queue_node(settings)
        pool.connection_kwargs.update(host=host, port=port)
    queue = ArqRedis(
        pool,
        job_serializer=msgspec.msgpack.encode,
        job_deserializer=msgspec.msgpack.decode,
        default_queue_name=QUEUE_NAME,
    )
    return (create_redis(settings) if settings.redis_cluster else queue), queue
