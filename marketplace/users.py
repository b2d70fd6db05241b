"""Accounts, the one owner of the users table: argon2id passwords (hashed off the event loop), normalised
unique emails, verification and password-reset codes, login throttling and identity-provider links."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from core.cpu import create_cpu_pool
from core.dynamo import from_item, to_item, values
from core.errors import ConflictError, RateLimitedError, UnauthorizedError
from core.settings import Settings
from marketplace.entitlements import EntitlementStore, seed_user_id

# OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
CODE_TTL_S = 24 * 3600
CODE_MAX_TRIES = 5
RESEND_INTERVAL_S = 60
FAILS_PER_ACCOUNT = 5
FAILS_PER_IP = 20
FAIL_WINDOW_S = 15 * 60
REGISTRATIONS_PER_IP = 30
RESET_TTL_S = 3600
_DUMMY_HASH = HASHER.hash("not-a-real-password-0")


@functools.cache
def _password_pool() -> ThreadPoolExecutor:
    """argon2's threads: one core is left to the event loop, and they yield to it (core.cpu). A burst of
    sign-ins then queues here instead of starving every other request of CPU."""
    return create_cpu_pool("argon2", leave_free=1)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_password_pool(), HASHER.hash, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    """argon2 takes tens of milliseconds of CPU: it runs in a thread so the event loop keeps serving."""
    try:
        return await asyncio.get_running_loop().run_in_executor(_password_pool(), HASHER.verify, stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
    sessions_valid_from_ms: int = 0


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
        self.entitlements = EntitlementStore(dynamodb, settings)

    async def create(self, email: str, password: str, name: str, *, user_id: str | None = None) -> tuple[User, str]:
        """Returns the user and the verification code to mail; the role is never taken from input.
        An address whose account was never verified is taken over by the new registration, so
        registering someone else's address squats nothing. An address the old system knew gets the id
        its tokens and usage were kept under (`seed:<email>`)."""
        email = normalise_email(email)
        password_hash = await hash_password(password)
        if user_id is None and await self.entitlements.has_legacy(email):
            user_id = seed_user_id(email)
        for _ in range(3):
            existing = await self.by_email(email)
            if existing is not None and existing.get("verified"):
                raise ConflictError("An account with that email already exists.", reason="email_taken")
            new_id = user_id or str(uuid.uuid4())
            now = int(time.time())
            code = f"{secrets.randbelow(1_000_000):06d}"
            user_item = {
                "pk": f"user#{new_id}",
                "user_id": new_id,
                "email": email,
                "name": name,
                "role": "user",
                "password_hash": password_hash,
                "verified": False,
                "created_at": now,
                "code_hash": _code_hash(self.settings.secret_key, email, code),
                "code_expires_at": now + CODE_TTL_S,
                "code_tries": 0,
                "code_sent_at": now,
            }
            put = {
                "TableName": self.table,
                "Item": to_item(user_item),
                # Overwrites only an unverified account (a seed id registered again by its owner).
                "ConditionExpression": "attribute_not_exists(pk) OR verified = :f",
                "ExpressionAttributeValues": values(f=False),
            }
            items = [self._claim_email(email, new_id, existing), {"Put": put}]
            if existing is not None and existing["pk"] != f"user#{new_id}":
                items.append(self._delete_unverified(str(existing["pk"])))
            try:
                await self.dynamodb.transact_write_items(TransactItems=items)
            except self.dynamodb.exceptions.TransactionCanceledException:
                continue  # someone registered or verified the address meanwhile: look again
            return User(new_id, email, name, "user", False, now), code
        raise ConflictError("An account with that email already exists.", reason="email_taken")

    def _claim_email(self, email: str, user_id: str, existing: dict[str, Any] | None) -> dict[str, Any]:
        item = {"TableName": self.table, "Item": to_item({"pk": f"email#{email}", "user_id": user_id})}
        if existing is None:
            return {"Put": {**item, "ConditionExpression": "attribute_not_exists(pk)"}}
        return {
            "Put": {
                **item,
                "ConditionExpression": "user_id = :old",
                "ExpressionAttributeValues": values(old=str(existing["user_id"])),
            }
        }

    def _delete_unverified(self, pk: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": {"pk": {"S": pk}},
                "ConditionExpression": "verified = :f",
                "ExpressionAttributeValues": values(f=False),
            }
        }

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

    async def _reserve_attempt(self, email: str, ip_hash: str) -> tuple[str, str]:
        """Count this attempt before the password is looked at, so a burst cannot outrun the limit."""
        account_key = f"auth:fail:acct:{hashlib.sha256(email.encode()).hexdigest()[:32]}"
        ip_key = f"auth:fail:ip:{ip_hash}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (account_key, ip_key):
                pipe.incr(key)
                pipe.expire(key, FAIL_WINDOW_S, nx=True)
            account, _, ip, _ = await pipe.execute()
        if int(account) > FAILS_PER_ACCOUNT or int(ip) > FAILS_PER_IP:
            ttl = max(await self.redis.ttl(account_key), await self.redis.ttl(ip_key), 1)
            raise RateLimitedError("Too many failed sign-ins; try again later.", retry_after_s=ttl)
        return account_key, ip_key

    async def reserve_registration(self, ip_hash: str) -> None:
        """At most REGISTRATIONS_PER_IP sign-ups an hour from one address: the contract's 409 for a taken
        address would otherwise let anyone test addresses at full speed."""
        key = f"auth:register:ip:{ip_hash}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600, nx=True)
            count, _ = await pipe.execute()
        if int(count) > REGISTRATIONS_PER_IP:
            raise RateLimitedError("Too many sign-ups from this address; try again later.", retry_after_s=3600)

    async def authenticate(self, email: str, password: str, ip_hash: str) -> User:
        email = normalise_email(email)
        reserved = await self._reserve_attempt(email, ip_hash)
        data = await self.by_email(email)
        stored = str(data["password_hash"]) if data and data.get("password_hash") else _DUMMY_HASH
        # Same work whether or not the account exists; argon2 runs in a thread, off the event loop.
        matches = await verify_password(stored, password)
        if data is None or not matches:
            raise UnauthorizedError("Wrong email or password.", reason="invalid_credentials")
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in reserved:  # a right password gives its reservation back
                pipe.decr(key)
            await pipe.execute()
        if HASHER.check_needs_rehash(stored):
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET password_hash = :h",
                ExpressionAttributeValues=values(h=await hash_password(password)),
            )
        return _user(data)

    async def _spend_try(self, pk: str, prefix: str) -> dict[str, Any] | None:
        """Take one of the code's tries atomically before comparing; None when none are left."""
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression=f"ADD {prefix}_tries :one",
                ConditionExpression=f"attribute_exists({prefix}_hash) AND "
                f"(attribute_not_exists({prefix}_tries) OR {prefix}_tries < :max)",
                ExpressionAttributeValues=values(one=1, max=CODE_MAX_TRIES),
                ReturnValues="ALL_NEW",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(response["Attributes"])

    async def verify_code(self, email: str, code: str) -> User:
        data = await self.by_email(email)
        # An unknown or already verified address gets the same answer as a wrong code.
        expected = await self._check_code(data, "code", code)
        assert data is not None
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET verified = :t REMOVE code_hash",
                ConditionExpression="code_hash = :h",
                ExpressionAttributeValues=values(t=True, h=expected),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException as exc:
            raise VerificationError_("invalid_code", "That code is not valid.") from exc
        data["verified"] = True
        return _user(data)

    async def new_code(self, email: str) -> tuple[User, str] | None:
        """A fresh code, at most one a minute; None when the account is unknown, verified or asked too
        soon, so the answer never tells which addresses have accounts."""
        data = await self.by_email(email)
        if data is None or data.get("verified"):
            return None
        code = await self._issue_code(data, "code", CODE_TTL_S)
        return (_user(data), code) if code else None

    async def start_reset(self, email: str) -> tuple[User, str] | None:
        """A password-reset code for the address, at most one a minute; None for unknown addresses.
        An address only the old system knew (its entitlement rows) gets its account here: resetting
        the password is how a seed user claims it."""
        email = normalise_email(email)
        data = await self.by_email(email)
        if data is None and await self.entitlements.has_legacy(email):
            with contextlib.suppress(ConflictError):
                await self.create(email, secrets.token_urlsafe(32), "", user_id=seed_user_id(email))
            data = await self.by_email(email)
        if data is None:
            return None
        code = await self._issue_code(data, "reset", RESET_TTL_S)
        return (_user(data), code) if code else None

    def _code_subject(self, data: dict[str, Any], prefix: str) -> str:
        return str(data["email"]) if prefix == "code" else f"reset:{data['email']}"

    async def _issue_code(self, data: dict[str, Any], prefix: str, ttl_s: int) -> str | None:
        """A fresh 6-digit code of one kind (`code`: verification, `reset`: password), at most one a
        minute; None when one went out less than a minute ago."""
        now = int(time.time())
        code = f"{secrets.randbelow(1_000_000):06d}"
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression=f"SET {prefix}_hash = :h, {prefix}_expires_at = :e, {prefix}_tries = :z, "
                f"{prefix}_sent_at = :n",
                ConditionExpression=f"attribute_not_exists({prefix}_sent_at) OR {prefix}_sent_at < :recent",
                ExpressionAttributeValues=values(
                    h=_code_hash(self.settings.secret_key, self._code_subject(data, prefix), code),
                    e=now + ttl_s,
                    z=0,
                    n=now,
                    recent=now - RESEND_INTERVAL_S,
                ),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return code

    async def _check_code(self, data: dict[str, Any] | None, prefix: str, code: str) -> str:
        """Spend one try and compare; returns the matching stored hash (for the conditional write that
        uses it up) or raises VerificationError_."""
        if data is None or f"{prefix}_hash" not in data or (prefix == "code" and data.get("verified")):
            raise VerificationError_("invalid_code", "That code is not valid.")
        if int(data.get(f"{prefix}_expires_at", 0)) < time.time():
            raise VerificationError_("code_expired", "That code has expired; ask for a new one.")
        current = await self._spend_try(str(data["pk"]), prefix)
        if current is None:
            raise VerificationError_("too_many_tries", "Too many wrong codes; ask for a new one.")
        expected = str(current.get(f"{prefix}_hash", ""))
        if not hmac.compare_digest(
            expected, _code_hash(self.settings.secret_key, self._code_subject(data, prefix), code)
        ):
            raise VerificationError_("invalid_code", "That code is not valid.")
        return expected

    async def reset_password(self, email: str, code: str, new_password: str) -> User:
        """Set a new password with a reset code; the address is then verified (the code proves it) and
        every earlier session of the account ends."""
        data = await self.by_email(email)
        expected = await self._check_code(data, "reset", code)
        assert data is not None
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET password_hash = :p, verified = :t, sessions_valid_from_ms = :now "
                "REMOVE reset_hash, code_hash",
                ConditionExpression="reset_hash = :h",
                ExpressionAttributeValues=values(
                    p=await hash_password(new_password), t=True, now=time.time_ns() // 1_000_000, h=expected
                ),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException as exc:
            raise VerificationError_("invalid_code", "That code is not valid.") from exc
        data["verified"] = True
        return _user(data)

    async def from_identity_provider(self, subject: str, email: str, email_verified: bool) -> User:
        """The account for an identity provider's user: found by the provider's `sub`; an existing
        account is linked by email only when the provider says the address is verified."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": f"sub#{subject}"}}, ConsistentRead=True
        )
        if "Item" in response:
            data = await self.raw(response["Item"]["user_id"]["S"])
            if data is not None:
                return _user(data)
        data = await self.by_email(email) if email and email_verified else None
        if data is None:
            data = await self._from_legacy_users(subject)
        if data is None:
            # No verified link: a fresh account whose address is the provider's only if verified.
            address = email if email and email_verified else f"{subject}@cognito.invalid"
            try:
                user, _ = await self.create(address, secrets.token_urlsafe(32), "")  # a password nobody knows
            except ConflictError:
                address = f"{subject}@cognito.invalid"
                user, _ = await self.create(address, secrets.token_urlsafe(32), "")
            data = await self.raw(user.user_id)
            assert data is not None
        if email_verified and not data.get("verified"):
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": data["pk"]}},
                UpdateExpression="SET verified = :t",
                ExpressionAttributeValues=values(t=True),
            )
            data["verified"] = True
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item({"pk": f"sub#{subject}", "user_id": str(data["user_id"])}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return await self.from_identity_provider(subject, email, email_verified)
        return _user(data)

    async def _from_legacy_users(self, subject: str) -> dict[str, Any] | None:
        """A user of the old deployment (its users table, keyed by the Cognito `sub` as `userId`): the
        account is created under that same id, so entitlement rows keyed `user#<sub>` are theirs."""
        table = self.settings.legacy_users_table
        if not table:
            return None
        response = await self.dynamodb.get_item(TableName=table, Key={"userId": {"S": subject}}, ConsistentRead=True)
        if "Item" not in response:
            return None
        row = from_item(response["Item"])
        profile = row.get("profile") or {}
        email = normalise_email(str(row.get("email") or profile.get("email") or f"{subject}@cognito.invalid"))
        existing = await self.by_email(email)
        if existing is not None:
            return existing if existing.get("verified") or existing["user_id"] == subject else None
        name = str(profile.get("name") or row.get("name") or "")
        user, _ = await self.create(email, secrets.token_urlsafe(32), name, user_id=subject)
        updates = "SET verified = :v, #r = :r"
        role = "partner" if row.get("role") == "partner" and row.get("partnerStatus") == "approved" else "user"
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"user#{user.user_id}"}},
            UpdateExpression=updates,
            ExpressionAttributeNames={"#r": "role"},
            ExpressionAttributeValues=values(v=bool(row.get("emailVerified", False)), r=role),
        )
        return await self.raw(user.user_id)

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
        int(data.get("sessions_valid_from_ms", 0)),
    )
