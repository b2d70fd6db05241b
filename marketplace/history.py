"""Subscription history: every tier change is an event (signup, upgrade, renewal, refund, expiry) with who
or what caused it. Written once per event key, so retries and repeated webhooks add nothing."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from core.dynamo import from_item, to_item, values
from core.settings import Settings

EVENTS = ("signup", "upgrade", "renewal", "refund", "expiry")


class HistoryEvent(msgspec.Struct):
    user_id: str
    event_key: str  # "<epoch ms>#<event>#<source>": sorts by time, unique per event
    event: str
    solution_id: str
    actor: str  # user | payment:<order> | admin:<user id> | system
    at_ms: int
    amount_paise: int = 0
    pro_until: int = 0


class History:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("subscription-history")

    async def record(
        self,
        user_id: str,
        event: str,
        *,
        source: str,
        solution_id: str,
        actor: str,
        at_ms: int | None = None,
        amount_paise: int = 0,
        pro_until: int = 0,
    ) -> bool:
        """Write an event once: `source` names what caused it (an order id, 'account', a pass expiry)."""
        assert event in EVENTS
        at_ms = at_ms or int(time.time() * 1000)
        marker = f"{event}#{source}"
        existing = await self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="user_id = :u",
            FilterExpression="#m = :m",
            ExpressionAttributeNames={"#m": "marker"},
            ExpressionAttributeValues=values(u=user_id, m=marker),
        )
        if existing.get("Items"):
            return False
        item = HistoryEvent(
            user_id=user_id,
            event_key=f"{at_ms:013d}#{marker}",
            event=event,
            solution_id=solution_id,
            actor=actor,
            at_ms=at_ms,
            amount_paise=amount_paise,
            pro_until=pro_until,
        )
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item({**msgspec.to_builtins(item), "marker": marker}),
                ConditionExpression="attribute_not_exists(event_key)",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def events(self, event: str, since_ms: int = 0) -> list[HistoryEvent]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="event-index",
            KeyConditionExpression="#e = :e AND event_key >= :since",
            ExpressionAttributeNames={"#e": "event"},
            ExpressionAttributeValues=values(e=event, since=f"{since_ms:013d}"),
        )
        return [
            msgspec.convert({k: v for k, v in from_item(i).items() if k != "marker"}, HistoryEvent)
            for i in response.get("Items", [])
        ]

    async def for_user(self, user_id: str) -> list[HistoryEvent]:
        response = await self.dynamodb.query(
            TableName=self.table, KeyConditionExpression="user_id = :u", ExpressionAttributeValues=values(u=user_id)
        )
        return [
            msgspec.convert({k: v for k, v in from_item(i).items() if k != "marker"}, HistoryEvent)
            for i in response.get("Items", [])
        ]
