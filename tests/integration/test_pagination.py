"""Every DynamoDB query pages: more than 1 MB of completed orders are all read (a bare Query stops at the
first megabyte without an error), and with two items a page every store still sees everything."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from core.dynamo import TableSpec, create_dynamodb_client, ensure_tables, query_all, to_item
from core.settings import Settings, load_settings
from marketplace.history import History
from marketplace.mail import Outbox
from payments.analytics import compute
from payments.checkout import Transaction, TransactionStore
from tests.conftest import ROOT, Stack
from tests.helpers import register, start_gateway

DAY = 86400


@pytest.fixture(scope="module")
def paging_env(stack: Stack) -> Iterator[dict[str, str]]:
    """Tables of their own, so a megabyte of orders slows nobody else's poller or analytics."""
    env = {**stack.env, "TABLE_PREFIX": f"paging-{uuid.uuid4().hex[:6]}-"}
    subprocess.run([sys.executable, "-m", "api.bootstrap"], env=env, cwd=ROOT, check=True, capture_output=True)
    yield env


def order(n: int, user: str, now: float, padding: int = 0, **fields: Any) -> Transaction:
    return Transaction(
        merchant_order_id=f"SF-page-{user}-{n:04d}",
        user_id=user,
        email=f"{user}@example.com",
        solution_id="aws-solution-finder",
        amount_paise=49900,
        state="COMPLETED",
        created_at=str(int((now - 3600 + n) * 1000)),
        expire_at=int(now),
        completed_at=int(now - 3600 + n),
        pro_until=int(now + 20 * DAY),
        billing_address="x" * padding,
        invoice_no=f"INV/test/{n:04d}",
        receipt_queued=True,
        **fields,
    )


async def put_all(dynamodb: Any, settings: Settings, txns: list[Transaction]) -> None:
    table = settings.table("payment-transactions")
    for start in range(0, len(txns), 25):
        batch = [{"PutRequest": {"Item": to_item(msgspec.to_builtins(t))}} for t in txns[start : start + 25]]
        response = await dynamodb.batch_write_item(RequestItems={table: batch})
        assert not response.get("UnprocessedItems")


async def test_more_than_a_megabyte_of_completed_orders_is_read_whole(
    paging_env: dict[str, str], redis: Redis, clean: None
) -> None:
    settings = load_settings(paging_env)
    now = time.time()
    txns = [order(n, f"big{n % 40}", now, padding=5000) for n in range(240)]  # ~1.2 MB
    async with create_dynamodb_client(settings) as dynamodb:
        await put_all(dynamodb, settings, txns)
        first_page = await dynamodb.query(
            TableName=settings.table("payment-transactions"),
            IndexName="state-index",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": {"S": "COMPLETED"}},
        )
        assert "LastEvaluatedKey" in first_page and len(first_page["Items"]) < 240  # what a bare query saw
        completed = await TransactionStore(dynamodb, settings).by_state("COMPLETED")
        analytics = await compute(dynamodb, redis, settings, days=30, now=now)
    assert sorted(t.merchant_order_id for t in completed) == sorted(t.merchant_order_id for t in txns)
    assert sum(analytics.revenue_by_day.values()) == 240 * 49900
    assert analytics.active_pro == 40


async def test_two_items_a_page_every_store_sees_everything(
    stack: Stack, paging_env: dict[str, str], clean: None
) -> None:
    env = {**paging_env, "DYNAMODB_PAGE_SIZE": "2"}
    settings = load_settings(env)
    base = start_gateway(stack, "gateway-paging", env)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await register(http)
            user_id = (await http.get("/api/me")).json()["user_id"]
            now = time.time()
            mine = [order(n, user_id, now, refund_state="REQUESTED" if n % 2 else None) for n in range(7)]
            async with create_dynamodb_client(settings) as dynamodb:
                await put_all(dynamodb, settings, mine)
                listed = (await http.get("/api/payments")).json()
                store = TransactionStore(dynamodb, settings)
                requested = await store.by_refund_state("REQUESTED")
                history = History(dynamodb, settings)
                for n in range(5):
                    await history.record(user_id, "renewal", source=f"o{n}", solution_id="s", actor="system")
                events = await history.for_user(user_id)
                renewals = await history.events("renewal")
                outbox = Outbox(dynamodb, settings, mailer=None)  # type: ignore[arg-type]
                for n in range(5):
                    await outbox.enqueue(f"paging:{user_id}:{n}", "a@b.co", "s", "t")
                due = [k for k in await outbox.due() if k.startswith(f"paging:{user_id}:")]
    finally:
        stack.stop("gateway-paging")
    assert [p["merchant_order_id"] for p in listed] == [t.merchant_order_id for t in reversed(mine)]
    assert {t.merchant_order_id for t in requested} >= {t.merchant_order_id for t in mine if t.refund_state}
    assert len([e for e in events if e.event == "renewal"]) == 5 and len(renewals) >= 5
    assert len(due) == 5


async def test_an_index_a_newer_version_declares_is_added_to_an_existing_table(stack: Stack) -> None:
    name = f"indexes-{uuid.uuid4().hex[:6]}"
    old = TableSpec(name, "message_key")
    new = TableSpec(name, "message_key", indexes=(("due-index", "queue", "due_at"),))
    async with create_dynamodb_client(stack.settings) as dynamodb:
        assert await ensure_tables(dynamodb, [old]) == [name]
        assert await ensure_tables(dynamodb, [new]) == [f"{name}:due-index"]
        assert await ensure_tables(dynamodb, [new]) == []
        await dynamodb.put_item(TableName=name, Item=to_item({"message_key": "k", "queue": "q", "due_at": "1"}))
        found = await query_all(
            dynamodb,
            TableName=name,
            IndexName="due-index",
            KeyConditionExpression="#q = :q",
            ExpressionAttributeNames={"#q": "queue"},
            ExpressionAttributeValues={":q": {"S": "q"}},
        )
    assert found == [{"message_key": "k", "queue": "q", "due_at": "1"}]
