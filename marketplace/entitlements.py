"""Entitlements: who may use which solution at which tier; reads both seed formats, writes the new one.

Old: pk "user#<email>", sk "solution#<id>", access_tier, usage.daily_usage {"YYYY-MM-DD": n}, status, created_at.
New: pk "user#<uuid>", sk "solution#<id>", accessTier, dailyUsage, lastUsageDate, createdAt, updatedAt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from core.dynamo import from_item, to_item
from core.settings import Settings
from marketplace.cache import TolerantCache


def entitlement_cache_key(user_id: str, solution_id: str) -> str:
    return f"mkt:ent:{user_id}:{solution_id}"


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

    @property
    def tier(self) -> str:
        if self.access_tier == "pro" and (self.pro_until == 0 or self.pro_until > time.time()):
            return "pro"
        return "registered"

    @property
    def daily_limit(self) -> int:
        return -1 if self.tier == "pro" else self.daily_limit_registered


def _parse(item: dict[str, Any], user_id: str, limit: int) -> Entitlement:
    data = from_item(item)
    solution_id = str(data["sk"]).removeprefix("solution#")
    if "accessTier" in data:
        return Entitlement(
            user_id,
            solution_id,
            str(data["accessTier"]),
            int(data.get("proUntil", 0)),
            str(data.get("status", "active")),
            str(data.get("createdAt", "")),
            daily_limit_registered=limit,
        )
    usage = data.get("usage") or {}
    return Entitlement(
        user_id,
        solution_id,
        str(data.get("access_tier", "registered")),
        int(data.get("pro_until", 0)),
        str(data.get("status", "active")),
        str(data.get("created_at", "")),
        legacy_daily_usage={k: int(v) for k, v in (usage.get("daily_usage") or {}).items()},
        daily_limit_registered=limit,
    )


class EntitlementStore:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.settings = settings
        self.table = settings.table("user-solution-entitlements")

    def limit_for(self, solution_id: str) -> int:
        return self.settings.registered_daily_limit

    async def get(self, user_id: str, email: str, solution_id: str) -> Entitlement | None:
        limit = self.limit_for(solution_id)
        for pk in (f"user#{user_id}", f"user#{email}" if email else None):
            if pk is None:
                continue
            response = await self.dynamodb.get_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": f"solution#{solution_id}"}},
                ConsistentRead=True,
            )
            if "Item" in response:
                entitlement = _parse(response["Item"], user_id, limit)
                return entitlement if entitlement.status == "active" else None
        return None

    async def list_for(self, user_id: str, email: str) -> list[Entitlement]:
        found: dict[str, Entitlement] = {}
        for pk in (f"user#{email}", f"user#{user_id}"):
            response = await self.dynamodb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
            )
            for item in response.get("Items", []):
                entitlement = _parse(item, user_id, self.limit_for(from_item(item)["sk"].removeprefix("solution#")))
                if entitlement.status == "active":
                    found[entitlement.solution_id] = entitlement
        return list(found.values())

    async def cached(self, user_id: str, email: str, solution_id: str, cache: TolerantCache) -> Entitlement | None:
        key = entitlement_cache_key(user_id, solution_id)
        raw = await cache.get(key)
        if raw == b"-":
            return None
        if raw:
            data = json.loads(raw)
            return Entitlement(
                user_id, solution_id, data["tier"], data["pro_until"], daily_limit_registered=data["limit"]
            )
        entitlement = await self.get(user_id, email, solution_id)
        if entitlement is None:
            await cache.set(key, "-", ex=30)
            return None
        await cache.set(
            key,
            json.dumps(
                {
                    "tier": entitlement.access_tier,
                    "pro_until": entitlement.pro_until,
                    "limit": entitlement.daily_limit_registered,
                }
            ),
            ex=300,
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
