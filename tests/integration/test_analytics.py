"""Admin analytics against a hand-computed fixture, in tables of their own (TABLE_PREFIX=analytics-)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from redis.asyncio import Redis

from core import stats
from core.dynamo import create_dynamodb_client
from core.settings import load_settings
from dev.servers import free_port, start_valkey, stop
from marketplace.history import History
from payments.checkout import Transaction, TransactionStore
from tests.conftest import ROOT, Stack
from tests.helpers import register, start_gateway

DAY = 86400


def payment(
    order: str, user: str, amount: int, completed: float, pro_until: float, refunded: bool = False
) -> Transaction:
    return Transaction(
        merchant_order_id=order,
        user_id=user,
        email=f"{user}@example.com",
        solution_id="aws-solution-finder",
        amount_paise=amount,
        state="COMPLETED",
        created_at=str(int(completed * 1000)),
        expire_at=int(completed) + 600,
        completed_at=int(completed),
        pro_until=int(pro_until),
        refund_state="COMPLETED" if refunded else None,
        receipt_queued=True,  # fixtures: no poller in this session should mail their receipts
    )


async def test_analytics_agree_with_a_hand_computed_fixture(stack: Stack) -> None:
    port = free_port()
    valkey = start_valkey(port, stack.root / f"valkey-analytics-{port}", appendonly=False)
    env = {**stack.env, "TABLE_PREFIX": "analytics-", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    subprocess.run([sys.executable, "-m", "api.bootstrap"], env=env, cwd=ROOT, check=True, capture_output=True)
    settings = load_settings(env)
    now = time.time()
    redis = Redis.from_url(env["REDIS_URL"])
    try:
        async with create_dynamodb_client(settings) as dynamodb:
            store = TransactionStore(dynamodb, settings)
            for txn in (
                payment("A", "a", 49900, now - 2 * DAY, now + 28 * DAY),
                payment("B", "b", 49900, now - 40 * DAY, now - 10 * DAY),  # outside the window, expired
                payment("C", "c", 19900, now - 1 * DAY, now + 29 * DAY),
                payment("D", "d", 49900, now - 3 * DAY, now + 27 * DAY, refunded=True),  # refunded: not revenue
                payment("E", "a", 49900, now - 1 * DAY, now + 58 * DAY),  # a's renewal
            ):
                await store.create(txn)
            history = History(dynamodb, settings)
            for user, ago in (("a", 5), ("c", 4), ("x", 1)):
                await history.record(
                    user,
                    "signup",
                    source="account",
                    solution_id="aws-solution-finder",
                    actor="user",
                    at_ms=int((now - ago * DAY) * 1000),
                )
            for user in ("a", "c"):
                await history.record(
                    user,
                    "upgrade",
                    source=f"order-{user}",
                    solution_id="aws-solution-finder",
                    actor="payment",
                    at_ms=int((now - DAY) * 1000),
                )
        today = stats.day(now)
        await redis.set(stats.searches_key(today, "anonymous"), 5)
        await redis.set(stats.searches_key(today, "registered"), 2)
        await redis.pfadd(stats.anonymous_visitors_key(today), "v1", "v2", "v3", "v4")
        for query in ("Best pizza", "best  pizza", "weather in Pune"):
            await redis.xadd(stats.NO_MATCH_STREAM, {"query": query, "tier": "anonymous"})

        base = start_gateway(stack, "gateway-analytics", env)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            admin_email, _ = await register(http)
            forbidden = await http.get("/api/admin/analytics")
            assert forbidden.status_code == 403
            subprocess.run(
                [sys.executable, "-m", "marketplace.admin", admin_email],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            body = (await http.get("/api/admin/analytics", params={"days": 30})).json()
            csv_text = (await http.get("/api/admin/analytics/export/revenue")).text
            bad = await http.get("/api/admin/analytics/export/secrets")
        assert body["revenue_by_day"] == {
            stats.day(now - 40 * DAY): 49900,
            stats.day(now - 2 * DAY): 49900,
            stats.day(now - DAY): 69800,
        }
        month = {}
        for d, v in body["revenue_by_day"].items():
            month[d[:7]] = month.get(d[:7], 0) + v
        assert body["revenue_by_month"] == month
        assert body["active_pro"] == 2
        assert body["mrr_paise"] == 49900 + 19900
        assert body["arpu_paise"] == (49900 + 19900 + 49900) // 2
        # the admin's own sign-up (through the API) is the fourth
        assert body["funnel"] == {"anonymous_visitors": 4, "signups": 4, "pro_buyers": 2}
        assert body["searches_by_day"] == {today: {"anonymous": 5, "registered": 2, "pro": 0}}
        assert body["no_match"] == [{"query": "best pizza", "count": 2}, {"query": "weather in pune", "count": 1}]
        assert csv_text.splitlines()[0] == "day,revenue_paise" and f"{stats.day(now - DAY)},69800" in csv_text
        assert bad.status_code == 404
    finally:
        await redis.aclose()
        stack.stop("gateway-analytics")
        stop(valkey)


async def test_expiry_warnings_go_out_once_and_renewal_is_recorded(client: httpx.AsyncClient, stack: Stack) -> None:
    from marketplace.mail import Attachment, Outbox
    from payments.reconcile import Reconciler, create_phonepe

    sent: list[tuple[str, str]] = []

    class Recorder:
        async def send(self, to: str, subject: str, text: str, attachments: list[Attachment] | None = None) -> None:
            sent.append((to, subject))

    now = time.time()
    user = f"life-{int(now * 1000)}"
    async with create_dynamodb_client(stack.settings) as dynamodb, httpx.AsyncClient() as http:
        await TransactionStore(dynamodb, stack.settings).create(
            payment(f"L-{user}", user, 49900, now - 25 * DAY, now + 5 * DAY)
        )
        redis = Redis.from_url(stack.env["REDIS_URL"])
        reconciler = Reconciler(
            stack.settings,
            dynamodb,
            redis,
            create_phonepe(stack.settings, http),
            Outbox(dynamodb, stack.settings, Recorder()),
        )
        await reconciler.lifecycle_once(now)
        await reconciler.lifecycle_once(now)  # again: nothing more
        mine = [s for to, s in sent if to == f"{user}@example.com"]
        assert mine == ["Your Pro pass ends in 7 days"]
        await reconciler.lifecycle_once(now + 3 * DAY)  # two days left
        await reconciler.lifecycle_once(now + 6 * DAY)  # ended a day ago
        await reconciler.lifecycle_once(now + 6 * DAY)
        mine = [s for to, s in sent if to == f"{user}@example.com"]
        assert mine == ["Your Pro pass ends in 7 days", "Your Pro pass ends in 3 days", "Your Pro pass has ended"]
        events = [e.event for e in await History(dynamodb, stack.settings).for_user(user)]
        assert events == ["expiry"]
        await redis.aclose()
    _ = client
