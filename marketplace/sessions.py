"""Server-side sessions in the sessions table: stored by hash, with a TTL, location, and no raw IP."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.dynamo import from_item, to_item
from core.settings import Settings

SALT_KEY = "mkt:ip-salt:"


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


MAX_CACHED_HASHES = 10_000


class IpHasher:
    """HMACs client addresses with a random salt per UTC day, kept in Redis for two days and then gone,
    so that a stored value can no longer be traced back to an address. Every process of the day shares
    the salt; each caches it until the day changes."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._day = -1
        self._salt = b""
        self._fallback = secrets.token_hex(32).encode()
        self._hashes: dict[str, str] = {}  # today's, for the addresses seen lately (the validator's hot path)

    async def salt(self) -> bytes:
        day = int(time.time() // 86400)
        if day != self._day:
            key = f"{SALT_KEY}{day}"
            try:
                await self.redis.set(key, secrets.token_hex(32), nx=True, ex=2 * 86400)
                self._salt = bytes(await self.redis.get(key) or b"")
            except (RedisError, OSError):
                # Redis away: this process salts on its own until the next day (hashes then differ
                # between processes, which only loosens per-address limits while Redis is down).
                return self._salt or self._fallback
            self._day = day
            self._hashes.clear()
        return self._salt

    async def hash(self, ip: str) -> str:
        salt = await self.salt()
        if salt is self._salt and (known := self._hashes.get(ip)) is not None:
            return known
        hashed = hmac.new(salt, ip.encode(), hashlib.sha256).hexdigest()[:32]
        if salt is self._salt:
            if len(self._hashes) >= MAX_CACHED_HASHES:
                self._hashes.clear()
            self._hashes[ip] = hashed
        return hashed


@dataclass(frozen=True)
class Session:
    user_id: str
    created_at_ms: int
    csrf_hash: str  # the CSRF token in use when the session began: only it works with this session


def csrf_hash(token: str) -> str:
    return hashlib.sha256(f"csrf:{token}".encode()).hexdigest()


class SessionStore:
    """The one owner of the sessions table."""

    def __init__(self, dynamodb: Any, redis: Redis, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.redis = redis
        self.settings = settings
        self.table = settings.table("sessions")

    async def create(self, user_id: str, ip_hash: str, location: dict[str, str], csrf_token: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = int(time.time())
        item = {
            "pk": f"session#{session_hash(session_id)}",
            "user_id": user_id,
            "csrf_hash": csrf_hash(csrf_token),
            "created_at": now,
            "created_ms": time.time_ns() // 1_000_000,
            "expires_at": now + self.settings.session_ttl_s,
            "ip_hmac": ip_hash,
            **{f"location_{k}": v for k, v in location.items() if v},
        }
        await self.dynamodb.put_item(TableName=self.table, Item=to_item(item))
        return session_id

    async def get(self, session_id: str) -> Session | None:
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
        created_ms = int(data.get("created_ms") or int(data["created_at"]) * 1000)
        return Session(str(data["user_id"]), created_ms, str(data.get("csrf_hash", "")))

    async def delete(self, session_id: str) -> None:
        await self.dynamodb.delete_item(TableName=self.table, Key={"pk": {"S": f"session#{session_hash(session_id)}"}})
