"""Invoices for buyers whose names and addresses are not ASCII, and receipts that survive a mail outage:
the webhook answers 200, the payment stays COMPLETED, and the outbox sends the receipt later, once."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pypdf
from aiosmtpd.controller import Controller

from core.dynamo import create_dynamodb_client
from dev.servers import free_port
from marketplace.mail import DevMailbox, Outbox, create_mailer
from tests.conftest import Sink, Stack, checkout, pdf_text, settle, simulator_get, wait_state, wait_until
from tests.helpers import register, token_for

NAME = "Łukasz Żółć"
ADDRESS = "मुंबई, महाराष्ट्र"
BILLING = {"country": "IN", "state_code": "27", "address": ADDRESS, "postal_code": "400001"}


async def outbox_row(stack: Stack, key: str) -> dict:
    async with create_dynamodb_client(stack.settings) as dynamodb:
        outbox = Outbox(dynamodb, stack.settings, create_mailer(stack.settings))
        return await outbox.state(key) or {}


async def invoice_no(client: httpx.AsyncClient, order: str) -> str:
    async def probe() -> dict:
        return dict((await client.get(f"/api/payments/{order}")).json())

    return str((await wait_until(probe, lambda body: bool(body["invoice_no"])))["invoice_no"])


@contextlib.contextmanager
def mailbox_blocked(mail: Path) -> Iterator[None]:
    """The dev mailbox turned into a plain file, so every delivery to it fails (as root, chmod would not)."""
    aside = mail.with_name("mail-aside")
    mail.mkdir(parents=True, exist_ok=True)
    mail.rename(aside)
    mail.write_text("not a directory\n")
    try:
        yield
    finally:
        mail.unlink()
        aside.rename(mail)


async def test_unicode_buyer_gets_an_invoice_and_a_receipt_after_a_mail_outage(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    email, headers = await register(client, name=NAME)
    await token_for(client, headers)
    order = (await checkout(client, headers, BILLING))["merchant_order_id"]
    mail = Path(stack.env["MAIL_DIR"])
    with mailbox_blocked(mail):
        number, key = await pay_while_mail_is_down(client, stack, order)
    stack.spawn("poller-unicode", ["-m", "payments.reconcile"])
    try:
        row = await wait_until(lambda: outbox_row(stack, key), lambda r: r.get("state") == "sent", timeout_s=30)
    finally:
        stack.stop("poller-unicode")
    assert (row["state"], row["attempts"]) == ("sent", 2) and "queue" not in row
    receipts = [m for m in DevMailbox(mail).messages(email) if m.subject.startswith("Payment received")]
    assert len(receipts) == 1 and receipts[0].attachments == [number.replace("/", "_") + ".pdf"]


async def pay_while_mail_is_down(client: httpx.AsyncClient, stack: Stack, order: str) -> tuple[str, str]:
    webhooks_before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, order)
    assert (await wait_state(client, order, "COMPLETED"))["state"] == "COMPLETED"
    number = await invoice_no(client, order)

    pdf = await client.get(f"/api/payments/{order}/invoice.pdf")
    assert pdf.status_code == 200, pdf.text
    text = pdf_text(pdf.content)
    assert NAME in text and "महाराष्ट्र" in text and number in text
    webhooks = (await simulator_get(stack, "/simulator/webhooks"))[webhooks_before:]
    assert webhooks and all(w.get("status") == 200 for w in webhooks), webhooks

    key = f"invoice:{order}"
    row = await outbox_row(stack, key)
    assert (row["state"], row["attempts"]) == ("pending", 1) and "Error" in row["last_error"]
    return number, key


async def test_receipt_is_retried_until_the_smtp_server_takes_it(client: httpx.AsyncClient, stack: Stack) -> None:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        email, headers = await register(client, name=NAME)
        sink.refuse[email] = 2
        await token_for(client, headers)
        order = (await checkout(client, headers, BILLING))["merchant_order_id"]
        await settle(stack, order, webhook="missing")  # the poller finds the payment, and mails over SMTP
        env = {"MAIL_PROVIDER": "smtp", "SMTP_PORT": str(controller.port)}
        stack.spawn("poller-smtp", ["-m", "payments.reconcile"], env=env)
        try:
            key = f"invoice:{order}"
            row = await wait_until(lambda: outbox_row(stack, key), lambda r: r.get("state") == "sent", timeout_s=40)
        finally:
            stack.stop("poller-smtp")
    finally:
        controller.stop()
    assert (row["state"], row["attempts"]) == ("sent", 3), row
    assert (await client.get(f"/api/payments/{order}")).json()["state"] == "COMPLETED"
    mine = [m for m in sink.messages if m["To"] == email]
    receipts = [m for m in mine if str(m["Subject"]).startswith("Payment received")]
    assert len(receipts) == 1
    attachment = next(p for p in receipts[0].walk() if p.get_filename())
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    assert NAME in pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
