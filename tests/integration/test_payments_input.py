"""Hostile query parameters on the payments and analytics API get a clear 4xx with a reason, never a 500."""

from __future__ import annotations

import httpx

from tests.conftest import Stack
from tests.helpers import make_admin, register


async def test_analytics_days_out_of_bounds_is_400(client: httpx.AsyncClient, stack: Stack) -> None:
    email, _ = await register(client)
    make_admin(stack, email)
    for path in ("/api/admin/analytics", "/api/admin/analytics/export/revenue"):
        for days in ("0", "-1", "367", "abc", "1e9", "99999999999999999999999", ""):
            r = await client.get(path, params={"days": days})
            assert r.status_code == 400, (path, days, r.status_code, r.text)
            assert r.json()["reason"] == "bad_request" and "days" in r.text, r.text
        ok = await client.get(path, params={"days": "1"})
        assert ok.status_code == 200, ok.text
    assert (await client.get("/api/admin/analytics/export/x%00y")).status_code == 400  # control characters


async def test_return_page_and_payment_ids_are_bounded(client: httpx.AsyncClient) -> None:
    await register(client)
    for order in ("x" * 200, "../../etc/passwd", "a b", "<script>"):
        r = await client.get("/payments/return", params={"merchant_order_id": order})
        assert r.status_code == 400, (order, r.status_code)
        assert (await client.get(f"/api/payments/{order}")).status_code in (404, 400)
