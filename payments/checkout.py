"""Payment transactions (`payment-transactions` table): created PENDING at checkout, settled once."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

from core.dynamo import from_item, to_item, values
from core.settings import Settings


class Transaction(msgspec.Struct):
    merchant_order_id: str
    user_id: str
    email: str
    solution_id: str
    amount_paise: int
    state: str  # PENDING | COMPLETED | FAILED
    created_at: str  # epoch ms, as a sortable string
    expire_at: int  # epoch s
    next_check_at: float = 0.0
    phonepe_order_id: str = ""
    flag: str = ""
    completed_at: int = 0
    pro_until: int = 0
    refund_state: str | None = None
    merchant_refund_id: str = ""
    refunded_at: int = 0
    buyer_name: str = ""
    billing_country: str = "IN"
    billing_state_code: str = ""
    billing_address: str = ""
    billing_postal_code: str = ""
    billing_company: str = ""
    billing_gstin: str = ""
    invoice_no: str = ""


def new_merchant_order_id() -> str:
    # PhonePe: at most 63 characters, letters, digits, '_' and '-' only.
    return f"SF-{time.strftime('%Y%m%d')}-{secrets.token_hex(10)}"


class TransactionStore:
    def __init__(self, dynamodb: Any, settings: Settings) -> None:
        self.dynamodb = dynamodb
        self.settings = settings
        self.table = settings.table("payment-transactions")

    async def create(self, txn: Transaction) -> None:
        await self.dynamodb.put_item(
            TableName=self.table,
            Item=to_item(msgspec.to_builtins(txn)),
            ConditionExpression="attribute_not_exists(merchant_order_id)",
        )

    async def get(self, merchant_order_id: str) -> Transaction | None:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"merchant_order_id": {"S": merchant_order_id}}, ConsistentRead=True
        )
        return msgspec.convert(from_item(response["Item"]), Transaction) if "Item" in response else None

    async def for_user(self, user_id: str) -> list[Transaction]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="user-index",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=values(u=user_id),
            ScanIndexForward=False,
        )
        return [msgspec.convert(from_item(i), Transaction) for i in response.get("Items", [])]

    async def by_state(self, state: str) -> list[Transaction]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="state-index",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=values(s=state),
        )
        return [msgspec.convert(from_item(i), Transaction) for i in response.get("Items", [])]

    async def refunds_pending(self) -> list[Transaction]:
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName="refund-index",
            KeyConditionExpression="refund_state = :p",
            ExpressionAttributeValues=values(p="PENDING"),
        )
        return [msgspec.convert(from_item(i), Transaction) for i in response.get("Items", [])]

    async def update(self, merchant_order_id: str, *, when: tuple[str, str], **changes: Any) -> bool:
        """Apply changes only while the field named in `when` still has the value given there."""
        names = {f"#k{i}": k for i, k in enumerate(changes)}
        sets = ", ".join(f"#k{i} = :v{i}" for i in range(len(changes)))
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"merchant_order_id": {"S": merchant_order_id}},
                UpdateExpression=f"SET {sets}",
                ConditionExpression="#when = :expected",
                ExpressionAttributeNames={**names, "#when": when[0]},
                ExpressionAttributeValues=values(
                    expected=when[1], **{f"v{i}": v for i, v in enumerate(changes.values())}
                ),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True
