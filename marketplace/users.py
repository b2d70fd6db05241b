"""Accounts: argon2id passwords, normalised unique emails, email verification codes, login throttling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from core.dynamo import from_item, to_item, values
from core.errors import ConflictError, RateLimitedError, UnauthorizedError
from core.settings import Settings

# OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
CODE_TTL_S = 24 * 3600
CODE_MAX_TRIES = 5
RESEND_INTERVAL_S = 60
FAILS_PER_ACCOUNT = 5
FAILS_PER_IP = 20
FAIL_WINDOW_S = 15 * 60
_DUMMY_HASH = HASHER.hash("not-a-real-password-0")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _code_hash(secret: str, email: str, code: str) -> str:
    return hmac.new(secret.encode(), f"verify:{email}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    name: str
    role: str
    verified: bool
    created_at: int


class VerificationError_(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UserStore:
    def __init__(self, dynamodb: Any, redis: Redis, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.redis = redis
        self.settings = settings
        self.table = settings.table("users")

    async def create(self, email: str, password: str, name: str) -> tuple[User, str]:
        """Returns the user and the verification code to mail; the role is never taken from input."""
        email = normalise_email(email)
        user_id = str(uuid.uuid4())
        now = int(time.time())
        code = f"{secrets.randbelow(1_000_000):06d}"
        user_item = {
            "pk": f"user#{user_id}",
            "user_id": user_id,
            "email": email,
            "name": name,
            "role": "user",
            "password_hash": HASHER.hash(password),
            "verified": False,
            "created_at": now,
            "code_hash": _code_hash(self.settings.secret_key, email, code),
            "code_expires_at": now + CODE_TTL_S,
            "code_tries": 0,
            "code_sent_at": now,
        }
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item({"pk": f"email#{email}", "user_id": user_id}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": to_item(user_item)}},
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException as exc:
            raise ConflictError("An account with that email already exists.", reason="email_taken") from exc
        return User(user_id, email, name, "user", False, now), code

    async def by_email(self, email: str) -> dict[str, Any] | None:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": f"email#{normalise_email(email)}"}}, ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return await self.raw(response["Item"]["user_id"]["S"])

    async def raw(self, user_id: str) -> dict[str, Any] | None:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": f"user#{user_id}"}}, ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    async def get(self, user_id: str) -> User | None:
        data = await self.raw(user_id)
        return _user(data) if data else None

    async def _throttle_check(self, email: str, ip_hash: str) -> None:
        account_key = f"auth:fail:acct:{hashlib.sha256(email.encode()).hexdigest()[:32]}"
        ip_key = f"auth:fail:ip:{ip_hash}"
        account, ip = await self.redis.get(account_key), await self.redis.get(ip_key)  # two slots on a cluster
        if int(account or 0) >= FAILS_PER_ACCOUNT or int(ip or 0) >= FAILS_PER_IP:
            ttl = max(await self.redis.ttl(account_key), await self.redis.ttl(ip_key), 1)
            raise RateLimitedError("Too many failed logins; try again later.", retry_after_s=ttl)

    async def _record_failure(self, email: str, ip_hash: str) -> None:
        account_key = f"auth:fail:acct:{hashlib.sha256(email.encode()).hexdigest()[:32]}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (account_key, f"auth:fail:ip:{ip_hash}"):
                pipe.incr(key)
                pipe.expire(key, FAIL_WINDOW_S, nx=True)
            await pipe.execute()

    async def authenticate(self, email: str, password: str, ip_hash: str) -> User:
        email = normalise_email(email)
        await self._throttle_check(email, ip_hash)
        data = await self.by_email(email)
        try:
            if data is None:
                HASHER.verify(_DUMMY_HASH, password)  # same work whether or not the account exists
                raise VerificationError("no such account")
            HASHER.verify(data["password_hash"], password)
        except (VerificationError, InvalidHashError) as exc:
            await self._record_failure(email, ip_hash)
            raise UnauthorizedError("Wrong email or password.", reason="invalid_credentials") from exc
        if HASHER.check_needs_rehash(data["password_hash"]):
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET password_hash = :h",
                ExpressionAttributeValues=values(h=HASHER.hash(password)),
            )
        return _user(data)

    async def verify_code(self, email: str, code: str) -> User:
        data = await self.by_email(email)
        if data is None:
            raise VerificationError_("invalid_code", "That code is not valid.")
        if data.get("verified"):
            return _user(data)
        if int(data.get("code_tries", 0)) >= CODE_MAX_TRIES:
            raise VerificationError_("too_many_tries", "Too many wrong codes; ask for a new one.")
        if int(data.get("code_expires_at", 0)) < time.time():
            raise VerificationError_("code_expired", "That code has expired; ask for a new one.")
        expected = str(data.get("code_hash", ""))
        if not hmac.compare_digest(expected, _code_hash(self.settings.secret_key, data["email"], code)):
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="ADD code_tries :one",
                ExpressionAttributeValues=values(one=1),
            )
            raise VerificationError_("invalid_code", "That code is not valid.")
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": data["pk"]}},
            UpdateExpression="SET verified = :t REMOVE code_hash",
            ExpressionAttributeValues=values(t=True),
        )
        data["verified"] = True
        return _user(data)

    async def new_code(self, email: str) -> tuple[User, str] | None:
        """A fresh code, at most one a minute; None when the account is unknown or verified."""
        data = await self.by_email(email)
        if data is None or data.get("verified"):
            return None
        now = int(time.time())
        if now - int(data.get("code_sent_at", 0)) < RESEND_INTERVAL_S:
            raise RateLimitedError(
                "A code was sent less than a minute ago.",
                retry_after_s=RESEND_INTERVAL_S - (now - int(data.get("code_sent_at", 0))),
            )
        code = f"{secrets.randbelow(1_000_000):06d}"
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": data["pk"]}},
            UpdateExpression="SET code_hash = :h, code_expires_at = :e, code_tries = :z, code_sent_at = :n",
            ExpressionAttributeValues=values(
                h=_code_hash(self.settings.secret_key, data["email"], code), e=now + CODE_TTL_S, z=0, n=now
            ),
        )
        return _user(data), code

    async def from_identity_provider(self, email: str, verified: bool) -> User:
        """The account for an email an identity provider vouches for, created on first sight."""
        data = await self.by_email(email)
        if data is None:
            try:
                user, _ = await self.create(email, secrets.token_urlsafe(32), "")  # a password nobody knows
            except ConflictError:
                data = await self.by_email(email)
                assert data is not None
                return _user(data)
            data = await self.raw(user.user_id)
            assert data is not None
        if verified and not data.get("verified"):
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET verified = :t",
                ExpressionAttributeValues=values(t=True),
            )
            data["verified"] = True
        return _user(data)

    async def set_role(self, email: str, role: str) -> User | None:
        data = await self.by_email(email)
        if data is None:
            return None
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": data["pk"]}},
            UpdateExpression="SET #r = :r",
            ExpressionAttributeNames={"#r": "role"},
            ExpressionAttributeValues=values(r=role),
        )
        data["role"] = role
        return _user(data)


def _user(data: dict[str, Any]) -> User:
    return User(
        str(data["user_id"]),
        str(data["email"]),
        str(data.get("name", "")),
        str(data.get("role", "user")),
        bool(data.get("verified", False)),
        int(data.get("created_at", 0)),
    )
