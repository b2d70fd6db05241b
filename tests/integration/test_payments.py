"""Pro through PhonePe, driven through the simulator and our real client: checkout, webhooks (forged,
duplicate, missing, wrong amount), the poller, crash repair, refunds, renewal and expiry."""

from __future__ import annotations

import asyncio
import time

import httpx

from core.dynamo import create_dynamodb_client
from payments.phonepe import webhook_authorization
from tests.conftest import Stack, checkout, settle, simulator_get, tier, wait_state, wait_until, webhooks_delivered
from tests.helpers import make_admin, register, token_for

DAY = 86400


async def test_happy_path_pay_in_the_simulator_and_become_pro(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    order = await checkout(client, headers)
    assert order["amount_paise"] == 49900 and "/simulator/pay/" in order["redirect_url"]
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(order["redirect_url"])
        assert page.status_code == 200 and "Pay" in page.text and "499.00" in page.text
    assert (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()["state"] == "PENDING"
    await settle(stack, order["merchant_order_id"])
    paid = await wait_state(client, order["merchant_order_id"], "COMPLETED")
    assert paid["state"] == "COMPLETED"
    assert abs(paid["pro_until"] - (time.time() + 30 * DAY)) < 60
    assert await tier(client) == "pro"
    validated = await client.post(
        "/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"}
    )
    assert validated.json()["access_tier"] == "pro" and validated.json()["quota_remaining"] == -1
    listed = (await client.get("/api/payments")).json()
    assert [p["merchant_order_id"] for p in listed] == [order["merchant_order_id"]]
    assert "token" not in str(listed)
    returned = await client.get("/payments/return", params={"merchant_order_id": order["merchant_order_id"]})
    assert returned.status_code == 200 and 'data-state="COMPLETED"' in returned.text


async def test_forged_webhook_header_gets_401(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/payments/phonepe/webhook",
        json={"event": "checkout.order.completed", "payload": {"merchantOrderId": "x"}},
        headers={"Authorization": "0" * 64},
    )
    assert r.status_code == 401 and r.json()["reason"] == "invalid_signature"


async def test_valid_header_on_a_forged_body_upgrades_nothing(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    await settle(stack, order["merchant_order_id"], "fail", webhook="missing")
    forged = {
        "event": "checkout.order.completed",
        "payload": {"merchantOrderId": order["merchant_order_id"], "state": "COMPLETED", "amount": 49900},
    }
    auth = webhook_authorization(stack.settings.phonepe_webhook_username, stack.settings.phonepe_webhook_password)
    r = await client.post("/api/payments/phonepe/webhook", json=forged, headers={"Authorization": auth})
    assert r.status_code == 200
    assert (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()["state"] == "FAILED"
    assert await tier(client) == "registered"
    junk = await client.post("/api/payments/phonepe/webhook", content=b"{not json", headers={"Authorization": auth})
    assert junk.status_code == 200  # parsed tolerantly, never a 500


async def test_duplicate_and_out_of_order_webhooks_upgrade_once(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, order["merchant_order_id"], webhook="duplicate")
    paid = await wait_state(client, order["merchant_order_id"], "COMPLETED")
    await webhooks_delivered(stack, before, 3)  # every copy was answered
    again = (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()
    assert again["pro_until"] == paid["pro_until"]  # 30 days, not 90
    assert len((await client.get("/api/payments")).json()) == 1

    second = await checkout(client, headers)
    before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, second["merchant_order_id"], webhook="out_of_order")
    renewed = await wait_state(client, second["merchant_order_id"], "COMPLETED")
    await webhooks_delivered(stack, before, 2)  # the stale one, sent late, was answered too
    assert (await client.get(f"/api/payments/{second['merchant_order_id']}")).json()["state"] == "COMPLETED"
    # Paying again while pro extends from the current expiry, not from today.
    assert renewed["pro_until"] == paid["pro_until"] + 30 * DAY


async def test_amount_mismatch_upgrades_nothing_and_is_flagged(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    await settle(stack, order["merchant_order_id"], amount_delta="-100")
    result = await wait_state(client, order["merchant_order_id"], "FAILED")
    assert result["state"] == "FAILED" and result["flag"] == "amount_mismatch"
    assert await tier(client) == "registered"


async def test_missed_webhook_is_settled_by_the_poller(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    stack.spawn("poller", ["-m", "payments.reconcile"])
    try:
        await settle(stack, order["merchant_order_id"], webhook="missing")
        result = await wait_state(client, order["merchant_order_id"], "COMPLETED", timeout_s=20)
    finally:
        stack.stop("poller")
    assert result["state"] == "COMPLETED" and await tier(client) == "pro"


async def test_a_crash_before_our_write_is_repaired_on_restart(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    # PhonePe took the money, but we never heard: no webhook, no return visit, no poller running.
    before = len(await simulator_get(stack, "/simulator/webhooks"))
    await settle(stack, order["merchant_order_id"], webhook="missing")
    # settle() returns once PhonePe's side says COMPLETED; no webhook went out, so we still say PENDING.
    assert len(await simulator_get(stack, "/simulator/webhooks")) == before
    assert (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()["state"] == "PENDING"
    stack.spawn("poller", ["-m", "payments.reconcile"])  # the restart
    try:
        result = await wait_state(client, order["merchant_order_id"], "COMPLETED", timeout_s=20)
    finally:
        stack.stop("poller")
    assert result["state"] == "COMPLETED"


async def test_refund_returns_the_user_to_registered(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await checkout(client, headers)
    await settle(stack, order["merchant_order_id"])
    await wait_state(client, order["merchant_order_id"], "COMPLETED")
    assert await tier(client) == "pro"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as admin:
        admin_email, admin_headers = await register(admin)
        not_yet = await admin.post(f"/api/admin/payments/{order['merchant_order_id']}/refund", headers=admin_headers)
        assert not_yet.status_code == 403
        make_admin(stack, admin_email)
        refunded = await admin.post(f"/api/admin/payments/{order['merchant_order_id']}/refund", headers=admin_headers)
        assert refunded.status_code == 200, refunded.text
    deadline = time.monotonic() + 10
    while (await client.get(f"/api/payments/{order['merchant_order_id']}")).json()["refund_state"] != "COMPLETED":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert await tier(client) == "registered"


async def test_pro_expires_back_to_registered(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    order = await checkout(client, headers)
    await settle(stack, order["merchant_order_id"])
    await wait_state(client, order["merchant_order_id"], "COMPLETED")
    user_id = (await client.get("/api/me")).json()["user_id"]
    async with create_dynamodb_client(stack.settings) as dynamodb:
        await dynamodb.update_item(
            TableName=stack.settings.table("user-solution-entitlements"),
            Key={"pk": {"S": f"user#{user_id}"}, "sk": {"S": "solution#aws-solution-finder"}},
            UpdateExpression="SET proUntil = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
        )
    # The gateway's cached copy may still say pro for a moment; its expiry has passed, so the tier follows.
    r = await wait_until(
        lambda: client.post(
            "/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"}
        ),
        lambda r: r.json()["access_tier"] == "registered",
    )
    assert r.json()["access_tier"] == "registered" and r.json()["quota"]["daily_limit"] == 10


async def test_payment_bad_input_and_privacy(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client, verify=False)
    unverified = await client.post(
        "/api/payments/checkout", json={"plan": "pro", "solution_id": "aws-solution-finder"}, headers=headers
    )
    assert unverified.status_code == 403 and unverified.json()["reason"] == "email_unverified"
    _, headers = await register(client)
    for body in (
        {"plan": "gold", "solution_id": "aws-solution-finder"},
        {"plan": "pro", "solution_id": "aws-solution-finder", "amount_paise": 100},
        {"plan": "pro"},
        {"plan": "pro", "solution_id": "../etc"},
    ):
        r = await client.post("/api/payments/checkout", json=body, headers=headers)
        assert r.status_code == 400, (body, r.text)
    unknown = await client.post(
        "/api/payments/checkout", json={"plan": "pro", "solution_id": "no-such-thing"}, headers=headers
    )
    assert unknown.status_code == 404
    order = await checkout(client, headers)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as other:
        await register(other)
        assert (await other.get(f"/api/payments/{order['merchant_order_id']}")).status_code == 404
        async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
            assert (await anonymous.get(f"/api/payments/{order['merchant_order_id']}")).status_code == 401
