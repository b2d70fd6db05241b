"""Entitlements: who may use which solution at which tier; reads both seed formats, writes the new one.

Old: pk "user#<email>", sk "solution#<id>", access_tier, usage.daily_usage {"YYYY-MM-DD": n}, status, created_at.
New: pk "user#<uuid>", sk "solution#<id>", accessTier, dailyUsage, lastUsageDate, createdAt, updatedAt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from core.dynamo import from_item, query_all, to_item
from core.errors import ForbiddenError
from core.settings import Settings
from marketplace.cache import TolerantCache


def entitlement_cache_key(user_id: str, solution_id: str) -> str:
    return f"mkt:ent:{user_id}:{solution_id}"


def seed_user_id(email: str) -> str:
    return f"seed:{email}"


def iso_to_epoch(text: str) -> int:
    """'2025-11-09T13:16:14.919Z' -> epoch seconds; 0 when it is not a date."""
    try:
        return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


@dataclass(frozen=True)
class Entitlement:
    user_id: str
    solution_id: str
    access_tier: str  # registered | pro, as stored
    pro_until: int = 0  # epoch seconds; 0 = none
    status: str = "active"
    created_at: str = ""
    legacy_daily_usage: dict[str, int] = field(default_factory=dict)
    daily_limit_registered: int = 10
    pk: str = ""
    sk: str = ""
    email: str = ""
    unexpiring_pro: bool = False  # a seed `pro` row with no expiry at all (see docs/seed-compat.md)

    @property
    def tier(self) -> str:
        if self.access_tier == "pro" and (self.unexpiring_pro or self.pro_until > time.time()):
            return "pro"
        return "registered"

    @property
    def daily_limit(self) -> int:
        return -1 if self.tier == "pro" else self.daily_limit_registered

    @property
    def active(self) -> bool:
        return self.status == "active"

    def used_on(self, day: str) -> int:
        """What the old system had counted for `day` (YYYY-MM-DD), from either format."""
        return int(self.legacy_daily_usage.get(day, 0))


def _usage(data: dict[str, Any]) -> dict[str, int]:
    """Per-day counts in every shape the seed wrote: `usage.daily_usage {day: n}`, top-level
    `usage_YYYY_MM_DD` attributes, and the new format's `dailyUsage` with `lastUsageDate`."""
    days: dict[str, int] = {}
    for day, count in ((data.get("usage") or {}).get("daily_usage") or {}).items():
        days[str(day)] = max(days.get(str(day), 0), int(count))
    for name, count in data.items():
        if name.startswith("usage_") and name.count("_") == 3 and isinstance(count, int | float):
            day = name.removeprefix("usage_").replace("_", "-")
            days[day] = max(days.get(day, 0), int(count))
    last_day = str(data.get("lastUsageDate") or "")
    if last_day and isinstance(data.get("dailyUsage"), int | float):
        days[last_day] = max(days.get(last_day, 0), int(data["dailyUsage"]))
    return days


def _parse(item: dict[str, Any], user_id: str, limit: int, canonical: str) -> Entitlement:
    return _parse_plain(from_item(item), user_id, limit, canonical)


def _parse_plain(data: dict[str, Any], user_id: str, limit: int, canonical: str) -> Entitlement:
    """Both seed formats, read as the seed validator read them: `tier || access_tier || accessTier`;
    `proUntil` (epoch s) or `pro_expires_at` (ISO) for the end of Pro."""
    tier = str(data.get("tier") or data.get("access_tier") or data.get("accessTier") or "registered")
    pro_until = int(data.get("proUntil") or 0) or iso_to_epoch(str(data.get("pro_expires_at") or ""))
    return Entitlement(
        user_id,
        canonical,
        tier,
        pro_until,
        str(data.get("status", "active")),
        str(data.get("createdAt") or data.get("created_at") or ""),
        legacy_daily_usage=_usage(data),
        daily_limit_registered=limit,
        pk=str(data["pk"]),
        sk=str(data["sk"]),
        email=str(data.get("user_email") or data.get("email") or ""),
        unexpiring_pro=tier == "pro" and pro_until == 0,
    )


