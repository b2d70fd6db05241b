"""Subscription history: every tier change is an event (signup, upgrade, renewal, refund, expiry) with who
or what caused it. Written once per event key, so retries and repeated webhooks add nothing."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from core.dynamo import query_all, to_item, values
from core.settings import Settings

EVENTS = ("signup", "upgrade", "renewal", "refund", "expiry")
MARKER = "marker#"  # event_key prefix of the guard rows that make each event unique


class HistoryEvent(msgspec.Struct):
    user_id: str
    event_key: str  # "<epoch ms>#<event>#<source>": sorts by time, unique per event
    event: str
    solution_id: str
    actor: str  # user | payment:<order> | admin:<user id> | system
    at_ms: int
    amount_paise: int = 0
    pro_until: int = 0
    order_id: str = ""  # the merchant order an upgrade, renewal or refund belongs to
    days: int = 0  # Pro days the event added (upgrade, renewal) or removed (refund)


def _event(item: dict[str, Any]) -> HistoryEvent:
    return msgspec.convert({k: v for k, v in item.items() if k != "marker"}, HistoryEvent)


class History:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.table = settings.table("subscription-history")
        self.page_size = settings.dynamodb_page_size or None

    async def _seen(self, user_id: str, marker: str) -> bool:
        """Events written before guard rows existed are found by their marker attribute."""
        found = await query_all(
            self.dynamodb,
            page_size=self.page_size,
            TableName=self.table,
            KeyConditionExpression="user_id = :u",
            FilterExpression="#m = :m",
            ExpressionAttributeNames={"#m": "marker"},
            ExpressionAttributeValues=values(u=user_id, m=marker),
        )
        return bool(found)

    def write_items(
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
        order_id: str = "",
        days: int = 0,
    ) -> list[dict[str, Any]]:
        """The event as TransactWriteItems entries (a guard row that fails if the event exists, and the
        event), for a caller to write in the same transaction as the change the event describes."""
        assert event in EVENTS
        at_ms = at_ms or int(time.time() * 1000)
        marker = f"{event}#{source}"
        item = HistoryEvent(
            user_id, f"{at_ms:013d}#{marker}", event, solution_id, actor, at_ms, amount_paise, pro_until, order_id, days
        )
        guard = {"user_id": user_id, "event_key": MARKER + marker}
        return [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(guard),
                    "ConditionExpression": "attribute_not_exists(event_key)",
                }
            },
            {"Put": {"TableName": self.table, "Item": to_item({**msgspec.to_builtins(item), "marker": marker})}},
        ]

    async def record(self, user_id: str, event: str, *, source: str, **fields: Any) -> bool:
        """Write an event once: `source` names what caused it (an order id, 'account', a pass expiry).
        Takes the keyword arguments of write_items."""
        if await self._seen(user_id, f"{event}#{source}"):
            return False
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=self.write_items(user_id, event, source=source, **fields)
            )
        except self.dynamodb.exceptions.TransactionCanceledException:
            return False  # another writer recorded this event first
        return True

    async def events(self, event: str, since_ms: int = 0) -> list[HistoryEvent]:
        items = await query_all(
            self.dynamodb,
            page_size=self.page_size,
            TableName=self.table,
            IndexName="event-index",
            KeyConditionExpression="#e = :e AND event_key >= :since",
            ExpressionAttributeNames={"#e": "event"},
            ExpressionAttributeValues=values(e=event, since=f"{since_ms:013d}"),
        )
        return [_event(i) for i in items]

    async def for_user(self, user_id: str) -> list[HistoryEvent]:
        items = await query_all(
            self.dynamodb,
            page_size=self.page_size,
            TableName=self.table,
            KeyConditionExpression="user_id = :u AND event_key < :markers",
            ExpressionAttributeValues=values(u=user_id, markers=MARKER),
        )
        return [_event(i) for i in items]
