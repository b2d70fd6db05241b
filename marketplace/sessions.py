"""Server-side sessions in the sessions table: stored by hash, with a TTL, location, and no raw IP."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from core.dynamo import from_item, to_item
from core.settings import Settings

SALT_KEY = "mkt:ip-salt:"


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def daily_ip_salt(redis: Redis) -> bytes:
    """A random salt per UTC day, kept in Redis for two days and then gone, so that a stored HMAC
    can no longer be traced back to an address."""
    day = int(time.time() // 86400)
    key = f"{SALT_KEY}{day}"
    await redis.set(key, secrets.token_hex(32), nx=True, ex=2 * 86400)
    salt = await redis.get(key)
    return bytes(salt or b"")


async def ip_hmac(redis: Redis, ip: str) -> str:
    return hmac.new(await daily_ip_salt(redis), ip.encode(), hashlib.sha256).hexdigest()


class SessionStore:
    def __init__(self, dynamodb: Any, redis: Redis, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.redis = redis
        self.settings = settings
        self.table = settings.table("sessions")

    async def create(self, user_id: str, ip: str, location: dict[str, str]) -> str:
        session_id = secrets.token_urlsafe(32)
        now = int(time.time())
        item = {
            "pk": f"session#{session_hash(session_id)}",
            "user_id": user_id,
            "created_at": now,
            "expires_at": now + self.settings.session_ttl_s,
            "ip_hmac": await ip_hmac(self.redis, ip),
            **{f"location_{k}": v for k, v in location.items() if v},
        }
        await self.dynamodb.put_item(TableName=self.table, Item=to_item(item))
        return session_id

    async def user_for(self, session_id: str) -> str | None:
        if not session_id or len(session_id) > 100:
            return None
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": f"session#{session_hash(session_id)}"}}
        )
        if "Item" not in response:
            return None
        data = from_item(response["Item"])
        if int(data["expires_at"]) < time.time():
            return None
        return str(data["user_id"])

    async def delete(self, session_id: str) -> None:
        await self.dynamodb.delete_item(TableName=self.table, Key={"pk": {"S": f"session#{session_hash(session_id)}"}})
