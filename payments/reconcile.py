"""Settles payments: one idempotent reconcile(order) trusted by the webhook, the return page and the poller,
and refunds, each through a state machine of conditional writes.

The body of a webhook is never trusted: reconcile asks PhonePe's Order Status API, checks the amount and
order id against the stored transaction, then marks the order COMPLETED, adds its Pro pass to the
entitlement's ledger and records the history event in one DynamoDB transaction that is conditional on
the order still being PENDING and the ledger unchanged, so an upgrade happens once. The invoice and the
receipt follow; the receipt goes through the outbox, so a PDF or mail failure never undoes a payment.
A refund removes exactly its own pass from the ledger, once. `python -m payments.reconcile` runs the
poller that settles PENDING orders on PhonePe's schedule, resumes refunds and delivers queued mail, with
its state in DynamoDB so a restart loses nothing.
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

from core.dynamo import create_dynamodb_client
from core.errors import ConflictError, NotFoundError
from core.metrics import PAYMENTS
from core.runner import run_until_signalled
from core.settings import Settings
from marketplace.entitlements import DAY_S, ProPasses, entitlement_cache_key
from marketplace.history import History
from marketplace.mail import Attachment, Outbox, create_mailer
from payments.checkout import Transaction, TransactionStore, latest_passes
from payments.invoices import InvoiceIssuer
from payments.phonepe import OrderStatus, PhonePeClient, PhonePeError

log = logging.getLogger("payments")
REFUND_RESUME_AFTER_S = 60  # a REQUESTED refund this old lost its requester; the poller finishes it


class RefundNotAllowedError(ConflictError):
    reason = "refund_not_allowed"


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


def abandoned(txn: Transaction, status: OrderStatus, now: float) -> bool:
    """PhonePe says FAILED, but nobody tried to pay and the order's time ran out: it expired."""
    expire_at_s = status.expireAt / 1000 if status.expireAt else txn.expire_at
    return not status.paymentDetails and now >= expire_at_s


