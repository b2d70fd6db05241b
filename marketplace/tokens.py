"""Solution tokens: the one owner of the tokens table (issue, rotate, revoke, list) and the cached lookup
the validate path uses.

A token is `sf_` + 43 base62 characters of randomness + 6 base62 characters of CRC32 checksum, so a
typo is refused without touching storage. Only the SHA-256 of a token is stored or cached. A token is
bound to the solution it was issued for. Each user and solution has a slots row listing its active
tokens, and every issue, rotation and revocation changes that row and the tokens in one conditional
transaction, so that concurrent requests can never leave more than two active.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import random
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.dynamo import from_item, query_all, to_item, values
from core.errors import ConflictError, ForbiddenError, NotFoundError, RateLimitedError, UnauthorizedError
from core.settings import Settings
from marketplace.cache import TolerantCache
from marketplace.catalog import get_solution
from marketplace.entitlements import EntitlementStore, iso_to_epoch

PREFIX = "sf_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 43
CHECK_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + BODY_LENGTH + CHECK_LENGTH
CACHE_TTL_S = 300
LOCAL_TTL_S = 0.5
MAX_ACTIVE_PER_SOLUTION = 2
GUESSES_PER_MINUTE = 30
SOLUTION_TTL_S = 5.0


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


LEGACY_TOKEN = re.compile(r"tok_perm_[0-9a-f]{32}")
_BASE62 = re.compile(f"[{ALPHABET}]+")


def well_formed(token: str) -> bool:
    if LEGACY_TOKEN.fullmatch(token):
        return True  # the old system's tokens: kept in its entitlement rows, adopted on first use
    if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        return False
    body, check = token[len(PREFIX) : -CHECK_LENGTH], token[-CHECK_LENGTH:]
    return _BASE62.fullmatch(body) is not None and _checksum(body) == check


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[: len(PREFIX) + 6]


def token_cache_key(token_hash: str) -> str:
    return f"mkt:tok:{token_hash}"


def guess_key(client: str) -> str:
    return f"mkt:tok-guess:{client}"


@dataclass(frozen=True)
class Grant:
    token_hash: str
    user_id: str
    email: str
    solution_id: str
    access_tier: str
    daily_limit: int
    entitlement_status: str = "active"
    created_at: str = ""
    used_elsewhere: dict[str, int] = field(default_factory=dict)


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
        self._solutions: dict[str, tuple[float, bool]] = {}
        self._zone = ZoneInfo(settings.quota_timezone)

    async def resolve(self, token: str, solution_id: str, client: str = "") -> Grant:
        """The grant for a token used on `solution_id`. `client` (a hashed address) limits how many
        unknown tokens one caller may try: guessing costs a storage read each, so it is throttled."""
        solution_id = self.settings.canonical_solution(solution_id)
        token_hash = hash_token(token)
        cached = self._local.get((token_hash, solution_id))
        if cached and cached[0] > time.monotonic():  # only a well-formed token was ever cached
            self._last_used_ms[token_hash] = int(time.time() * 1000)
            return cached[1]
        if not well_formed(token):
            raise UnauthorizedError("The token is not valid.", reason="invalid_token")
        # One lookup per token at a time: when the short local entry expires under load, the other
        # callers wait for that lookup instead of all asking Redis at once.
        key = (token_hash, solution_id)
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            await self._check_guessing(client)
            try:
                grant = await self._lookup(token, token_hash, solution_id)
            except UnauthorizedError:
                await self._count_guess(client)
                raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters get it too
            raise
        finally:
            del self._loading[key]
        future.set_result(grant)
        self._last_used_ms[token_hash] = int(time.time() * 1000)
        return grant

    async def _lookup(self, token: str, token_hash: str, solution_id: str) -> Grant:
        now = time.monotonic()
        raw = await self.cache.get(token_cache_key(token_hash))
        if raw == b"-":
            raise UnauthorizedError("The token is not valid.", reason="invalid_token")
        if raw:
            record = json.loads(raw)
        else:
            record = await self._load(token_hash)
            if record is None and LEGACY_TOKEN.fullmatch(token):
                record = await self._adopt_legacy(token)
            if record is None:
                await self.cache.set(token_cache_key(token_hash), "-", ex=60)
                raise UnauthorizedError("The token is not valid.", reason="invalid_token")
            await self.cache.set(token_cache_key(token_hash), json.dumps(record), ex=CACHE_TTL_S)
        if record["status"] != "active" or (record.get("expires_at") and record["expires_at"] < time.time()):
            raise UnauthorizedError("The token was revoked or has expired.", reason="invalid_token")
        if record["solution_id"] != solution_id:
            # The contract's reason for "no access to that solution"; the message says why.
            raise ForbiddenError(
                f"This token was issued for another solution ({record['solution_id']}); it works only there.",
                reason="not_entitled",
            )
        if not await self._solution_active(solution_id):
            raise ForbiddenError(
                "That solution is retired or unknown; its tokens no longer work.", reason="solution_retired"
            )
        entitlement = await self.entitlements.cached(
            record["user_id"], record.get("email", ""), solution_id, self.cache
        )
        if entitlement is None:
            raise ForbiddenError("This account has no access to that solution.", reason="not_entitled")
        today = dt.datetime.now(self._zone).strftime("%Y-%m-%d")
        grant = Grant(
            token_hash,
            record["user_id"],
            record.get("email", ""),
            solution_id,
            entitlement.tier,
            entitlement.daily_limit,
            entitlement.status,
            entitlement.created_at,
            {today: entitlement.used_on(today)} if entitlement.used_on(today) else {},
        )
        if len(self._local) > 50_000:
            self._local.clear()
        self._local[(token_hash, solution_id)] = (now + LOCAL_TTL_S, grant)
        return grant

    async def _adopt_legacy(self, token: str) -> dict[str, Any] | None:
        """An old-system token found in its entitlement row (by the sparse token index, never a scan):
        its hash goes into our tokens table and the clear token leaves the row, in one conditional
        transaction; a concurrent first use finds the adopted record instead."""
        row = await self.entitlements.by_legacy_token(token)
        if row is None:
            return None
        email = row.email.strip().lower()
        user_id = await self.entitlements.account_id_for(email) if email else row.pk.removeprefix("user#")
        record = {
            "token_hash": hash_token(token),
            "user_id": user_id,
            "email": email,
            "solution_id": row.solution_id,
            "status": "active",
            "created_at": str(iso_to_epoch(row.created_at) * 1000 or int(time.time() * 1000)),
            "prefix": token[:13],
            "legacy": True,
        }
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(record),
                            "ConditionExpression": "attribute_not_exists(token_hash)",
                        }
                    },
                    self.entitlements.forget_legacy_token_item(row, token),
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException:
            return await self._load(hash_token(token))
        return await self._load(hash_token(token))

    async def _solution_active(self, solution_id: str) -> bool:
        cached = self._solutions.get(solution_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        solution = await get_solution(self.dynamodb, self.settings, solution_id)
        active = solution is not None and solution.status == "active"
        self._solutions[solution_id] = (time.monotonic() + SOLUTION_TTL_S, active)
        return active

    async def _check_guessing(self, client: str) -> None:
        if not client:
            return
        raw = await self.cache.get(guess_key(client))
        if raw is not None and int(raw) >= GUESSES_PER_MINUTE:
            raise RateLimitedError("Too many invalid tokens from this address; slow down.", retry_after_s=60)

    async def _count_guess(self, client: str) -> None:
        if not client:
            return
        with contextlib.suppress(RedisError, OSError):
            async with self.cache.redis.pipeline(transaction=False) as pipe:
                pipe.incr(guess_key(client))
                pipe.expire(guess_key(client), 60, nx=True)
                await pipe.execute()

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


@dataclass(frozen=True)
class TokenRecord:
    """One token as its owner sees it: never the token itself, only its display prefix and id."""

    token_hash: str
    token_id: str  # the hash's first 16 hex digits, used in URLs
    prefix: str
    solution_id: str
    status: str
    created_at_ms: int
    last_used_at: int | None


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    record: TokenRecord


def _slots_key(user_id: str, solution_id: str) -> dict[str, Any]:
    return {"token_hash": {"S": f"slots#{user_id}#{solution_id}"}}


class TokenService:
    """Issue, rotate, revoke and list a user's tokens; nothing else writes the tokens table."""

    def __init__(self, dynamodb: Any, settings: Settings, directory: TokenDirectory) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("tokens")
        self.directory = directory

    async def records(self, user_id: str) -> list[TokenRecord]:
        records = []
        for data in await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName="user-index",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=values(u=user_id),
        ):
            records.append(
                TokenRecord(
                    token_hash=str(data["token_hash"]),
                    token_id=str(data["token_hash"])[:16],
                    prefix=str(data.get("prefix", "")),
                    solution_id=str(data["solution_id"]),
                    status=str(data["status"]),
                    created_at_ms=int(data["created_at"]),
                    last_used_at=data.get("last_used_at"),
                )
            )
        records.sort(key=lambda r: r.created_at_ms, reverse=True)
        return records

    async def find_active(self, user_id: str, token_id: str) -> TokenRecord | None:
        for record in await self.records(user_id):
            if record.token_id == token_id and record.status == "active":
                return record
        return None

    async def issue(self, user_id: str, email: str, solution_id: str) -> IssuedToken:
        """A new token; beyond MAX_ACTIVE_PER_SOLUTION active ones, the oldest is revoked with it."""
        return await self._change(user_id, email, solution_id, revoke=(), add=True)

    async def rotate(self, user_id: str, email: str, token_id: str) -> IssuedToken:
        current = await self.find_active(user_id, token_id)
        if current is None:
            raise NotFoundError("No such active token.", reason="unknown_token")
        issued = await self._change(user_id, email, current.solution_id, revoke=(current.token_hash,), add=True)
        return issued

    async def revoke(self, user_id: str, token_id: str) -> bool:
        record = next((r for r in await self.records(user_id) if r.token_id == token_id), None)
        if record is None:
            return False
        if record.status == "active":
            await self._change(user_id, "", record.solution_id, revoke=(record.token_hash,), add=False)
        return True

    async def _active_slots(self, user_id: str, solution_id: str) -> tuple[list[str], int | None]:
        """The active token hashes, oldest first, and the slots row's version (None: no row yet)."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=_slots_key(user_id, solution_id), ConsistentRead=True
        )
        item = response.get("Item")
        if item is not None:
            data = from_item(item)
            return [str(h) for h in data.get("active", [])], int(data["version"])
        # Tokens issued before slots rows existed: start the row from what the index says is active.
        active = [r for r in await self.records(user_id) if r.solution_id == solution_id and r.status == "active"]
        return [r.token_hash for r in sorted(active, key=lambda r: r.created_at_ms)], None

    async def _change(
        self, user_id: str, email: str, solution_id: str, *, revoke: tuple[str, ...], add: bool
    ) -> IssuedToken:
        token = new_token() if add else ""
        now_ms = int(time.time() * 1000)
        for attempt in range(40):
            active, version = await self._active_slots(user_id, solution_id)
            if revoke and not set(revoke) & set(active):
                raise NotFoundError("No such active token.", reason="unknown_token")
            kept = [h for h in active if h not in revoke]
            gone = [h for h in active if h in revoke]
            if add:
                overflow = max(0, len(kept) - MAX_ACTIVE_PER_SOLUTION + 1)
                gone += kept[:overflow]
                kept = kept[overflow:] + [hash_token(token)]
            items = [self._slots_update(user_id, solution_id, kept, version)]
            items += [self._revoke_update(h) for h in gone]
            if add:
                items.append(self._token_put(token, user_id, email, solution_id, now_ms))
            try:
                await self.dynamodb.transact_write_items(TransactItems=items)
            except self.dynamodb.exceptions.TransactionCanceledException:
                await asyncio.sleep(random.uniform(0.005, 0.02) * (1 + attempt))  # noqa: S311
                continue
            for token_hash in gone:
                await self.directory.forget(token_hash)
            record = TokenRecord(
                hash_token(token), hash_token(token)[:16], display_prefix(token), solution_id, "active", now_ms, None
            )
            return IssuedToken(token, record)
        raise ConflictError("Too many concurrent token changes; try again.", reason="token_busy")

    def _slots_update(self, user_id: str, solution_id: str, active: list[str], version: int | None) -> dict[str, Any]:
        condition = "attribute_not_exists(token_hash)" if version is None else "version = :v"
        names = values(a=active, n=(version or 0) + 1) | ({} if version is None else values(v=version))
        return {
            "Update": {
                "TableName": self.table,
                "Key": _slots_key(user_id, solution_id),
                "UpdateExpression": "SET active = :a, version = :n",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": names,
            }
        }

    def _revoke_update(self, token_hash: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"token_hash": {"S": token_hash}},
                "UpdateExpression": "SET #s = :r",
                "ConditionExpression": "attribute_exists(token_hash)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values(r="revoked"),
            }
        }

    def _token_put(self, token: str, user_id: str, email: str, solution_id: str, now_ms: int) -> dict[str, Any]:
        item = {
            "token_hash": hash_token(token),
            "user_id": user_id,
            "email": email,
            "solution_id": solution_id,
            "status": "active",
            "created_at": str(now_ms),  # epoch ms: tokens made in the same second still order by age
            "prefix": display_prefix(token),
        }
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(token_hash)",
            }
        }


__all__ = ["Grant", "IssuedToken", "TokenDirectory", "TokenRecord", "TokenService", "new_token", "hash_token"]
