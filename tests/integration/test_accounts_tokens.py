"""Accounts, CSRF, verification through the dev mailbox, solution tokens and the validate endpoint."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Stack, read_events
from tests.helpers import csrf, register, token_for, wait_until  # noqa: F401  (others import them from here)


async def test_register_login_logout_and_me(client: httpx.AsyncClient) -> None:
    email, headers = await register(client)
    me = (await client.get("/api/me")).json()
    assert me["email"] == email
    assert [(e["solution_id"], e["access_tier"]) for e in me["entitlements"]] == [("aws-solution-finder", "registered")]
    taken = await client.post(
        "/api/auth/register", json={"email": email.upper(), "password": "0123456789x"}, headers=headers
    )
    assert taken.status_code == 409
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/me")).status_code == 401
    wrong = await client.post("/api/auth/login", json={"email": email, "password": "wrong password"}, headers=headers)
    assert wrong.status_code == 401 and wrong.json()["reason"] == "invalid_credentials"
    ok = await client.post("/api/auth/login", json={"email": email, "password": "correct horse 1"}, headers=headers)
    assert ok.status_code == 200
    assert "session" in ok.cookies and "httponly" in ok.headers["set-cookie"].lower()


async def test_login_is_throttled_after_repeated_failures(client: httpx.AsyncClient) -> None:
    email, headers = await register(client)
    statuses = []
    for _ in range(7):
        r = await client.post("/api/auth/login", json={"email": email, "password": "not the password"}, headers=headers)
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    right = await client.post("/api/auth/login", json={"email": email, "password": "correct horse 1"}, headers=headers)
    assert right.status_code == 429 and "Retry-After" in right.headers


async def test_cross_site_post_without_csrf_header_is_refused(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    refused = await client.post("/api/generate-solution-token", json={"solution_id": "aws-solution-finder"})
    assert refused.status_code == 403 and refused.json()["reason"] == "csrf"
    forged = await client.post(
        "/api/generate-solution-token", json={"solution_id": "aws-solution-finder"}, headers={"X-CSRFToken": "guess"}
    )
    assert forged.status_code == 403


async def test_unverified_account_cannot_get_a_token(client: httpx.AsyncClient) -> None:
    _, headers = await register(client, verify=False)
    response = await client.post(
        "/api/generate-solution-token", json={"solution_id": "aws-solution-finder"}, headers=headers
    )
    assert response.status_code == 403 and response.json()["reason"] == "email_unverified"


async def test_validate_counts_ten_a_day_then_429(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    body = {"token": token, "solution_id": "aws-solution-finder"}
    check = await client.post("/api/validate-solution-token", json={**body, "check_only": True})
    assert check.status_code == 200 and check.json()["quota"]["daily_used"] == 0
    for n in range(1, 11):
        r = await client.post("/api/validate-solution-token", json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["allowed"] is True and data["access_tier"] == "registered"
        assert data["quota"] == {"daily_limit": 10, "daily_used": n, "unlimited": False}
        assert data["quota_remaining"] == 10 - n
        assert r.headers["RateLimit"].startswith('"registered";r=')
    refused = await client.post("/api/validate-solution-token", json=body)
    assert refused.status_code == 429
    seed_body = {
        "error": "Quota exceeded",
        "reason": "daily_limit_exceeded",
        "limit": 10,
        "used": 10,
        "access_tier": "registered",
    }
    assert {k: refused.json()[k] for k in seed_body} == seed_body
    assert int(refused.headers["Retry-After"]) > 0


async def test_idempotency_key_counts_a_retry_once(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    body = {"token": token, "solution_id": "aws-solution-finder"}
    first = await client.post("/api/validate-solution-token", json=body, headers={"Idempotency-Key": "req-1"})
    again = await client.post("/api/validate-solution-token", json=body, headers={"Idempotency-Key": "req-1"})
    assert first.json()["quota"]["daily_used"] == again.json()["quota"]["daily_used"] == 1
    other = await client.post("/api/validate-solution-token", json=body, headers={"Idempotency-Key": "req-2"})
    assert other.json()["quota"]["daily_used"] == 2


async def test_bad_tokens_and_bad_input(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    unknown = "sf_" + token[3:-6][::-1]
    cases = [
        ({"token": "sf_nope", "solution_id": "aws-solution-finder"}, 401, "invalid_token"),
        ({"token": unknown, "solution_id": "aws-solution-finder"}, 401, "invalid_token"),
        ({"token": token, "solution_id": "some-other-solution"}, 403, "not_entitled"),
        ({"token": token}, 400, "bad_request"),
        ({"token": 5, "solution_id": "aws-solution-finder"}, 400, "bad_request"),
        ({"token": token, "solution_id": "aws-solution-finder", "admin": True}, 400, "bad_request"),
    ]
    for body, status, reason in cases:
        r = await client.post("/api/validate-solution-token", json=body)
        assert (r.status_code, r.json()["reason"]) == (status, reason), (body, r.text)
    broken = await client.post(
        "/api/validate-solution-token", content=b'{"token": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    huge = await client.post(
        "/api/validate-solution-token", json={"token": "x" * 1_000_000, "solution_id": "aws-solution-finder"}
    )
    assert 400 <= huge.status_code < 500 and huge.json()["reason"]


async def test_revoked_token_stops_working_within_a_second(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    body = {"token": token, "solution_id": "aws-solution-finder"}
    assert (await client.post("/api/validate-solution-token", json=body)).status_code == 200
    listed = (await client.get("/api/tokens")).json()
    assert listed[0]["token_prefix"] == token[:9] and token not in str(listed)
    revoked = await client.post(f"/api/tokens/{listed[0]['token_id']}/revoke", headers=headers)
    assert revoked.status_code == 200
    after = await wait_until(
        lambda: client.post("/api/validate-solution-token", json=body), lambda r: r.status_code == 401, timeout_s=1.0
    )
    assert after.status_code == 401 and after.json()["reason"] == "invalid_token"


async def test_registered_search_with_bearer_token(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    response = await client.post(
        "/api/searches",
        json={"query": "stop idle EC2 instances at night"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["quota"] == {"access_tier": "registered", "limit": 10, "used": 1, "remaining": 9}
    events = await read_events(client, response.json()["events_url"])
    assert events[-1][1] == "done"


@pytest.mark.slow
async def test_verification_code_tries_are_limited(client: httpx.AsyncClient, stack: Stack) -> None:
    email, _ = await register(client, verify=False)
    for _ in range(5):
        r = await client.post("/api/auth/verify", json={"email": email, "code": "000000"})
        assert r.status_code == 400
    mail = (await client.get("/dev/mailbox/messages", params={"to": email})).json()
    code = mail[0]["text"].split("code is ")[1][:6]
    blocked = await client.post("/api/auth/verify", json={"email": email, "code": code})
    assert blocked.status_code == 400 and blocked.json()["reason"] == "too_many_tries"
    resend = await client.post("/api/auth/resend-code", json={"email": email})
    # Within a minute of the first code: the same 202 as for any address, and no second mail.
    assert resend.status_code == 202
    assert len((await client.get("/dev/mailbox/messages", params={"to": email})).json()) == len(mail)


async def test_dev_mailbox_page_shows_messages_escaped(client: httpx.AsyncClient) -> None:
    email, _ = await register(client, verify=False)
    page = await client.get("/dev/mailbox")
    assert page.status_code == 200 and email in page.text and "verification code" in page.text


async def test_at_most_two_active_tokens_per_solution(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    tokens = [await token_for(client, headers) for _ in range(3)]
    listed = (await client.get("/api/tokens")).json()
    assert sorted(t["status"] for t in listed) == ["active", "active", "revoked"]
    body = {"solution_id": "aws-solution-finder"}
    oldest = await client.post("/api/validate-solution-token", json={**body, "token": tokens[0]})
    newest = await client.post("/api/validate-solution-token", json={**body, "token": tokens[2]})
    assert (oldest.status_code, newest.status_code) == (401, 200)


async def test_rotate_replaces_a_token_and_last_use_is_recorded(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    assert (
        await client.post("/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"})
    ).status_code == 200
    listed = (await client.get("/api/tokens")).json()
    assert listed[0]["last_used_at"] is None or listed[0]["last_used_at"] > 0
    for _ in range(80):  # written behind every 5 s, off the validate path
        listed = (await client.get("/api/tokens")).json()
        if listed[0]["last_used_at"]:
            break
        await asyncio.sleep(0.1)
    assert listed[0]["last_used_at"] > listed[0]["created_at_ms"]
    rotated = await client.post(f"/api/tokens/{listed[0]['token_id']}/rotate", headers=headers)
    assert rotated.status_code == 201, rotated.text
    fresh = rotated.json()["token"]
    assert fresh != token
    old = await client.post("/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"})
    new = await client.post("/api/validate-solution-token", json={"token": fresh, "solution_id": "aws-solution-finder"})
    assert (old.status_code, new.status_code) == (401, 200)
    assert (await client.post("/api/tokens/0123456789abcdef/rotate", headers=headers)).status_code == 404


async def test_password_is_rehashed_on_login_when_parameters_change(client: httpx.AsyncClient, stack: Stack) -> None:
    from argon2 import PasswordHasher

    from core.dynamo import create_dynamodb_client

    email, headers = await register(client)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse 1")
    table = stack.settings.table("users")
    async with create_dynamodb_client(stack.settings) as dynamodb:
        pointer = await dynamodb.get_item(TableName=table, Key={"pk": {"S": f"email#{email}"}})
        pk = f"user#{pointer['Item']['user_id']['S']}"
        await dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET password_hash = :h",
            ExpressionAttributeValues={":h": {"S": weak}},
        )
        ok = await client.post("/api/auth/login", json={"email": email, "password": "correct horse 1"}, headers=headers)
        assert ok.status_code == 200
        stored = (await dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}}))["Item"]["password_hash"]["S"]
    assert stored.startswith("$argon2id$") and "m=19456,t=2,p=1" in stored


async def test_an_expired_verification_code_is_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    from core.dynamo import create_dynamodb_client

    email, _ = await register(client, verify=False)
    mail = (await client.get("/dev/mailbox/messages", params={"to": email})).json()
    code = mail[0]["text"].split("code is ")[1][:6]
    table = stack.settings.table("users")
    async with create_dynamodb_client(stack.settings) as dynamodb:
        pointer = await dynamodb.get_item(TableName=table, Key={"pk": {"S": f"email#{email}"}})
        await dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": f"user#{pointer['Item']['user_id']['S']}"}},
            UpdateExpression="SET code_expires_at = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
        )
    r = await client.post("/api/auth/verify", json={"email": email, "code": code})
    assert r.status_code == 400 and r.json()["reason"] == "code_expired"
