"""Issue 13: the old system's rows (tests/data/seed_tables, formats untouched) work on the first call.

Each test loads seed rows into the local DynamoDB as the old system wrote them. Where a test needs a row
of its own (its token is adopted, its usage is for today), it takes a seed row and changes only the
values (address, token digits, the day in a `usage_YYYY_MM_DD` name), never the attribute shapes.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.dynamo import TableSpec, create_dynamodb_client, ensure_tables, from_item
from tests.conftest import Stack
from tests.helpers import PASSWORD, cognito_gateway, csrf, id_token, mailed_code, start_gateway

SEED = Path(__file__).resolve().parents[1] / "data" / "seed_tables"


def seed_items(name: str) -> list[dict[str, Any]]:
    return list(json.loads((SEED / f"{name}.json").read_text())["Items"])


def seed_row(*, sk: str = "solution#aws-solution-finder-001", **changes: Any) -> tuple[dict[str, Any], str, str]:
    """A copy of a seed entitlement row (old format) with a fresh address and token; returns it, the
    token and the address."""
    row = copy.deepcopy(next(i for i in seed_items("user-solution-entitlements") if i["sk"]["S"] == sk))
    email = f"seed-{uuid.uuid4().hex[:8]}@example.com"
    token = f"tok_perm_{secrets.token_hex(16)}"
    row["pk"] = {"S": f"user#{email}"}
    row["user_email"] = {"S": email}
    row["token"] = {"S": token}
    row.update(changes)
    if "accessTier" in changes or "tier" in changes:
        row.pop("access_tier")  # one tier attribute per row, as each format wrote it
    return row, token, email


async def put_rows(stack: Stack, rows: list[dict[str, Any]], table: str = "user-solution-entitlements") -> None:
    async with create_dynamodb_client(stack.settings) as dynamodb:
        for row in rows:
            await dynamodb.put_item(TableName=stack.settings.table(table), Item=row)


async def get_row(stack: Stack, pk: str, sk: str) -> dict[str, Any]:
    async with create_dynamodb_client(stack.settings) as dynamodb:
        response = await dynamodb.get_item(
            TableName=stack.settings.table("user-solution-entitlements"),
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
    return from_item(response["Item"])


async def validate(
    client: httpx.AsyncClient, token: str, solution_id: str = "aws-solution-finder", **extra: Any
) -> httpx.Response:
    return await client.post("/api/validate-solution-token", json={"token": token, "solution_id": solution_id, **extra})


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


async def test_every_seed_token_validates_on_the_first_call(client: httpx.AsyncClient, stack: Stack) -> None:
    rows = seed_items("user-solution-entitlements")
    await put_rows(stack, rows)
    for row in rows:
        r = await validate(client, row["token"]["S"], row["solution_id"]["S"], check_only=True)
        assert r.status_code == 200, (row["pk"], r.text)
        body = r.json()
        assert body["user_email"] == row["user_email"]["S"] and body["access_tier"] == "registered"
        assert body["entitlement_status"] == "active" and body["created_at"] == row["created_at"]["S"]
        # Alias rows (aws-solution-finder-001) answer for the canonical id too.
        assert (await validate(client, row["token"]["S"], "aws-solution-finder", check_only=True)).status_code == 200


async def test_a_seed_token_is_kept_hashed_after_its_first_use(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, email = seed_row()
    await put_rows(stack, [row])
    assert (await validate(client, token, user_email=email.upper())).status_code == 200
    stored = await get_row(stack, row["pk"]["S"], row["sk"]["S"])
    assert "token" not in stored and stored["tokenAdoptedAt"]
    async with create_dynamodb_client(stack.settings) as dynamodb:
        hashed = await dynamodb.get_item(
            TableName=stack.settings.table("tokens"),
            Key={"token_hash": {"S": hashlib.sha256(token.encode()).hexdigest()}},
        )
    record = from_item(hashed["Item"])
    assert record["email"] == email and record["solution_id"] == "aws-solution-finder" and token not in str(record)
    again = await validate(client, token)
    assert again.status_code == 200 and again.json()["quota"]["daily_used"] == 2
    other = await validate(client, token, user_email="someone-else@example.com")
    assert other.status_code == 403 and other.json()["reason"] == "user_mismatch"


async def test_concurrent_first_uses_adopt_a_seed_token_once(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, _ = seed_row()
    await put_rows(stack, [row])
    results = await asyncio.gather(*(validate(client, token) for _ in range(10)))
    assert [r.status_code for r in results] == [200] * 10
    assert sorted(r.json()["quota"]["daily_used"] for r in results) == list(range(1, 11))


@pytest.mark.parametrize(
    "usage",
    [
        {"usage_%s": {"N": "7"}},  # the seed's own shape: a top-level attribute per day
        {"usage": {"M": {"daily_usage": {"M": {"%s": {"N": "7"}}}}}},  # old format's map
        {"dailyUsage": {"N": "7"}, "lastUsageDate": {"S": "%s"}},  # new format
    ],
)
async def test_a_seed_user_at_seven_today_has_three_left(
    client: httpx.AsyncClient, stack: Stack, usage: dict[str, Any]
) -> None:
    text = json.dumps(usage).replace("%s", today()).replace(f"usage_{today()}", f"usage_{today().replace('-', '_')}")
    row, token, _ = seed_row(**json.loads(text))
    await put_rows(stack, [row])
    first = await validate(client, token, check_only=True)
    assert first.json()["quota"]["daily_used"] == 7 and first.json()["quota_remaining"] == 3, first.text
    statuses = [(await validate(client, token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_yesterdays_seed_usage_does_not_count_today(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, _ = seed_row(usage_2025_11_10={"N": "10"})
    await put_rows(stack, [row])
    assert (await validate(client, token, check_only=True)).json()["quota"]["daily_used"] == 0


async def test_seed_tiers_and_pro_expiry(client: httpx.AsyncClient, stack: Stack) -> None:
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).isoformat().replace("+00:00", "Z")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    cases = [
        ({"access_tier": {"S": "pro"}, "pro_expires_at": {"S": future}}, "pro"),
        ({"access_tier": {"S": "pro"}, "pro_expires_at": {"S": past}}, "registered"),
        ({"tier": {"S": "pro"}, "pro_expires_at": {"S": future}}, "pro"),
        ({"accessTier": {"S": "pro"}, "proUntil": {"N": str(int(dt.datetime.now().timestamp()) + 60)}}, "pro"),
    ]
    for changes, want in cases:
        row, token, _ = seed_row(**changes)
        await put_rows(stack, [row])
        body = (await validate(client, token, check_only=True)).json()
        assert body["access_tier"] == want, (changes, body)
        assert (body["quota_remaining"] == -1) == (want == "pro")
    # A pro row with no expiry at all: Pro, as the seed treated it, with an expiry recorded on first sight.
    row, token, _ = seed_row(access_tier={"S": "pro"})
    await put_rows(stack, [row])
    assert (await validate(client, token, check_only=True)).json()["access_tier"] == "pro"
    stored = await get_row(stack, row["pk"]["S"], row["sk"]["S"])
    assert stored["proUntilSource"] == "first-sight"
    assert 29 * 86400 < stored["proUntil"] - dt.datetime.now().timestamp() <= 30 * 86400


async def test_an_inactive_seed_entitlement_is_refused_with_its_status(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, _ = seed_row(status={"S": "suspended"})
    await put_rows(stack, [row])
    r = await validate(client, token)
    assert r.status_code == 403 and r.json()["reason"] == "entitlement_inactive" and r.json()["status"] == "suspended"


async def test_the_validator_answers_any_origin_and_only_post(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, _ = seed_row()
    await put_rows(stack, [row])
    origin = {"Origin": "https://some-finder.example"}
    preflight = await client.options(
        "/api/validate-solution-token",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    ok = await client.post(
        "/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"}, headers=origin
    )
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    assert "ratelimit" in ok.headers["access-control-expose-headers"]
    refused = await client.post(
        "/api/validate-solution-token", json={"token": "tok_perm_" + "0" * 32, "solution_id": "x"}, headers=origin
    )
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    for method in ("GET", "PUT", "DELETE"):
        wrong = await client.request(method, "/api/validate-solution-token")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST, OPTIONS"
    # Other APIs carry cookies: only configured origins.
    me = await client.get("/api/me", headers=origin)
    assert "access-control-allow-origin" not in me.headers


async def test_other_apis_answer_the_configured_origins(stack: Stack, clean: None) -> None:
    base = start_gateway(stack, "gateway-cors", {"CORS_ALLOW_ORIGINS": "https://finder.example"})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            ok = await http.get("/api/solutions", headers={"Origin": "https://finder.example"})
            other = await http.get("/api/solutions", headers={"Origin": "https://evil.example"})
        assert ok.headers["access-control-allow-origin"] == "https://finder.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "access-control-allow-origin" not in other.headers
    finally:
        stack.stop("gateway-cors")


async def test_a_seed_user_claims_the_account_by_password_reset(client: httpx.AsyncClient, stack: Stack) -> None:
    row, token, email = seed_row()
    await put_rows(stack, [row])
    assert (await validate(client, token)).status_code == 200  # used before the claim: 1 today
    headers = await csrf(client)
    assert (await client.post("/api/auth/password/forgot", json={"email": email}, headers=headers)).status_code == 202
    code = await mailed_code(client, email, "reset code is ")
    reset = await client.post(
        "/api/auth/password/reset", json={"email": email, "code": code, "new_password": PASSWORD}, headers=headers
    )
    assert reset.status_code == 200, reset.text
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
    assert login.status_code == 200 and login.json()["verified"] is True
    me = (await client.get("/api/me")).json()
    finder = next(e for e in me["entitlements"] if e["solution_id"] == "aws-solution-finder")
    assert finder["quota"]["daily_used"] == 1  # the seed token's use and the account are one quota
    tokens = (await client.get("/api/tokens")).json()
    assert [t["token_prefix"] for t in tokens] == [token[:13]]


async def test_a_cognito_seed_user_is_their_seed_row(stack: Stack, clean: None) -> None:
    users = seed_items("users")
    legacy = f"{stack.settings.table_prefix}legacy-users-{uuid.uuid4().hex[:6]}"
    async with create_dynamodb_client(stack.settings) as dynamodb:
        await ensure_tables(dynamodb, [TableSpec(legacy, "userId")])
        for item in users:
            await dynamodb.put_item(TableName=legacy, Item=item)
    person = next(u for u in users if u.get("emailVerified", {}).get("BOOL") and u.get("email"))
    sub, email = person["userId"]["S"], person["email"]["S"]
    row, _, _ = seed_row(pk={"S": f"user#{sub}"}, user_email={"S": email})
    await put_rows(stack, [row])
    async with cognito_gateway(stack, {"LEGACY_USERS_TABLE": legacy}) as (base, key):
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {id_token(key, sub=sub, email=email)}"})
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user_id"] == sub and body["email"] == email
    assert [e["solution_id"] for e in body["entitlements"]] == ["aws-solution-finder"]


async def test_the_finder_hand_off_returns_a_token_in_the_fragment_to_known_origins_only(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    from tests.helpers import register

    _, headers = await register(client)
    back = f"{stack.base_url}/search?from=register"
    made = await client.post(
        "/api/finder-handoff", json={"solution_id": "aws-solution-finder", "return_to": back}, headers=headers
    )
    assert made.status_code == 201, made.text
    url = made.json()["redirect_url"]
    assert url.startswith(back + "#token=") and "token=" not in url.split("#")[0]
    assert (await validate(client, url.split("#token=")[1], check_only=True)).status_code == 200
    for bad in ("https://evil.example/search", f"{stack.base_url}.evil.example/x", f"{back}#already"):
        r = await client.post(
            "/api/finder-handoff", json={"solution_id": "aws-solution-finder", "return_to": bad}, headers=headers
        )
        assert r.status_code == 400, (bad, r.text)
