"""Metrics, request ids across gateway and worker, and logs that never hold secrets or client addresses."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Stack, checkout, read_events, settle, wait_state
from tests.helpers import register, token_for

CLIENT_IP = "203.0.113.77"  # documentation range; sent as X-Forwarded-For, which uvicorn trusts from loopback


async def test_metrics_cover_requests_quota_search_workers_and_payments(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as visitor:  # anonymous
        created = (await visitor.post("/api/searches", json={"query": "resize images on the fly"})).json()
        await read_events(visitor, created["events_url"])
    order = await checkout(client, headers)
    await settle(stack, order["merchant_order_id"])
    await wait_state(client, order["merchant_order_id"], "COMPLETED")
    await asyncio.sleep(0.3)
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for needle in (
        'sf_http_requests_total{method="POST",route="/api/searches",status="202"}',
        "sf_http_request_duration_seconds_bucket",
        'sf_quota_decisions_total{outcome="admitted",tier="anonymous"}',
        "sf_search_time_to_first_token_seconds_count",  # written by the worker process
        'sf_search_tokens_streamed_total{provider="extractive"}',
        'sf_search_job_duration_seconds_count{outcome="done"}',
        "sf_search_queue_wait_seconds_count",
        "sf_search_queue_depth 0",
        "sf_search_workers_live 1",
        "sf_search_index_loaded{version=",
        "sf_quota_flusher_lag_seconds",
        'sf_payments_total{state="COMPLETED"}',
    ):
        assert needle in text, needle


async def test_request_id_travels_from_gateway_to_worker(client: httpx.AsyncClient, stack: Stack) -> None:
    response = await client.post(
        "/api/searches", json={"query": "video on demand"}, headers={"X-Request-ID": "trace-abc-123"}
    )
    assert response.headers["x-request-id"] == "trace-abc-123"
    await read_events(client, response.json()["events_url"])
    await asyncio.sleep(0.3)
    worker_lines = [line for line in stack.log("worker-1").splitlines() if "trace-abc-123" in line]
    assert any(
        '"request_id": "trace-abc-123"' in line and response.json()["search_id"] in line for line in worker_lines
    )
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32


async def test_no_password_token_session_id_or_client_address_in_any_log(stack: Stack, clean: None) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"X-Forwarded-For": CLIENT_IP}) as http:
        email, headers = await register(http)
        session_id = http.cookies["session"]
        token = await token_for(http, headers)
        bad = await http.post(
            "/api/auth/login", json={"email": email, "password": "a wrong password!"}, headers=headers
        )
        assert bad.status_code == 401
        await http.post("/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"})
        await http.post(
            "/api/validate-solution-token", json={"token": token[:-1] + "x", "solution_id": "aws-solution-finder"}
        )
        created = (
            await http.post("/api/searches", json={"query": "logs"}, headers={"Authorization": f"Bearer {token}"})
        ).json()
        await read_events(http, created["events_url"])
    await asyncio.sleep(0.3)
    logs = "\n".join(stack.log(name) for name in ("gateway", "worker-1", "simulator"))
    for secret in ("correct horse 1", "a wrong password!", token, token[:-1] + "x", session_id, CLIENT_IP):
        assert secret not in logs, secret
