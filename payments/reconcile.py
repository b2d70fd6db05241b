"""Settles payments: one idempotent reconcile(order) trusted by the webhook, the return page and the poller.

The body of a webhook is never trusted: reconcile asks PhonePe's Order Status API, checks the amount and
order id against the stored transaction, then marks the order COMPLETED and makes the entitlement pro in
one DynamoDB transaction that is conditional on the order still being PENDING, so an upgrade happens once.
`python -m payments.reconcile` runs the poller that settles PENDING orders on PhonePe's schedule, with its
state (next_check_at) in DynamoDB so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from core.dynamo import create_dynamodb_client, values
from core.metrics import PAYMENTS
from core.runner import run_until_signalled
from core.settings import Settings
from marketplace.entitlements import entitlement_cache_key
from marketplace.history import History
from marketplace.mail import Attachment, Outbox, create_mailer
from payments.checkout import Transaction, TransactionStore
from payments.invoices import InvoiceIssuer
from payments.phonepe import PhonePeClient, PhonePeError

log = logging.getLogger("payments")
DAY_S = 86400


def next_check_after(age_s: float, first_s: float, scale: float = 1.0) -> float:
    """Seconds after creation for the next status check: first at 20-25 s, then every 3 s for 30 s,
    6 s for 60 s, 10 s for 60 s, 30 s for 60 s, then every minute until the order expires."""
    first = first_s * scale
    if age_s < first:
        return first
    phases = [(30, 3), (60, 6), (60, 10), (60, 30)]
    start = first
    for length, step in phases:
        end = start + length * scale
        if age_s < end:
            return age_s + step * scale
        start = end
    return age_s + 60 * scale


@dataclass
class Reconciler:
    settings: Settings
    dynamodb: Any
    redis: Redis
    phonepe: PhonePeClient
    outbox: Outbox | None = None

    async def after_completion(self, merchant_order_id: str) -> None:
        """Invoice and receipt for a completed payment: each once, whoever gets here first."""
        invoices = InvoiceIssuer(self.dynamodb, self.settings)
        await invoices.issue(merchant_order_id)
        txn = await self.store.get(merchant_order_id)
        if txn is None:
            return
        renewal = txn.pro_until - self.settings.pro_period_days * DAY_S > txn.completed_at
        await History(self.dynamodb, self.settings).record(
            txn.user_id,
            "renewal" if renewal else "upgrade",
            source=merchant_order_id,
            solution_id=txn.solution_id,
            actor=f"payment:{merchant_order_id}",
            at_ms=txn.completed_at * 1000,
            amount_paise=txn.amount_paise,
            pro_until=txn.pro_until,
        )
        if self.outbox is None:
            return
        pdf = await invoices.pdf(txn)
        until = time.strftime("%d %b %Y", time.gmtime(txn.pro_until))
        await self.outbox.send_once(
            f"invoice:{merchant_order_id}",
            txn.email,
            f"Payment received: invoice {txn.invoice_no}",
            f"Thank you. Your payment of Rs. {txn.amount_paise / 100:,.2f} was received and you are Pro until "
            f"{until}. Your tax invoice {txn.invoice_no} is attached.",
            [Attachment(filename=txn.invoice_no.replace("/", "_") + ".pdf", content_type="application/pdf", data=pdf)],
        )

    @property
    def store(self) -> TransactionStore:
        return TransactionStore(self.dynamodb, self.settings)

    async def reconcile(self, merchant_order_id: str) -> Transaction | None:
        for _ in range(3):
            txn = await self.store.get(merchant_order_id)
            if txn is None or txn.state != "PENDING":
                return txn
            status = await self.phonepe.order_status(merchant_order_id)
            if status.state == "PENDING":
                await self._schedule(txn)
                return txn
            if status.state == "FAILED":
                if await self.store.update(merchant_order_id, when=("state", "PENDING"), state="FAILED"):
                    PAYMENTS.labels("FAILED").inc()
                if self.outbox is not None:
                    await self.outbox.send_once(
                        f"payment-failed:{merchant_order_id}",
                        txn.email,
                        "Payment failed",
                        "Your payment did not go through and nothing was charged. "
                        "You can try again from the pricing page.",
                    )
                return await self.store.get(merchant_order_id)
            if status.amount != txn.amount_paise or (
                status.merchantOrderId and status.merchantOrderId != merchant_order_id
            ):
                log.warning(
                    "order %s: PhonePe reports %d paise, we asked for %d; not upgrading",
                    merchant_order_id,
                    status.amount,
                    txn.amount_paise,
                )
                await self.store.update(
                    merchant_order_id, when=("state", "PENDING"), state="FAILED", flag="amount_mismatch"
                )
                return await self.store.get(merchant_order_id)
            if await self._complete(txn, status.orderId):
                PAYMENTS.labels("COMPLETED").inc()
                await self.redis.delete(entitlement_cache_key(txn.user_id, txn.solution_id))
                await self.after_completion(merchant_order_id)
                log.info("order %s completed: %s is pro", merchant_order_id, txn.solution_id)
                return await self.store.get(merchant_order_id)
        return await self.store.get(merchant_order_id)

    async def _current_pro_until(self, user_id: str, solution_id: str) -> int | None:
        response = await self.dynamodb.get_item(
            TableName=self.settings.table("user-solution-entitlements"),
            Key={"pk": {"S": f"user#{user_id}"}, "sk": {"S": f"solution#{solution_id}"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return int(item.get("proUntil", {}).get("N", 0)) if item.get("accessTier", {}).get("S") == "pro" else 0

    async def _complete(self, txn: Transaction, phonepe_order_id: str) -> bool:
        """Order COMPLETED and entitlement pro, in one transaction; False if someone else got there first."""
        now = int(time.time())
        current = await self._current_pro_until(txn.user_id, txn.solution_id)
        # Paying while still pro extends from the current expiry, not from today.
        until = max(now, current or 0) + self.settings.pro_period_days * DAY_S
        now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        entitlement_condition = (
            "attribute_not_exists(pk)"
            if current is None
            else "attribute_not_exists(proUntil) OR proUntil = :old OR accessTier <> :pro"
        )
        entitlement_values = values(pro="pro", u=until, now=now_iso, active="active")
        if current is not None:
            entitlement_values.update(values(old=current))
        try:
            await self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.settings.table("payment-transactions"),
                            "Key": {"merchant_order_id": {"S": txn.merchant_order_id}},
                            "UpdateExpression": (
                                "SET #s = :done, completed_at = :t, pro_until = :u, phonepe_order_id = :o"
                            ),
                            "ConditionExpression": "#s = :pending",
                            "ExpressionAttributeNames": {"#s": "state"},
                            "ExpressionAttributeValues": values(
                                done="COMPLETED", pending="PENDING", t=now, u=until, o=phonepe_order_id
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.settings.table("user-solution-entitlements"),
                            "Key": {"pk": {"S": f"user#{txn.user_id}"}, "sk": {"S": f"solution#{txn.solution_id}"}},
                            "UpdateExpression": (
                                "SET accessTier = :pro, proUntil = :u, #st = :active, updatedAt = :now, "
                                "createdAt = if_not_exists(createdAt, :now)"
                            ),
                            "ConditionExpression": entitlement_condition,
                            "ExpressionAttributeNames": {"#st": "status"},
                            "ExpressionAttributeValues": entitlement_values,
                        }
                    },
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException:
            return False
        return True

    async def _schedule(self, txn: Transaction) -> None:
        age = time.time() - int(txn.created_at) / 1000
        first = 20 + (hash(txn.merchant_order_id) % 6)
        when = int(txn.created_at) / 1000 + next_check_after(age, first, self.settings.payment_poll_scale)
        await self.store.update(txn.merchant_order_id, when=("state", "PENDING"), next_check_at=round(when, 3))

    async def refund(self, txn: Transaction) -> Transaction | None:
        merchant_refund_id = f"R-{txn.merchant_order_id}"[:63]
        if not await self.store.update(
            txn.merchant_order_id,
            when=("state", "COMPLETED"),
            refund_state="PENDING",
            merchant_refund_id=merchant_refund_id,
        ):
            return await self.store.get(txn.merchant_order_id)
        await self.phonepe.refund(merchant_refund_id, txn.merchant_order_id, txn.amount_paise)
        return await self.settle_refund(txn.merchant_order_id)

    async def settle_refund(self, merchant_order_id: str) -> Transaction | None:
        """Once PhonePe says the refund completed, the user goes back to registered, once."""
        txn = await self.store.get(merchant_order_id)
        if txn is None or txn.refund_state != "PENDING":
            return txn
        status = await self.phonepe.refund_status(txn.merchant_refund_id)
        if status.state == "FAILED":
            await self.store.update(merchant_order_id, when=("refund_state", "PENDING"), refund_state="FAILED")
        elif status.state == "COMPLETED":
            now = int(time.time())
            try:
                await self.dynamodb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.settings.table("payment-transactions"),
                                "Key": {"merchant_order_id": {"S": merchant_order_id}},
                                "UpdateExpression": "SET refund_state = :done, refunded_at = :t",
                                "ConditionExpression": "refund_state = :pending",
                                "ExpressionAttributeValues": values(done="COMPLETED", pending="PENDING", t=now),
                            }
                        },
                        {
                            "Update": {
                                "TableName": self.settings.table("user-solution-entitlements"),
                                "Key": {"pk": {"S": f"user#{txn.user_id}"}, "sk": {"S": f"solution#{txn.solution_id}"}},
                                "UpdateExpression": "SET accessTier = :reg, proUntil = :zero, updatedAt = :now",
                                "ExpressionAttributeValues": values(
                                    reg="registered", zero=0, now=time.strftime("%Y-%m-%dT%H:%M:%SZ")
                                ),
                            }
                        },
                    ]
                )
                PAYMENTS.labels("REFUNDED").inc()
                await History(self.dynamodb, self.settings).record(
                    txn.user_id,
                    "refund",
                    source=merchant_order_id,
                    solution_id=txn.solution_id,
                    actor="admin",
                    amount_paise=txn.amount_paise,
                )
            except self.dynamodb.exceptions.TransactionCanceledException:
                pass
            await self.redis.delete(entitlement_cache_key(txn.user_id, txn.solution_id))
        return await self.store.get(merchant_order_id)

    async def poll_once(self) -> int:
        """Check every PENDING order whose time has come, and every refund still pending."""
        now = time.time()
        settled = 0
        for txn in await self.store.by_state("PENDING"):
            if txn.next_check_at <= now:
                try:
                    after = await self.reconcile(txn.merchant_order_id)
                except PhonePeError as exc:
                    log.warning("status check for %s failed: %s", txn.merchant_order_id, exc)
                    continue
                settled += bool(after and after.state != "PENDING")
        for txn in await self.store.by_state("COMPLETED"):
            if not txn.invoice_no:  # completed, but the process stopped before its invoice
                await self.after_completion(txn.merchant_order_id)
        for txn in await self.store.refunds_pending():
            with contextlib.suppress(PhonePeError):
                await self.settle_refund(txn.merchant_order_id)
        await self.lifecycle_once()
        return settled

    async def lifecycle_once(self, now: float | None = None) -> int:
        """Warn 7 and 3 days before a Pro pass ends and say when it has ended, each once; record the expiry.
        The tier itself turns back to registered by the clock (proUntil), with nothing to run."""
        now = time.time() if now is None else now
        latest: dict[tuple[str, str], Transaction] = {}
        for txn in await self.store.by_state("COMPLETED"):
            if txn.refund_state == "COMPLETED":
                continue
            key = (txn.user_id, txn.solution_id)
            if key not in latest or txn.pro_until > latest[key].pro_until:
                latest[key] = txn
        sent = 0
        for (user_id, solution_id), txn in latest.items():
            left = txn.pro_until - now
            until = time.strftime("%d %b %Y", time.gmtime(txn.pro_until))
            if 0 < left <= 7 * DAY_S and self.outbox is not None:
                for days in (7, 3):
                    if left <= days * DAY_S:
                        sent += await self.outbox.send_once(
                            f"pro-{days}d:{user_id}:{solution_id}:{txn.pro_until}",
                            txn.email,
                            f"Your Pro pass ends in {days} days",
                            f"Your Pro pass ends on {until}. Renew from the pricing page to keep unlimited searches.",
                        )
            elif -7 * DAY_S < left <= 0:
                await History(self.dynamodb, self.settings).record(
                    user_id,
                    "expiry",
                    source=f"pass-{txn.pro_until}",
                    solution_id=solution_id,
                    actor="system",
                    at_ms=txn.pro_until * 1000,
                )
                if self.outbox is not None:
                    sent += await self.outbox.send_once(
                        f"pro-expired:{user_id}:{solution_id}:{txn.pro_until}",
                        txn.email,
                        "Your Pro pass has ended",
                        f"Your Pro pass ended on {until}; you are back to 10 searches a day.",
                    )
        return sent


def create_phonepe(settings: Settings, http: httpx.AsyncClient) -> PhonePeClient:
    return PhonePeClient(
        http,
        settings.phonepe_base_url,
        settings.phonepe_client_id,
        settings.phonepe_client_secret,
        settings.phonepe_client_version,
    )


async def run(settings: Settings, stop: asyncio.Event, every_s: float = 1.0) -> None:
    redis = Redis.from_url(settings.redis_url)
    async with create_dynamodb_client(settings) as dynamodb, httpx.AsyncClient() as http:
        reconciler = Reconciler(
            settings,
            dynamodb,
            redis,
            create_phonepe(settings, http),
            Outbox(dynamodb, settings, create_mailer(settings)),
        )
        log.info("payment poller started")
        while not stop.is_set():
            try:
                settled = await reconciler.poll_once()
                if settled:
                    log.info("settled %d orders", settled)
            except Exception as exc:  # DynamoDB or PhonePe away: state is in DynamoDB, try again next round
                log.warning("poll failed, will retry: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s * (0.9 + 0.2 * random.random()))  # noqa: S311
    await redis.aclose()


def main() -> None:
    run_until_signalled(run)


if __name__ == "__main__":
    main()