class EntitlementStore:
    """The one owner of the entitlements table: both seed formats read, the new one written."""

    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.settings = settings
        self.table = settings.table("user-solution-entitlements")

    def limit_for(self, solution_id: str) -> int:
        return self.settings.registered_daily_limit

    def _names(self, solution_id: str) -> list[str]:
        """The canonical id first, then its aliases (aws-solution-finder-001 and friends)."""
        canonical = self.settings.canonical_solution(solution_id)
        aliases = [a for a in self.settings.solution_aliases_of(canonical) if a != canonical]
        return [canonical, *aliases]

    async def get_any(self, user_id: str, email: str, solution_id: str) -> Entitlement | None:
        """The user's entitlement to the solution under any of its names, whatever its status."""
        canonical = self.settings.canonical_solution(solution_id)
        limit = self.limit_for(canonical)
        pks = [f"user#{user_id}", *([f"user#{email}"] if email and email != user_id else [])]
        for pk in pks:
            for name in self._names(canonical):
                response = await self.dynamodb.get_item(
                    TableName=self.table,
                    Key={"pk": {"S": pk}, "sk": {"S": f"solution#{name}"}},
                    ConsistentRead=True,
                )
                if "Item" in response:
                    return await self._first_sight(_parse(response["Item"], user_id, limit, canonical))
        return None

    async def get(self, user_id: str, email: str, solution_id: str) -> Entitlement | None:
        entitlement = await self.get_any(user_id, email, solution_id)
        return entitlement if entitlement is not None and entitlement.active else None

    async def _first_sight(self, entitlement: Entitlement) -> Entitlement:
        """A seed `pro` row with no expiry: the seed treated it as Pro; here it gets one period from the
        first time we see it, written back so every later read agrees."""
        if not entitlement.unexpiring_pro:
            return entitlement
        until = int(time.time()) + self.settings.pro_period_days * 86400
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": entitlement.pk}, "sk": {"S": entitlement.sk}},
                UpdateExpression="SET proUntil = :u, proUntilSource = :src",
                ConditionExpression="attribute_not_exists(proUntil) AND attribute_not_exists(pro_expires_at)",
                ExpressionAttributeValues={":u": {"N": str(until)}, ":src": {"S": "first-sight"}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            again = await self.dynamodb.get_item(
                TableName=self.table,
                Key={"pk": {"S": entitlement.pk}, "sk": {"S": entitlement.sk}},
                ConsistentRead=True,
            )
            if "Item" in again:
                until = int(from_item(again["Item"]).get("proUntil") or until)
        return dataclasses.replace(entitlement, pro_until=until, unexpiring_pro=False)

    async def by_legacy_token(self, token: str) -> Entitlement | None:
        """The seed row that holds this clear token (the sparse `token-index`: only such rows are in it)."""
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="token-index",
            KeyConditionExpression="#t = :t",
            ExpressionAttributeNames={"#t": "token"},
            ExpressionAttributeValues={":t": {"S": token}},
        )
        items = response.get("Items", [])
        if not items:
            return None
        data = from_item(items[0])
        name = str(data["sk"]).removeprefix("solution#")
        canonical = self.settings.canonical_solution(name)
        return _parse(items[0], str(data["pk"]).removeprefix("user#"), self.limit_for(canonical), canonical)

    def forget_legacy_token_item(self, row: Entitlement, token: str) -> dict[str, Any]:
        """The transaction item that removes a clear token from its seed row (once it is stored hashed)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": row.pk}, "sk": {"S": row.sk}},
                "UpdateExpression": "REMOVE #t SET tokenAdoptedAt = :now",
                "ConditionExpression": "#t = :t",
                "ExpressionAttributeNames": {"#t": "token"},
                "ExpressionAttributeValues": {
                    ":t": {"S": token},
                    ":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                },
            }
        }

    async def has_legacy(self, email: str) -> bool:
        """Whether the old system left entitlement rows keyed by this address."""
        response = await self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"user#{email}"}},
            Limit=1,
        )
        return bool(response.get("Items"))

    async def account_id_for(self, email: str) -> str:
        """The user id a seed address's tokens and quota go under: its account's, or, until the person
        claims the address, `seed:<email>`, which is also the id the claimed account then gets."""
        response = await self.dynamodb.get_item(
            TableName=self.settings.table("users"), Key={"pk": {"S": f"email#{email}"}}, ConsistentRead=True
        )
        item = response.get("Item")
        return item["user_id"]["S"] if item else seed_user_id(email)

    async def list_for(self, user_id: str, email: str) -> list[Entitlement]:
        found: dict[str, Entitlement] = {}
        for pk in (f"user#{email}", f"user#{user_id}"):
            for data in await query_all(
                self.dynamodb,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":s": {"S": "solution#"}},
            ):
                canonical = self.settings.canonical_solution(str(data["sk"]).removeprefix("solution#"))
                entitlement = await self._first_sight(_parse_plain(data, user_id, self.limit_for(canonical), canonical))
                if entitlement.active:
                    found[canonical] = entitlement
        return list(found.values())

    async def cached(self, user_id: str, email: str, solution_id: str, cache: TolerantCache) -> Entitlement | None:
        """The active entitlement through a short Redis cache; an inactive one raises (403, with its status)."""
        solution_id = self.settings.canonical_solution(solution_id)
        key = entitlement_cache_key(user_id, solution_id)
        raw = await cache.get(key)
        if raw == b"-":
            return None
        if raw:
            data = json.loads(raw)
            entitlement = Entitlement(
                user_id,
                solution_id,
                data["tier"],
                data["pro_until"],
                status=data.get("status", "active"),
                created_at=data.get("created_at", ""),
                legacy_daily_usage=data.get("usage", {}),
                daily_limit_registered=data["limit"],
            )
        else:
            found = await self.get_any(user_id, email, solution_id)
            if found is None:
                await cache.set(key, "-", ex=30)
                return None
            entitlement = found
            await cache.set(key, json.dumps(_cache_record(entitlement)), ex=300)
        if not entitlement.active:
            raise ForbiddenError(
                f"This entitlement is {entitlement.status}, not active.",
                reason="entitlement_inactive",
                status=entitlement.status,
            )
        return entitlement

    async def ensure(self, user_id: str, solution_id: str, redis: Redis | None = None) -> Entitlement:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        item = to_item(
            {
                "pk": f"user#{user_id}",
                "sk": f"solution#{solution_id}",
                "accessTier": "registered",
                "status": "active",
                "dailyUsage": 0,
                "lastUsageDate": "",
                "createdAt": now,
                "updatedAt": now,
            }
        )
        try:
            await self.dynamodb.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            pass
        if redis is not None:
            await redis.delete(entitlement_cache_key(user_id, solution_id))
        entitlement = await self.get(user_id, "", solution_id)
        assert entitlement is not None
        return entitlement


DAY_S = 86400


@dataclass(frozen=True)
class ProPass:
    """One paid Pro period, keyed by the merchant order that paid for it."""

    order_id: str
    days: int
    paid_at: int  # epoch s
    start: int
    until: int
    state: str = "active"  # active | refunded


@dataclass(frozen=True)
class ProLedger:
    """The paid periods of one (user, solution): proUntil is derived from it, never edited on its own.

    A refund replays the ledger without its pass: every later pass moves back by the refunded pass's
    length, but never to before it was paid for; the other passes keep their days.
    """

    user_id: str
    solution_id: str
    version: int = 0  # 0: no ledger written yet (no row, or a row from before the ledger)
    base_until: int = 0  # Pro time the row had before its first ledgered pass (seeded or migrated rows)
    passes: tuple[ProPass, ...] = ()

    @property
    def pro_until(self) -> int:
        return max([self.base_until, *(p.until for p in self.passes if p.state == "active")])

    @property
    def tier(self) -> str:
        return "pro" if self.pro_until > 0 else "registered"

    def find(self, order_id: str) -> ProPass | None:
        return next((p for p in self.passes if p.order_id == order_id), None)

    def grant(self, order_id: str, days: int, now: int) -> ProLedger:
        """The ledger with one more pass, starting when the current Pro time ends (or now); idempotent."""
        if self.find(order_id) is not None:
            return self
        start = max(now, self.pro_until)
        added = ProPass(order_id, days, now, start, start + days * DAY_S)
        return replace(self, version=self.version + 1, passes=(*self.passes, added))

    def refund(self, order_id: str, days: int) -> ProLedger:
        """The ledger without that order's period. An order from before the ledger comes off base_until."""
        refunded = self.find(order_id)
        if refunded is not None and refunded.state == "refunded":
            return self
        if refunded is None:
            return replace(self, version=self.version + 1, base_until=max(0, self.base_until - days * DAY_S))
        previous = self.base_until
        passes = []
        for item in sorted(self.passes, key=lambda p: (p.start, p.order_id)):
            if item.order_id == order_id:
                passes.append(replace(item, state="refunded"))
            elif item.state == "active":
                start = max(item.paid_at, previous)
                item = replace(item, start=start, until=start + item.days * DAY_S)
                previous = item.until
                passes.append(item)
            else:
                passes.append(item)
        return replace(self, version=self.version + 1, passes=tuple(passes))


