"""Refunds against the real gateway (two worker processes), the local DynamoDB and the PhonePe simulator:
a refund removes exactly its own Pro pass, once, however many admins press the button at the same time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from core.dynamo import create_dynamodb_client
from marketplace.entitlements import ProLedger, ProPasses
from marketplace.history import History, HistoryEvent
from tests.conftest import SOLUTION, Stack, checkout, settle, simulator_get, tier, wait_state, wait_until
from tests.helpers import make_admin, register, start_gateway, token_for

DAY = 86400


@pytest.fixture(scope="module")
def two_workers(stack: Stack) -> Iterator[str]:
    """A gateway of its own with two worker processes, so racing requests really run in different processes."""
    base = start_gateway(stack, "gateway-refunds", stack.env, workers=2)
    yield base
    stack.stop("gateway-refunds")


@pytest.fixture
async def admin(stack: Stack, clean: None, two_workers: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with httpx.AsyncClient(base_url=two_workers, timeout=60) as http:
        email, headers = await register(http)
        make_admin(stack, email)
        yield http, headers


async def buy(client: httpx.AsyncClient, headers: dict[str, str], stack: Stack) -> str:
    order = (await checkout(client, headers))["merchant_order_id"]
    await settle(stack, order)
    assert (await wait_state(client, order, "COMPLETED"))["state"] == "COMPLETED"
    return str(order)


async def ledger(stack: Stack, user_id: str) -> ProLedger:
    async with create_dynamodb_client(stack.settings) as dynamodb:
        return await ProPasses(dynamodb, stack.settings).ledger(user_id, SOLUTION)


async def refund_events(stack: Stack, user_id: str) -> list[HistoryEvent]:
    async with create_dynamodb_client(stack.settings) as dynamodb:
        return [e for e in await History(dynamodb, stack.settings).for_user(user_id) if e.event == "refund"]


async def refund_calls(stack: Stack, order: str) -> list[dict]:
    return [c for c in await simulator_get(stack, "/simulator/refunds") if c["originalMerchantOrderId"] == order]


async def refund_state(client: httpx.AsyncClient, order: str, want: str) -> dict:
    async def probe() -> dict:
        return dict((await client.get(f"/api/payments/{order}")).json())

    return await wait_until(probe, lambda body: body["refund_state"] == want)


async def test_ten_concurrent_refunds_remove_exactly_one_pass_once(
    client: httpx.AsyncClient, stack: Stack, admin: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    first = await buy(client, headers, stack)
    second = await buy(client, headers, stack)
    user_id = (await client.get("/api/me")).json()["user_id"]
    before = await ledger(stack, user_id)
    assert abs(before.pro_until - (time.time() + 60 * DAY)) < 120

    http, admin_headers = admin
    answers = await asyncio.gather(
        *[http.post(f"/api/admin/payments/{first}/refund", headers=admin_headers) for _ in range(10)]
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 9, [a.text for a in answers]
    assert {a.json()["reason"] for a in answers if a.status_code == 409} == {"refund_not_allowed"}
    assert (await refund_state(client, first, "COMPLETED"))["refund_state"] == "COMPLETED"
    assert len(await refund_calls(stack, first)) == 1

    after = await ledger(stack, user_id)
    assert abs(after.pro_until - (before.pro_until - 30 * DAY)) < 120  # the other pass keeps its 30 days
    kept = after.find(second)
    assert kept is not None and kept.state == "active" and kept.until == after.pro_until
    assert await tier(client) == "pro"
    events = await refund_events(stack, user_id)
    assert [(e.order_id, e.days, e.pro_until) for e in events] == [(first, 30, after.pro_until)]

    again = await http.post(f"/api/admin/payments/{first}/refund", headers=admin_headers)
    assert again.status_code == 409 and len(await refund_calls(stack, first)) == 1

    last = await http.post(f"/api/admin/payments/{second}/refund", headers=admin_headers)
    assert last.status_code == 200, last.text
    await refund_state(client, second, "COMPLETED")
    assert (await ledger(stack, user_id)).pro_until == 0
    assert await tier(client) == "registered"
    # Both refunds are in the history. Its events carry whole-second times (at_ms = seconds × 1000), so two
    # refunds in the same second sort by their order ids, which are random: the order is not the point here.
    assert sorted(e.order_id for e in await refund_events(stack, user_id)) == sorted([first, second])


async def test_a_failed_refund_may_be_requested_again(
    client: httpx.AsyncClient, stack: Stack, admin: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    order = await buy(client, headers, stack)
    user_id = (await client.get("/api/me")).json()["user_id"]
    async with httpx.AsyncClient(timeout=30) as sim:
        r = await sim.post(f"{stack.env['PHONEPE_BASE_URL']}/simulator/orders/{order}/refund-outcome?state=FAILED")
        assert r.status_code == 200
    http, admin_headers = admin
    assert (await http.post(f"/api/admin/payments/{order}/refund", headers=admin_headers)).status_code == 200
    assert (await refund_state(client, order, "FAILED"))["refund_state"] == "FAILED"
    assert await tier(client) == "pro" and await refund_events(stack, user_id) == []

    retried = await asyncio.gather(
        *[http.post(f"/api/admin/payments/{order}/refund", headers=admin_headers) for _ in range(5)]
    )
    assert sorted(r.status_code for r in retried) == [200, 409, 409, 409, 409]
    assert (await refund_state(client, order, "COMPLETED"))["refund_state"] == "COMPLETED"
    calls = await refund_calls(stack, order)
    assert len(calls) == 2 and len({c["merchantRefundId"] for c in calls}) == 2
    assert await tier(client) == "registered"
    assert [e.order_id for e in await refund_events(stack, user_id)] == [order]


async def test_refund_of_an_unpaid_or_unknown_order_is_404(
    client: httpx.AsyncClient, stack: Stack, admin: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    _, headers = await register(client)
    pending = (await checkout(client, headers))["merchant_order_id"]
    http, admin_headers = admin
    for order in (pending, "SF-no-such-order", "x" * 80, "bad%20id"):
        r = await http.post(f"/api/admin/payments/{order}/refund", headers=admin_headers)
        assert r.status_code == 404, (order, r.text)
    assert await refund_calls(stack, pending) == []