@dataclass
class Reconciler:
    settings: Settings
    dynamodb: Any
    redis: Redis
    phonepe: PhonePeClient
    outbox: Outbox | None = None

    def __post_init__(self) -> None:
        if self.outbox is not None:
            self.outbox.register("invoice", self.invoice_attachment)

    @property
    def store(self) -> TransactionStore:
        return TransactionStore(self.dynamodb, self.settings)

    @property
    def passes(self) -> ProPasses:
        return ProPasses(self.dynamodb, self.settings)

    @property
    def history(self) -> History:
        return History(self.dynamodb, self.settings)

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
                return await self._fail(txn, status)
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
                log.info("order %s completed: %s is pro", merchant_order_id, txn.solution_id)
                await self.after_completion_safely(merchant_order_id)
                return await self.store.get(merchant_order_id)
        return await self.store.get(merchant_order_id)

    async def _fail(self, txn: Transaction, status: OrderStatus) -> Transaction | None:
        """FAILED with a "Payment failed" mail, or EXPIRED quietly when nobody paid in time."""
        state = "EXPIRED" if abandoned(txn, status, time.time()) else "FAILED"
        if await self.store.update(txn.merchant_order_id, when=("state", "PENDING"), state=state):
            PAYMENTS.labels(state).inc()
        after = await self.store.get(txn.merchant_order_id)
        if after is not None and after.state == "FAILED" and self.outbox is not None:
            await self.outbox.send_once(
                f"payment-failed:{txn.merchant_order_id}",
                txn.email,
                "Payment failed",
                "Your payment did not go through and nothing was charged. You can try again from the pricing page.",
            )
        return after

    async def _complete(self, txn: Transaction, phonepe_order_id: str) -> bool:
        """Order COMPLETED, its pass in the ledger and its history event, in one transaction; False if
        someone else completed it first. A ledger changed meanwhile (another order) is read again."""
        days = self.settings.pro_period_days
        for _ in range(10):
            now = int(time.time())
            before = await self.passes.ledger(txn.user_id, txn.solution_id)
            after = before.grant(txn.merchant_order_id, days, now)
            granted = after.find(txn.merchant_order_id)
            assert granted is not None
            event = "renewal" if granted.start > now else "upgrade"
            order_update = self.store.update_request(
                txn.merchant_order_id,
                when=("state", "PENDING"),
                state="COMPLETED",
                completed_at=now,
                pro_until=granted.until,
                pro_days=days,
                phonepe_order_id=phonepe_order_id,
            )
            history = self.history.write_items(
                txn.user_id,
                event,
                source=txn.merchant_order_id,
                solution_id=txn.solution_id,
                actor=f"payment:{txn.merchant_order_id}",
                at_ms=now * 1000,
                amount_paise=txn.amount_paise,
                pro_until=granted.until,
                order_id=txn.merchant_order_id,
                days=days,
            )
            items = [{"Update": order_update}, self.passes.write_item(before, after), *history]
            if await self._transact(items):
                return True
            current = await self.store.get(txn.merchant_order_id)
            if current is None or current.state != "PENDING":
                return False
        raise RuntimeError(f"order {txn.merchant_order_id}: the Pro ledger kept changing")

    async def _transact(self, items: list[dict[str, Any]]) -> bool:
        try:
            await self.dynamodb.transact_write_items(TransactItems=items)
        except self.dynamodb.exceptions.TransactionCanceledException:
            return False
        return True

    async def after_completion_safely(self, merchant_order_id: str, *, deliver_now: bool = True) -> None:
        """The payment stands whatever happens here; the poller finishes what an error interrupted."""
        try:
            await self.after_completion(merchant_order_id, deliver_now=deliver_now)
        except Exception:
            log.exception("order %s: invoice or receipt not done yet; the poller will retry", merchant_order_id)

    async def after_completion(self, merchant_order_id: str, *, deliver_now: bool = True) -> None:
        """Invoice number and receipt (queued in the outbox, rendered when sent): each once."""
        await InvoiceIssuer(self.dynamodb, self.settings).issue(merchant_order_id)
        txn = await self.store.get(merchant_order_id)
        if txn is None:
            return
        if self.outbox is not None:
            until = time.strftime("%d %b %Y", time.gmtime(txn.pro_until))
            await self.outbox.send_once(
                f"invoice:{merchant_order_id}",
                txn.email,
                f"Payment received: invoice {txn.invoice_no}",
                f"Thank you. Your payment of Rs. {txn.amount_paise / 100:,.2f} was received and you are Pro until "
                f"{until}. Your tax invoice {txn.invoice_no} is attached.",
                attach=[f"invoice:{merchant_order_id}"],
                deliver_now=deliver_now,
            )
        await self.store.update(merchant_order_id, when=("state", "COMPLETED"), receipt_queued=True)

    async def invoice_attachment(self, merchant_order_id: str) -> Attachment:
        txn = await self.store.get(merchant_order_id)
        if txn is None or not txn.invoice_no:
            raise LookupError(f"order {merchant_order_id} has no invoice yet")
        data = await InvoiceIssuer(self.dynamodb, self.settings).pdf(txn)
        return Attachment(filename=txn.invoice_no.replace("/", "_") + ".pdf", content_type="application/pdf", data=data)

    async def _schedule(self, txn: Transaction) -> None:
        age = time.time() - int(txn.created_at) / 1000
        first = 20 + (hash(txn.merchant_order_id) % 6)
        when = int(txn.created_at) / 1000 + next_check_after(age, first, self.settings.payment_poll_scale)
        await self.store.update(txn.merchant_order_id, when=("state", "PENDING"), next_check_at=round(when, 3))

    async def refund(self, merchant_order_id: str) -> Transaction:
        """Refund a completed order in full. Of many concurrent requests one wins and calls PhonePe;
        the others get RefundNotAllowedError. A FAILED refund may be requested again."""
        txn = await self.store.request_refund(merchant_order_id, int(time.time()))
        if txn is None:
            current = await self.store.get(merchant_order_id)
            if current is None or current.state != "COMPLETED":
                raise NotFoundError("No completed payment with that id.", reason="not_found")
            raise RefundNotAllowedError(
                f"This payment's refund is already {current.refund_state}.", refund_state=current.refund_state
            )
        await self._send_refund(txn)
        after = await self.settle_refund(merchant_order_id)
        assert after is not None
        return after

    async def _send_refund(self, txn: Transaction) -> None:
        """REQUESTED -> PENDING once PhonePe has the refund; -> FAILED if it surely does not."""
        try:
            await self.phonepe.refund(txn.merchant_refund_id, txn.merchant_order_id, txn.amount_paise)
        except PhonePeError as exc:
            if exc.status and exc.status < 500:  # refused: nothing was refunded, may be requested again
                await self.store.update(
                    txn.merchant_order_id, when=("refund_state", "REQUESTED"), refund_state="FAILED"
                )
                raise
            # Unreachable or 5xx: PhonePe may have it. Ask by our refund id (PhonePe dedupes on it).
            try:
                await self.phonepe.refund_status(txn.merchant_refund_id)
            except PhonePeError as status_exc:
                if status_exc.status != 404:
                    raise exc from status_exc  # still unknown: stays REQUESTED, the poller resumes it
                await self.store.update(
                    txn.merchant_order_id, when=("refund_state", "REQUESTED"), refund_state="FAILED"
                )
                raise exc from status_exc
        await self.store.update(txn.merchant_order_id, when=("refund_state", "REQUESTED"), refund_state="PENDING")

    async def settle_refund(self, merchant_order_id: str) -> Transaction | None:
        """Once PhonePe says the refund completed, its pass leaves the ledger, once."""
        txn = await self.store.get(merchant_order_id)
        if txn is None or txn.refund_state not in ("REQUESTED", "PENDING"):
            return txn
        status = await self.phonepe.refund_status(txn.merchant_refund_id)  # 404 while PhonePe lacks it
        if txn.refund_state == "REQUESTED":  # PhonePe's webhook came before our own PENDING write
            await self.store.update(merchant_order_id, when=("refund_state", "REQUESTED"), refund_state="PENDING")
        if status.state == "FAILED":
            await self.store.update(merchant_order_id, when=("refund_state", "PENDING"), refund_state="FAILED")
        elif status.state == "COMPLETED" and await self._apply_refund(txn):
            PAYMENTS.labels("REFUNDED").inc()
            await self.redis.delete(entitlement_cache_key(txn.user_id, txn.solution_id))
        return await self.store.get(merchant_order_id)

    async def _apply_refund(self, txn: Transaction) -> bool:
        days = txn.pro_days or self.settings.pro_period_days
        for _ in range(10):
            now = int(time.time())
            before = await self.passes.ledger(txn.user_id, txn.solution_id)
            after = before.refund(txn.merchant_order_id, days)
            order_update = self.store.update_request(
                txn.merchant_order_id, when=("refund_state", "PENDING"), refund_state="COMPLETED", refunded_at=now
            )
            history = self.history.write_items(
                txn.user_id,
                "refund",
                source=txn.merchant_order_id,
                solution_id=txn.solution_id,
                actor="admin",
                at_ms=now * 1000,
                amount_paise=txn.amount_paise,
                pro_until=after.pro_until,
                order_id=txn.merchant_order_id,
                days=days,
            )
            if await self._transact([{"Update": order_update}, self.passes.write_item(before, after), *history]):
                return True
            current = await self.store.get(txn.merchant_order_id)
            if current is None or current.refund_state != "PENDING":
                return False
        raise RuntimeError(f"order {txn.merchant_order_id}: the Pro ledger kept changing")

    async def _resume_refund(self, txn: Transaction) -> None:
        """A REQUESTED refund whose requester went away: PhonePe either has it (PENDING) or gets it now."""
        try:
            await self.phonepe.refund_status(txn.merchant_refund_id)
        except PhonePeError as exc:
            if exc.status != 404:
                raise
            await self._send_refund(txn)
            return
        await self.store.update(txn.merchant_order_id, when=("refund_state", "REQUESTED"), refund_state="PENDING")

    async def poll_once(self) -> int:
        """Check every PENDING order whose time has come, finish completed orders and refunds that an
        error interrupted, deliver queued mail, and send Pro lifecycle mail."""
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
        if self.outbox is not None:  # oldest first, before repairs below queue more
            await self.outbox.deliver_due()
        completed = await self.store.by_state("COMPLETED")
        for txn in completed:
            if not txn.receipt_queued:  # completed, but the process stopped before its invoice or receipt
                await self.after_completion_safely(txn.merchant_order_id, deliver_now=False)
        await self._poll_refunds(now)
        await self.lifecycle_once(completed=completed)
        return settled

    async def _poll_refunds(self, now: float) -> None:
        for txn in await self.store.by_refund_state("REQUESTED"):
            if txn.refund_requested_at < now - REFUND_RESUME_AFTER_S:
                with contextlib.suppress(PhonePeError):
                    await self._resume_refund(txn)
        for txn in await self.store.refunds_pending():
            with contextlib.suppress(PhonePeError):
                await self.settle_refund(txn.merchant_order_id)

    async def lifecycle_once(self, now: float | None = None, completed: list[Transaction] | None = None) -> int:
        """Warn 7 and 3 days before a Pro pass ends and say when it has ended, each once; record the expiry.
        The tier itself turns back to registered by the clock (the pass's end), with nothing to run."""
        now = time.time() if now is None else now
        if completed is None:
            completed = await self.store.by_state("COMPLETED")
        sent = 0
        latest = await latest_passes(self.passes, completed)
        for (user_id, solution_id), (txn, pro_until) in latest.items():
            left = pro_until - now
            if 0 < left <= 7 * DAY_S:
                sent += await self._warn(txn, pro_until, left)
            elif -7 * DAY_S < left <= 0:
                await self.history.record(
                    user_id,
                    "expiry",
                    source=f"pass-{pro_until}",
                    solution_id=solution_id,
                    actor="system",
                    at_ms=pro_until * 1000,
                )
                if self.outbox is not None:
                    sent += await self.outbox.send_once(
                        f"pro-expired:{user_id}:{solution_id}:{pro_until}",
                        txn.email,
                        "Your Pro pass has ended",
                        f"Your Pro pass ended on {_day(pro_until)}; you are back to 10 searches a day.",
                    )
        return sent

    async def _warn(self, txn: Transaction, pro_until: int, left: float) -> int:
        sent = 0
        for days in (7, 3):
            if left <= days * DAY_S and self.outbox is not None:
                sent += await self.outbox.send_once(
                    f"pro-{days}d:{txn.user_id}:{txn.solution_id}:{pro_until}",
                    txn.email,
                    f"Your Pro pass ends in {days} days",
                    f"Your Pro pass ends on {_day(pro_until)}. Renew from the pricing page to keep unlimited searches.",
                )
        return sent


def _day(epoch_s: int) -> str:
    return time.strftime("%d %b %Y", time.gmtime(epoch_s))


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