def _ledger_from_item(user_id: str, solution_id: str, data: dict[str, Any] | None) -> ProLedger:
    if data is None:
        return ProLedger(user_id, solution_id)
    if "ledgerVersion" not in data:
        legacy = int(data.get("proUntil", 0)) if data.get("accessTier") == "pro" else 0
        return ProLedger(user_id, solution_id, base_until=legacy)
    passes = tuple(
        ProPass(order_id, int(p["days"]), int(p["paid_at"]), int(p["start"]), int(p["until"]), str(p["state"]))
        for order_id, p in (data.get("passes") or {}).items()
    )
    return ProLedger(user_id, solution_id, int(data["ledgerVersion"]), int(data.get("proBaseUntil", 0)), passes)


class ProPasses:
    """Owns Pro time: reads a ledger and builds the conditional write that replaces it, for callers
    (payments) to put into their own DynamoDB transaction beside their own state change."""

    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("user-solution-entitlements")

    def _key(self, user_id: str, solution_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"user#{user_id}"}, "sk": {"S": f"solution#{solution_id}"}}

    async def ledger(self, user_id: str, solution_id: str) -> ProLedger:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=self._key(user_id, solution_id), ConsistentRead=True
        )
        item = response.get("Item")
        return _ledger_from_item(user_id, solution_id, from_item(item) if item else None)

    def write_item(self, before: ProLedger, after: ProLedger) -> dict[str, Any]:
        """A TransactWriteItems entry: the new ledger and the tier it implies, only if nobody else
        changed the ledger since `before` was read (optimistic concurrency on ledgerVersion)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        passes = {
            p.order_id: {"days": p.days, "paid_at": p.paid_at, "start": p.start, "until": p.until, "state": p.state}
            for p in after.passes
        }
        named = {
            ":tier": after.tier,
            ":until": after.pro_until,
            ":passes": passes,
            ":version": after.version,
            ":base": after.base_until,
            ":active": "active",
            ":now": now,
        }
        condition = "attribute_not_exists(ledgerVersion)"
        if before.version:
            condition, named[":before"] = "ledgerVersion = :before", before.version
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(after.user_id, after.solution_id),
                "UpdateExpression": (
                    "SET accessTier = :tier, proUntil = :until, passes = :passes, ledgerVersion = :version, "
                    "proBaseUntil = :base, #st = if_not_exists(#st, :active), updatedAt = :now, "
                    "createdAt = if_not_exists(createdAt, :now)"
                ),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(named),
            }
        }


def _cache_record(entitlement: Entitlement) -> dict[str, Any]:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    return {
        "tier": entitlement.access_tier,
        "pro_until": entitlement.pro_until,
        "limit": entitlement.daily_limit_registered,
        "status": entitlement.status,
        "created_at": entitlement.created_at,
        "usage": {today: entitlement.used_on(today)} if entitlement.used_on(today) else {},
    }
