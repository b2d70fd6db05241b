"""Solution tokens: format with checksum, SHA-256 storage, and the cached lookup the validate path uses.

A token is `sf_` + 43 base62 characters of randomness + 6 base62 characters of CRC32 checksum, so a
typo is refused without touching storage. Only the SHA-256 of a token is stored or cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from core.errors import ForbiddenError, UnauthorizedError
from core.settings import Settings
from marketplace.cache import TolerantCache
from marketplace.entitlements import EntitlementStore

PREFIX = "sf_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 43
CHECK_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + BODY_LENGTH + CHECK_LENGTH
CACHE_TTL_S = 300
LOCAL_TTL_S = 0.5
MAX_ACTIVE_PER_SOLUTION = 2


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(ALPHABET[rest])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECK_LENGTH)


def new_token() -> str:
    body = _base62(secrets.randbits(256), BODY_LENGTH)
    return f"{PREFIX}{body}{_checksum(body)}"


def well_formed(token: str) -> bool:
    if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        return False
    body, check = token[len(PREFIX) : -CHECK_LENGTH], token[-CHECK_LENGTH:]
    return all(c in ALPHABET for c in body) and _checksum(body) == check


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[: len(PREFIX) + 6]


def token_cache_key(token_hash: str) -> str:
    return f"mkt:tok:{token_hash}"


@dataclass(frozen=True)
class Grant:
    token_hash: str
    user_id: str
    email: str
    solution_id: str
    access_tier: str
    daily_limit: int


class TokenDirectory:
    """Token hash -> grant: a short in-process cache, then Redis, then DynamoDB."""

    def __init__(self, redis: Redis, dynamodb: Any, settings: Settings) -> None:
        self.cache = TolerantCache(redis)
        self.dynamodb = dynamodb
        self.settings = settings
        self.table = settings.table("tokens")
        self.entitlements = EntitlementStore(dynamodb, settings)
        self._local: dict[tuple[str, str], tuple[float, Grant]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[Grant]] = {}
        self._last_used_ms: dict[str, int] = {}

    async def resolve(self, token: str, solution_id: str) -> Grant:
        if not well_formed(token):
            raise UnauthorizedError("The token is not valid.", reason="invalid_token")
        token_hash = hash_token(token)
        cached = self._local.get((token_hash, solution_id))
        if cached and cached[0] > time.monotonic():
            self._last_used_ms[token_hash] = int(time.time() * 1000)
            return cached[1]
        # One lookup per token at a time: when the short local entry expires under load, the other
        # callers wait for that lookup instead of all asking Redis at once.
        key = (token_hash, solution_id)
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            grant = await self._lookup(token_hash, solution_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters get it too
            raise
        finally:
            del self._loading[key]
        future.set_result(grant)
        self._last_used_ms[token_hash] = int(time.time() * 1000)
        return grant

    async def _lookup(self, token_hash: str, solution_id: str) -> Grant:
        now = time.monotonic()
        raw = await self.cache.get(token_cache_key(token_hash))
        if raw == b"-":
            raise UnauthorizedError("The token is not valid.", reason="invalid_token")
        if raw:
            record = json.loads(raw)
        else:
            record = await self._load(token_hash)
            if record is None:
                await self.cache.set(token_cache_key(token_hash), "-", ex=60)
                raise UnauthorizedError("The token is not valid.", reason="invalid_token")
            await self.cache.set(token_cache_key(token_hash), json.dumps(record), ex=CACHE_TTL_S)
        if record["status"] != "active" or (record.get("expires_at") and record["expires_at"] < time.time()):
            raise UnauthorizedError("The token was revoked or has expired.", reason="invalid_token")
        entitlement = await self.entitlements.cached(
            record["user_id"], record.get("email", ""), solution_id, self.cache
        )
        if entitlement is None:
            raise ForbiddenError("This account has no access to that solution.", reason="not_entitled")
        grant = Grant(
            token_hash,
            record["user_id"],
            record.get("email", ""),
            solution_id,
            entitlement.tier,
            entitlement.daily_limit,
        )
        if len(self._local) > 50_000:
            self._local.clear()
        self._local[(token_hash, solution_id)] = (now + LOCAL_TTL_S, grant)
        return grant

    async def _load(self, token_hash: str) -> dict[str, Any] | None:
        response = await self.dynamodb.get_item(TableName=self.table, Key={"token_hash": {"S": token_hash}})
        item = response.get("Item")
        if not item:
            return None
        return {
            "user_id": item["user_id"]["S"],
            "email": item.get("email", {}).get("S", ""),
            "solution_id": item["solution_id"]["S"],
            "status": item["status"]["S"],
            "expires_at": int(item["expires_at"]["N"]) if "expires_at" in item else None,
        }

    async def write_last_used(self) -> int:
        """Write the last-use times gathered since the previous call (kept off the validate path)."""
        pending, self._last_used_ms = self._last_used_ms, {}
        for token_hash, used_ms in pending.items():
            try:
                await self.dynamodb.update_item(
                    TableName=self.table,
                    Key={"token_hash": {"S": token_hash}},
                    UpdateExpression="SET last_used_at = :t",
                    ConditionExpression=(
                        "attribute_exists(token_hash) AND (attribute_not_exists(last_used_at) OR last_used_at < :t)"
                    ),
                    ExpressionAttributeValues={":t": {"N": str(used_ms)}},
                )
            except self.dynamodb.exceptions.ConditionalCheckFailedException:
                pass
        return len(pending)

    async def forget(self, token_hash: str) -> None:
        await self.cache.delete(token_cache_key(token_hash))
        self._local = {k: v for k, v in self._local.items() if k[0] != token_hash}


__all__ = ["Grant", "TokenDirectory", "asdict", "new_token", "hash_token", "well_formed"]
