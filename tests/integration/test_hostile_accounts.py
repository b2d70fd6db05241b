"""Issue 12 regressions on accounts and tokens, each tried as an attacker would, over HTTP against the real
gateway, valkey and the local DynamoDB; races with many concurrent requests."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import httpx

from marketplace.tokens import ALPHABET, BODY_LENGTH, PREFIX, _checksum
from tests.conftest import Stack
from tests.helpers import (
    PASSWORD,
    csrf,
    id_token,
    mailed_code,
    make_admin,
    register,
    token_for,
    wait_until,
)

SOLUTION = "aws-solution-finder"


async def validate(
    client: httpx.AsyncClient, token: str, solution_id: str = SOLUTION, **extra: object
) -> httpx.Response:
    return await client.post("/api/validate-solution-token", json={"token": token, "solution_id": solution_id, **extra})


async def use_up_the_day(client: httpx.AsyncClient, token: str) -> None:
    for _ in range(10):
        assert (await validate(client, token)).status_code == 200
    assert (await validate(client, token)).status_code == 429


async def test_tokens_and_account_never_depend_on_the_search_quota(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    first = await token_for(client, headers)
    await use_up_the_day(client, first)
    me = await client.get("/api/me")
    assert me.status_code == 200, me.text
    quota = me.json()["entitlements"][0]["quota"]
    assert (quota["daily_used"], quota["remaining"]) == (10, 0) and 0 < quota["resets_in_s"] <= 86400
    issued = await client.post("/api/generate-solution-token", json={"solution_id": SOLUTION}, headers=headers)
    assert issued.status_code == 201, issued.text
    second = issued.json()["token"]
    tokens = (await client.get("/api/tokens")).json()
    assert sorted(t["status"] for t in tokens) == ["active", "active"]
    rotated = await client.post(f"/api/tokens/{issued.json()['token_id']}/rotate", headers=headers)
    assert rotated.status_code == 201, rotated.text
    third = rotated.json()["token"]
    # The rotated-away token is dead; the one the user was given works (and is refused only by quota).
    assert (await validate(client, second)).status_code == 401
    assert (await validate(client, third)).json()["reason"] == "daily_limit_exceeded"
    assert (await validate(client, first)).json()["reason"] == "daily_limit_exceeded"


async def test_ten_concurrent_issues_leave_exactly_two_active_tokens(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    results = await asyncio.gather(
        *(
            client.post("/api/generate-solution-token", json={"solution_id": SOLUTION}, headers=headers)
            for _ in range(10)
        )
    )
    assert [r.status_code for r in results] == [201] * 10
    tokens = (await client.get("/api/tokens")).json()
    active = [t for t in tokens if t["status"] == "active"]
    assert len(active) == 2 and len(tokens) == 10
    working = [
        r.json()["token"]
        for r in results
        if (await validate(client, r.json()["token"], check_only=True)).status_code == 200
    ]
    assert len(working) == 2


async def test_concurrent_rotations_of_one_token_give_one_replacement(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    await token_for(client, headers)
    token_id = (await client.get("/api/tokens")).json()[0]["token_id"]
    results = await asyncio.gather(*(client.post(f"/api/tokens/{token_id}/rotate", headers=headers) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [201] + [404] * 7
    assert [t["status"] for t in (await client.get("/api/tokens")).json()].count("active") == 1


async def test_a_token_works_only_for_its_solution_and_not_once_retired(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    admin_email, admin_headers = await register(client)
    make_admin(stack, admin_email)
    other = f"other-{uuid.uuid4().hex[:8]}"
    made = await client.post(
        "/api/admin/solutions",
        json={"solution_id": other, "name": "Other", "description": "Another solution.", "price_paise": 10000},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as user:
        _, headers = await register(user)
        finder_token = await token_for(user, headers)
        other_token = await token_for(user, headers, solution_id=other)
        # The user is entitled to both, but each token answers only for its own solution.
        crossed = await validate(user, finder_token, other)
        assert crossed.status_code == 403 and crossed.json()["reason"] == "not_entitled"
        assert (await validate(user, other_token, SOLUTION)).status_code == 403
        assert (await validate(user, other_token, other)).status_code == 200
        retired = await client.post(f"/api/admin/solutions/{other}/retire", headers=admin_headers)
        assert retired.status_code == 200
        refused = await wait_until(lambda: validate(user, other_token, other), lambda r: r.status_code == 403)
        assert refused.json()["reason"] == "solution_retired"
        issue = await user.post("/api/generate-solution-token", json={"solution_id": other}, headers=headers)
        assert issue.status_code == 404 and issue.json()["reason"] == "unknown_solution"


async def test_fifty_parallel_wrong_passwords_are_five_tries(client: httpx.AsyncClient, stack: Stack) -> None:
    email, _ = await register(client)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as attacker:
        headers = await csrf(attacker)

        async def attempt(password: str) -> httpx.Response:
            return await attacker.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)

        wrong = await asyncio.gather(*(attempt(f"guess-{n:04d}-x") for n in range(50)))
        statuses = [r.status_code for r in wrong]
        assert statuses.count(401) == 5 and statuses.count(429) == 45, statuses
        assert all("retry-after" in r.headers for r in wrong if r.status_code == 429)
        right = await attempt(PASSWORD)
        assert right.status_code == 429  # the account is locked for the window, even for the right password


async def test_parallel_wrong_codes_spend_exactly_five_tries(client: httpx.AsyncClient, stack: Stack) -> None:
    email, _ = await register(client, verify=False)
    code = await mailed_code(client, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as attacker:
        results = await asyncio.gather(
            *(attacker.post("/api/auth/verify", json={"email": email, "code": wrong}) for _ in range(20))
        )
    reasons = [r.json()["reason"] for r in results]
    assert reasons.count("invalid_code") == 5 and reasons.count("too_many_tries") == 15, reasons
    late = await client.post("/api/auth/verify", json={"email": email, "code": code})
    assert late.json()["reason"] == "too_many_tries"


async def test_verify_of_a_verified_address_reveals_nothing(client: httpx.AsyncClient) -> None:
    email, _ = await register(client)
    for code in ("000000", "123456"):
        r = await client.post("/api/auth/verify", json={"email": email, "code": code})
        assert r.status_code == 400 and r.json()["reason"] == "invalid_code" and "role" not in r.text


async def test_idempotency_key_is_bound_to_its_request(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    token = await token_for(client, headers)
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    body = {"token": token, "solution_id": SOLUTION}
    first = await client.post("/api/validate-solution-token", json=body, headers=key)
    again = await client.post("/api/validate-solution-token", json=body, headers=key)
    assert first.json()["quota"]["daily_used"] == again.json()["quota"]["daily_used"] == 1
    other = await client.post("/api/validate-solution-token", json={**body, "action": "something else"}, headers=key)
    assert other.status_code == 422 and other.json()["reason"] == "idempotency_key_reused"


async def test_password_reset_ends_every_session(client: httpx.AsyncClient, stack: Stack) -> None:
    email, headers = await register(client)
    assert (await client.get("/api/me")).status_code == 200
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as stranger:
        s_headers = await csrf(stranger)
        unknown = await stranger.post(
            "/api/auth/password/forgot", json={"email": "nobody-here@example.com"}, headers=s_headers
        )
        known = await stranger.post("/api/auth/password/forgot", json={"email": email}, headers=s_headers)
        assert unknown.status_code == known.status_code == 202 and unknown.json() == known.json()
        code = await mailed_code(stranger, email, "reset code is ")
        bad = await stranger.post(
            "/api/auth/password/reset",
            json={"email": email, "code": f"{(int(code) + 1) % 1_000_000:06d}", "new_password": "a new long secret"},
            headers=s_headers,
        )
        assert bad.status_code == 400 and bad.json()["reason"] == "invalid_code"
        ok = await stranger.post(
            "/api/auth/password/reset",
            json={"email": email, "code": code, "new_password": "a new long secret"},
            headers=s_headers,
        )
        assert ok.status_code == 200, ok.text
        replay = await stranger.post(
            "/api/auth/password/reset",
            json={"email": email, "code": code, "new_password": "yet another secret"},
            headers=s_headers,
        )
        assert replay.status_code == 400
    assert (await client.get("/api/me")).status_code == 401  # the session from before the reset is over
    old = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
    new = await client.post("/api/auth/login", json={"email": email, "password": "a new long secret"}, headers=headers)
    assert (old.status_code, new.status_code) == (401, 200)


async def test_registering_an_unverified_address_again_replaces_the_squatter(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    await register(client, verify=False, email=email, password="squatter password")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as owner:
        await register(owner, email=email, password="the owner's password")
        headers = await csrf(owner)
        squatter = await owner.post(
            "/api/auth/login", json={"email": email, "password": "squatter password"}, headers=headers
        )
        mine = await owner.post(
            "/api/auth/login", json={"email": email, "password": "the owner's password"}, headers=headers
        )
        assert (squatter.status_code, mine.status_code) == (401, 200)
        assert mine.json()["verified"] is True
    # Once verified, the address is taken (the contract's 409).
    again = await client.post(
        "/api/auth/register", json={"email": email, "password": "third try password"}, headers=await csrf(client)
    )
    assert again.status_code == 409


async def test_csrf_token_is_bound_to_its_session(client: httpx.AsyncClient, stack: Stack) -> None:
    _, headers = await register(client)
    session = client.cookies.get("session")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as attacker:
        own = await csrf(attacker)  # a valid double-submit pair, but from another browser
        attacker.cookies.set("session", session or "")
        r = await attacker.post("/api/generate-solution-token", json={"solution_id": SOLUTION}, headers=own)
        assert r.status_code == 403 and r.json()["reason"] == "csrf"
    ok = await client.post("/api/generate-solution-token", json={"solution_id": SOLUTION}, headers=headers)
    assert ok.status_code == 201


async def test_guessing_tokens_is_throttled(client: httpx.AsyncClient) -> None:
    def random_token() -> str:
        body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
        return f"{PREFIX}{body}{_checksum(body)}"

    statuses = [(await validate(client, random_token())).status_code for _ in range(40)]
    assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}, statuses


async def test_partner_applications_race_leaves_one_pending(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    body = {"company": "Acme", "website": "https://acme.example", "description": "We build AWS solutions, many."}
    results = await asyncio.gather(
        *(client.post("/api/partners/applications", json=body, headers=headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 9
    mine = (await client.get("/api/partners/applications")).json()
    assert [a["status"] for a in mine] == ["pending"]


async def test_hostile_input_gets_clear_4xx(client: httpx.AsyncClient) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    for path in ("/api/searches", "/api/auth/login", "/api/validate-solution-token"):
        r = await client.post(path, content=deep, headers={"content-type": "application/json", **await csrf(client)})
        assert r.status_code == 400 and r.json()["reason"] == "bad_request", (path, r.status_code, r.text[:200])
    nul = await client.get("/static/x%00%0a{}")
    assert nul.status_code in (400, 404) and nul.json()["reason"]
    wrong_method = await client.get("/api/validate-solution-token")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST, OPTIONS"
    huge = await client.post("/api/validate-solution-token", content=b'{"token": "' + b"a" * 70_000 + b'"}')
    assert huge.status_code == 413 and huge.json()["reason"] == "request_too_large"
    blank = await client.post("/api/searches", json={"query": "   \n\t "})
    assert blank.status_code == 400 and blank.json()["reason"] == "empty_query"
    assert "quota" not in blank.json()
    headers = await csrf(client)
    for email in ("a,b@example.com", "<a@example.com>", "a@example.com\r\nBcc: x@example.com", 'x"y@example.com'):
        r = await client.post("/api/auth/register", json={"email": email, "password": PASSWORD}, headers=headers)
        assert r.status_code == 400, (email, r.text)
        assert "Expected" not in r.json()["error"]  # a sentence for people; the validator's words stay in detail
    missing = await client.post("/api/auth/resend-code", json={"email": "no-account-here@example.com"})
    assert missing.status_code == 202


def test_the_development_secret_is_refused_in_production() -> None:
    import msgspec
    import pytest

    from core.settings import load_settings

    with pytest.raises(msgspec.ValidationError, match="SECRET_KEY"):
        load_settings({"PUBLIC_BASE_URL": "https://finder.example.com"})
    assert load_settings({"PUBLIC_BASE_URL": "https://finder.example.com", "SECRET_KEY": "x" * 40})


async def test_cognito_maps_by_sub_and_by_email_only_when_verified(
    client: httpx.AsyncClient, stack: Stack, cognito: tuple[str, object]
) -> None:
    victim, _ = await register(client)
    make_admin(stack, victim)
    base, key = cognito
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def me(**claims: object) -> httpx.Response:
            token = id_token(key, **claims)  # type: ignore[arg-type]
            return await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})

        attacker = await me(sub=f"attacker-{uuid.uuid4().hex}", email=victim, email_verified=False)
        assert attacker.status_code == 200
        assert attacker.json()["email"] != victim and attacker.json()["role"] == "user"
        sub = f"owner-{uuid.uuid4().hex}"
        owner = await me(sub=sub, email=victim, email_verified=True)
        assert owner.json()["email"] == victim and owner.json()["role"] == "admin"
        # Once linked, the sub finds the account even if the token's email changes.
        again = await me(sub=sub, email="changed@example.com", email_verified=True)
        assert again.json()["user_id"] == owner.json()["user_id"]
