"""Payment transactions (`payment-transactions` table): created PENDING at checkout, settled once.

States: PENDING -> COMPLETED | FAILED (a payment was tried and failed) | EXPIRED (nobody paid before
the order's expiry). Refunds, on a COMPLETED order: refund_state None -> REQUESTED -> PENDING ->
COMPLETED | FAILED, each step a conditional write; a FAILED refund may be REQUESTED again.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

from core.dynamo import from_item, query_all, to_item, values
from core.errors import UnavailableError
from core.settings import Settings
from marketplace.entitlements import ProPasses
from payments.phonepe import PhonePeClient, PhonePeError


class Transaction(msgspec.Struct):
    merchant_order_id: str
    user_id: str
    email: str
    solution_id: str
    amount_paise: int
    state: str  # PENDING | COMPLETED | FAILED | EXPIRED
    created_at: str  # epoch ms, as a sortable string
    expire_at: int  # epoch s
    next_check_at: float = 0.0
    phonepe_order_id: str = ""
    flag: str = ""
    completed_at: int = 0
    pro_until: int = 0
    pro_days: int = 0  # the length of the Pro pass this order paid for
    refund_state: str | None = None  # REQUESTED | PENDING | COMPLETED | FAILED
    merchant_refund_id: str = ""
    refund_attempts: int = 0
    refund_requested_at: int = 0
    refunded_at: int = 0
    buyer_name: str = ""
    billing_country: str = "IN"
    billing_state_code: str = ""
    billing_address: str = ""
    billing_postal_code: str = ""
    billing_company: str = ""
    billing_gstin: str = ""
    invoice_no: str = ""
    receipt_queued: bool = False  # invoice numbered and receipt in the outbox: nothing left to repair


def new_merchant_order_id() -> str:
    # PhonePe: at most 63 characters, letters, digits, '_' and '-' only.
    return f"SF-{time.strftime('%Y%m%d')}-{secrets.token_hex(10)}"


def _transaction(item: dict[str, Any]) -> Transaction:
    return msgspec.convert(item, Transaction)


class TransactionStore:
    def __init__(self, dynamodb: Any, settings: Settings, page_size: int | None = None) -> None:
        self.dynamodb = dynamodb
        self.settings = settings
        self.table = settings.table("payment-transactions")
        self.page_size = page_size or settings.dynamodb_page_size or None

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
        return _transaction(from_item(response["Item"])) if "Item" in response else None

    async def _query(self, index: str, condition: str, names: dict[str, str] | None = None, **named: Any) -> list[Any]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values(**named),
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return await query_all(self.dynamodb, page_size=self.page_size, **request)

    async def for_user(self, user_id: str) -> list[Transaction]:
        items = await self._query("user-index", "user_id = :u", u=user_id)
        return [_transaction(i) for i in reversed(items)]  # newest first

    async def by_state(self, state: str) -> list[Transaction]:
        return [_transaction(i) for i in await self._query("state-index", "#s = :s", {"#s": "state"}, s=state)]

    async def by_refund_state(self, refund_state: str) -> list[Transaction]:
        return [_transaction(i) for i in await self._query("refund-index", "refund_state = :r", r=refund_state)]

    async def refunds_pending(self) -> list[Transaction]:
        return await self.by_refund_state("PENDING")

    async def update(self, merchant_order_id: str, *, when: tuple[str, str], **changes: Any) -> bool:
        """Apply changes only while the field named in `when` still has the value given there."""
        try:
            await self.dynamodb.update_item(**self.update_request(merchant_order_id, when=when, **changes))
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def update_request(self, merchant_order_id: str, *, when: tuple[str, str], **changes: Any) -> dict[str, Any]:
        """The conditional UpdateItem as a request, also usable as a TransactWriteItems `Update`."""
        names = {f"#k{i}": k for i, k in enumerate(changes)}
        sets = ", ".join(f"#k{i} = :v{i}" for i in range(len(changes)))
        return {
            "TableName": self.table,
            "Key": {"merchant_order_id": {"S": merchant_order_id}},
            "UpdateExpression": f"SET {sets}",
            "ConditionExpression": "#when = :expected",
            "ExpressionAttributeNames": {**names, "#when": when[0]},
            "ExpressionAttributeValues": values(
                expected=when[1], **{f"v{i}": v for i, v in enumerate(changes.values())}
            ),
        }

    async def request_refund(self, merchant_order_id: str, now: int) -> Transaction | None:
        """None -> REQUESTED (or FAILED -> REQUESTED), for one caller only: the winner gets the order
        with its new refund id, everyone else None."""
        txn = await self.get(merchant_order_id)
        if txn is None:
            return None
        attempt = txn.refund_attempts + 1
        refund_id = f"R{attempt}-{merchant_order_id}"[:63]
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key={"merchant_order_id": {"S": merchant_order_id}},
                UpdateExpression=(
                    "SET refund_state = :requested, refund_attempts = :attempt, merchant_refund_id = :rid, "
                    "refund_requested_at = :now"
                ),
                ConditionExpression=(
                    "#s = :completed AND (attribute_not_exists(refund_state) OR refund_state = :failed) "
                    "AND (attribute_not_exists(refund_attempts) OR refund_attempts = :before)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=values(
                    requested="REQUESTED",
                    attempt=attempt,
                    rid=refund_id,
                    now=now,
                    completed="COMPLETED",
                    failed="FAILED",
                    before=txn.refund_attempts,
                ),
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return msgspec.structs.replace(
            txn,
            refund_state="REQUESTED",
            refund_attempts=attempt,
            merchant_refund_id=refund_id,
            refund_requested_at=now,
        )


async def latest_passes(
    passes: ProPasses, completed: list[Transaction]
) -> dict[tuple[str, str], tuple[Transaction, int]]:
    """Per (user, solution): its latest unrefunded paid order and when its Pro time ends. Where an order
    was refunded the later passes moved back, so their end is read from the Pro ledger instead."""
    latest: dict[tuple[str, str], Transaction] = {}
    refunded: set[tuple[str, str]] = set()
    for txn in completed:
        key = (txn.user_id, txn.solution_id)
        if txn.refund_state == "COMPLETED":
            refunded.add(key)
        elif key not in latest or txn.pro_until > latest[key].pro_until:
            latest[key] = txn
    result = {}
    for key, txn in latest.items():
        until = (await passes.ledger(*key)).pro_until if key in refunded else txn.pro_until
        result[key] = (txn, until)
    return result


async def begin_checkout(
    store: TransactionStore, phonepe: PhonePeClient, txn: Transaction, return_url: str, expire_after_s: int
) -> str:
    """Store the order PENDING, then ask PhonePe for its payment page; returns the page's URL. If PhonePe
    cannot take it, the order is FAILED (flag gateway_error) and nothing was charged."""
    await store.create(txn)
    try:
        paid = await phonepe.pay(
            txn.merchant_order_id,
            txn.amount_paise,
            return_url,
            expire_after_s=expire_after_s,
            meta={"udf1": txn.solution_id},
        )
    except PhonePeError as exc:
        await store.update(txn.merchant_order_id, when=("state", "PENDING"), state="FAILED", flag="gateway_error")
        raise UnavailableError(
            "The payment gateway is unavailable; nothing was charged. Try again shortly.",
            reason="payment_gateway_unavailable",
        ) from exc
    await store.update(txn.merchant_order_id, when=("state", "PENDING"), phonepe_order_id=paid.orderId)
    return paid.redirectUrl
