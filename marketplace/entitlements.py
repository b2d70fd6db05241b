"""Entitlements: who may use which solution at which tier; reads both seed formats, writes the new one.

Old: pk "user#<email>", sk "solution#<id>", access_tier, usage.daily_usage {"YYYY-MM-DD": n}, status, created_at.
New: pk "user#<uuid>", sk "solution#<id>", accessTier, dailyUsage, lastUsageDate, createdAt, updatedAt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
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
