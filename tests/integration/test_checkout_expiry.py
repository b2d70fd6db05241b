"""An abandoned checkout (nobody paid before PhonePe's expiry) becomes EXPIRED quietly; a payment that was
tried and failed is FAILED and says so by mail."""

from __future__ import annotations

import httpx

from tests.conftest import Stack, checkout, settle, simulator_get, wait_state, wait_until
from tests.helpers import register


async def subjects(client: httpx.AsyncClient, email: str) -> list[str]:
    return [m["subject"] for m in (await client.get("/dev/mailbox/messages", params={"to": email})).json()]


async def test_an_abandoned_checkout_expires_without_a_failure_mail(client: httpx.AsyncClient, stack: Stack) -> None:
    email, headers = await register(client)
    abandoned = (await checkout(client, headers))["merchant_order_id"]
    failed = (await checkout(client, headers))["merchant_order_id"]
    before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, abandoned, "expire")
    await settle(stack, failed, "fail")
    # The simulator logs a webhook once our answer is back, so both have been handled after this.
    delivered = await wait_until(lambda: simulator_get(stack, "/simulator/webhooks"), lambda d: len(d) >= before + 2)
    assert [w["status"] for w in delivered[before:]] == [200, 200]
    assert (await client.get(f"/api/payments/{abandoned}")).json()["state"] == "EXPIRED"
    assert (await client.get(f"/api/payments/{failed}")).json()["state"] == "FAILED"
    assert (await subjects(client, email)).count("Payment failed") == 1
    page = await client.get("/payments/return", params={"merchant_order_id": abandoned})
    assert 'data-state="EXPIRED"' in page.text and "Checkout expired" in page.text
    states = {p["merchant_order_id"]: p["state"] for p in (await client.get("/api/payments")).json()}
    assert states == {abandoned: "EXPIRED", failed: "FAILED"}


async def test_the_poller_also_calls_an_unpaid_order_expired(client: httpx.AsyncClient, stack: Stack) -> None:
    email, headers = await register(client)
    order = (await checkout(client, headers))["merchant_order_id"]
    async with httpx.AsyncClient(timeout=30) as sim:
        # Expire it in the simulator without a webhook: only the poller's status check can find out.
        r = await sim.post(
            f"{stack.env['PHONEPE_BASE_URL']}/simulator/orders/{order}/expire", params={"webhook": "missing"}
        )
        assert r.status_code == 200
    stack.spawn("poller-expiry", ["-m", "payments.reconcile"])
    try:
        assert (await wait_state(client, order, "EXPIRED", timeout_s=30))["state"] == "EXPIRED"
    finally:
        stack.stop("poller-expiry")
    assert "Payment failed" not in await subjects(client, email)
