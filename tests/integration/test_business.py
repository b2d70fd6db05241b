"""The business side: GST invoices (numbering, tax, PDF, owner-only), mail at most once, SMTP delivery."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
from aiosmtpd.controller import Controller

from core.dynamo import create_dynamodb_client
from core.settings import load_settings
from marketplace.mail import Attachment, Outbox, SmtpMailer
from payments.checkout import Transaction, TransactionStore
from payments.invoices import InvoiceIssuer
from tests.conftest import Sink, Stack, pdf_text, settle, simulator_get, wait_state, webhooks_delivered
from tests.helpers import register, start_gateway, token_for

KARNATAKA_GSTIN = "29AAGCB7383J1Z4"


async def buy(client: httpx.AsyncClient, headers: dict[str, str], billing: dict | None = None) -> httpx.Response:
    body: dict = {"plan": "pro", "solution_id": "aws-solution-finder"}
    if billing is not None:
        body["billing"] = billing
    return await client.post("/api/payments/checkout", json=body, headers=headers)


async def test_completed_payment_gets_one_gst_invoice_only_its_owner_can_download(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    email, headers = await register(client)
    await token_for(client, headers)
    billing = {
        "country": "IN",
        "state_code": "29",
        "address": "MG Road, Bengaluru",
        "postal_code": "560001",
        "company_name": "Acme Bengaluru Pvt Ltd",
        "gstin": KARNATAKA_GSTIN.lower(),
    }
    order = (await buy(client, headers, billing)).json()
    webhooks_before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, order["merchant_order_id"], webhook="duplicate")
    paid = await wait_state(client, order["merchant_order_id"], "COMPLETED")
    for _ in range(50):
        paid = (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()
        if paid["invoice_no"]:
            break
        await asyncio.sleep(0.1)
    assert re.fullmatch(r"INV/\d{4}-\d{2}/\d{4}", paid["invoice_no"])
    pdf = await client.get(f"/api/payments/{order['merchant_order_id']}/invoice.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = pdf_text(pdf.content)
    for needle in (
        "TAX INVOICE",
        "IGST @ 18%",
        "PAID",
        "998315",
        KARNATAKA_GSTIN,
        "Place of supply: Karnataka",
        "Rs. 422.88",
        "Rs. 76.12",
        "Rs. 499.00",
        "Rupees Four Hundred And Ninety-Nine Only",
        stack.settings.seller_gstin,
        paid["invoice_no"],
    ):
        assert needle in text, needle
    async with httpx.AsyncClient(base_url=stack.base_url) as other:
        await register(other)
        assert (await other.get(f"/api/payments/{order['merchant_order_id']}/invoice.pdf")).status_code == 404
    await webhooks_delivered(stack, webhooks_before, 3)  # all three copies were answered
    mails = (await client.get("/dev/mailbox/messages", params={"to": email})).json()
    receipts = [m for m in mails if m["subject"].startswith("Payment received")]
    assert len(receipts) == 1 and receipts[0]["attachments"] == [paid["invoice_no"].replace("/", "_") + ".pdf"]
    assert [m["subject"] for m in mails].count("Welcome to Solution Finder") == 1


async def test_checkout_validates_billing_and_gstin(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    cases = [
        ({"country": "IN", "state_code": "29", "gstin": "29AAGCB7383J1Z5"}, "invalid_gstin"),  # wrong check char
        ({"country": "IN", "state_code": "27", "gstin": KARNATAKA_GSTIN}, "invalid_gstin"),  # another state
        ({"country": "IN", "state_code": "99"}, "bad_request"),
        ({"country": "DE", "gstin": KARNATAKA_GSTIN}, "bad_request"),
        ({"country": "Germany"}, "bad_request"),
        ({"country": "IN", "amount_paise": 100}, "bad_request"),
    ]
    for billing, reason in cases:
        r = await buy(client, headers, billing)
        assert (r.status_code, r.json()["reason"]) == (400, reason), (billing, r.text)
    export = await buy(client, headers, {"country": "DE", "address": "Berlin"})
    assert export.status_code == 201 and export.json()["amount_paise"] == 49900


async def test_twenty_concurrent_payments_get_twenty_consecutive_invoice_numbers(stack: Stack) -> None:
    settings = stack.settings
    async with create_dynamodb_client(settings) as dynamodb:
        store = TransactionStore(dynamodb, settings)
        ids = []
        now = int(time.time())
        for n in range(20):
            txn = Transaction(
                merchant_order_id=f"SF-test-{uuid.uuid4().hex[:12]}",
                user_id=f"u{n}",
                email="x@y.z",
                solution_id="aws-solution-finder",
                amount_paise=49900,
                state="COMPLETED",
                created_at=str(now * 1000),
                expire_at=now + 600,
                completed_at=now,
                pro_until=now + 86400,
                receipt_queued=True,  # fixtures: no poller in this session should mail their receipts
            )
            await store.create(txn)
            ids.append(txn.merchant_order_id)
        issuers = [InvoiceIssuer(dynamodb, settings) for _ in range(4)]
        numbers = await asyncio.gather(*[issuers[i % 4].issue(order) for i, order in enumerate(ids)])
        again = await asyncio.gather(*[issuers[0].issue(order) for order in ids])
    assert numbers == again  # one invoice per payment, however often it is asked for
    serials = sorted(int(n.rsplit("/", 1)[1]) for n in numbers)
    assert len(set(numbers)) == 20 and serials == list(range(serials[0], serials[0] + 20))


async def test_outbox_sends_each_event_once(stack: Stack) -> None:
    sent: list[str] = []

    class Recorder:
        async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None:
            sent.append(subject)

    async with create_dynamodb_client(stack.settings) as dynamodb:
        outbox = Outbox(dynamodb, stack.settings, Recorder())
        key = f"test-event:{uuid.uuid4().hex}"
        results = await asyncio.gather(*[outbox.send_once(key, "a@b.co", "Hello", "text") for _ in range(5)])
    assert sum(results) == 1 and sent == ["Hello"]


async def test_smtp_mailer_delivers_text_and_attachments(smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    mailer = SmtpMailer(load_settings({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(controller.port)}))
    await mailer.send(
        "buyer@example.com",
        "Your invoice",
        "Attached.",
        [Attachment(filename="INV.pdf", content_type="application/pdf", data=b"%PDF-1.4 test")],
    )
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert message["To"] == "buyer@example.com" and message["Subject"] == "Your invoice"
    parts = [p for p in message.walk() if p.get_filename() == "INV.pdf"]
    assert parts and parts[0].get_payload(decode=True) == b"%PDF-1.4 test"


async def test_registration_code_arrives_over_smtp(stack: Stack, smtp: tuple[Controller, Sink], clean: None) -> None:
    controller, sink = smtp
    base = start_gateway(stack, "gateway-smtp", {"MAIL_PROVIDER": "smtp", "SMTP_PORT": str(controller.port)})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            csrf = (await http.get("/api/auth/csrf")).json()["csrf_token"]
            r = await http.post(
                "/api/auth/register",
                json={"email": "smtp-user@example.com", "password": "0123456789ab"},
                headers={"X-CSRFToken": csrf},
            )
            assert r.status_code == 201
        assert any("verification code is" in str(m.get_payload()) for m in sink.messages)
        assert sink.messages[-1]["To"] == "smtp-user@example.com"
    finally:
        stack.stop("gateway-smtp")
