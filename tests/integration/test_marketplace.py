"""The marketplace control plane: partner applications, the catalog, sessions' stored contents, Cognito."""

from __future__ import annotations

import json
import time

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from core.dynamo import create_dynamodb_client, from_item
from tests.conftest import Stack
from tests.helpers import csrf, id_token, make_admin, register, start_gateway

APPLICATION = {
    "company": "Acme Cloud",
    "website": "https://acme.example",
    "description": "We sell a log analyzer for AWS.",
}


async def signed_in(stack: Stack) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    email, headers = await register(http)
    return http, email, headers


async def test_partner_application_workflow_end_to_end(client: httpx.AsyncClient, stack: Stack) -> None:
    applicant, applicant_email, a_headers = await signed_in(stack)
    other, _, o_headers = await signed_in(stack)
    admin, admin_email, ad_headers = await signed_in(stack)
    try:
        created = await applicant.post("/api/partners/applications", json=APPLICATION, headers=a_headers)
        assert created.status_code == 201 and created.json()["status"] == "pending"
        twice = await applicant.post("/api/partners/applications", json=APPLICATION, headers=a_headers)
        assert twice.status_code == 409
        rejected_app = (await other.post("/api/partners/applications", json=APPLICATION, headers=o_headers)).json()

        assert (await admin.get("/api/admin/partner-applications")).status_code == 403  # not yet an admin
        make_admin(stack, admin_email)
        pending = (await admin.get("/api/admin/partner-applications")).json()
        assert {a["application_id"] for a in pending} >= {
            created.json()["application_id"],
            rejected_app["application_id"],
        }
        # A non-admin cannot approve, even with a valid session and CSRF token.
        forbidden = await applicant.post(
            f"/api/admin/partner-applications/{created.json()['application_id']}/approve", headers=a_headers
        )
        assert forbidden.status_code == 403 and forbidden.json()["reason"] == "admin_only"

        approved = await admin.post(
            f"/api/admin/partner-applications/{created.json()['application_id']}/approve", headers=ad_headers
        )
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        again = await admin.post(
            f"/api/admin/partner-applications/{created.json()['application_id']}/approve", headers=ad_headers
        )
        assert again.status_code == 404
        no_reason = await admin.post(
            f"/api/admin/partner-applications/{rejected_app['application_id']}/reject", json={}, headers=ad_headers
        )
        assert no_reason.status_code == 400
        rejection = await admin.post(
            f"/api/admin/partner-applications/{rejected_app['application_id']}/reject",
            json={"reason": "Not an AWS solution."},
            headers=ad_headers,
        )
        assert rejection.json()["status"] == "rejected"

        assert (await applicant.get("/api/me")).json()["role"] == "partner"
        mine = (await other.get("/api/partners/applications")).json()
        assert mine[0]["status"] == "rejected" and mine[0]["reason"] == "Not an AWS solution."

        # The new partner lists a solution; another user may not change it; an admin retires it.
        solution = {
            "solution_id": f"log-analyzer-{int(time.time())}",
            "name": "Log Analyzer",
            "description": "Finds errors in CloudWatch logs.",
            "price_paise": 19900,
        }
        made = await applicant.post("/api/admin/solutions", json=solution, headers=a_headers)
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "pending"  # a partner's listing waits for an admin
        approved = await admin.post(f"/api/admin/solutions/{solution['solution_id']}/approve", headers=ad_headers)
        assert approved.status_code == 200 and approved.json()["status"] == "active"
        listed = {s["solution_id"] for s in (await client.get("/api/solutions")).json()}
        assert {"aws-solution-finder", solution["solution_id"]} <= listed
        hijack = await other.put(
            f"/api/admin/solutions/{solution['solution_id']}", json={"name": "Mine"}, headers=o_headers
        )
        assert hijack.status_code == 403
        renamed = await applicant.put(
            f"/api/admin/solutions/{solution['solution_id']}", json={"name": "Log Analyzer Pro"}, headers=a_headers
        )
        assert renamed.json()["name"] == "Log Analyzer Pro"
        retired = await admin.post(f"/api/admin/solutions/{solution['solution_id']}/retire", headers=ad_headers)
        assert retired.json()["status"] == "retired"
        assert solution["solution_id"] not in {s["solution_id"] for s in (await client.get("/api/solutions")).json()}
        assert (await client.get("/api/solutions/nope")).status_code == 404
    finally:
        for http in (applicant, other, admin):
            await http.aclose()


async def test_role_cannot_be_chosen_at_signup(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    r = await client.post(
        "/api/auth/register",
        json={"email": "x@example.com", "password": "0123456789ab", "role": "admin"},
        headers=headers,
    )
    assert r.status_code == 400 and r.json()["reason"] == "bad_request"


async def test_bad_account_input_is_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    cases = [
        {"email": "not-an-email", "password": "0123456789ab"},
        {"email": "a@b.co", "password": "short"},
        {"email": "a@b.co", "password": "x" * 300},
        {"email": "a" * 300 + "@b.co", "password": "0123456789ab"},
        {"email": "a@b.co", "password": "0123456789ab", "name": "n" * 500},
    ]
    for body in cases:
        r = await client.post("/api/auth/register", json=body, headers=headers)
        assert r.status_code == 400 and r.json()["reason"] == "bad_request", body


async def test_sessions_table_holds_no_raw_ip_and_no_session_id(client: httpx.AsyncClient, stack: Stack) -> None:
    await register(client)
    session_id = client.cookies["session"]
    async with create_dynamodb_client(stack.settings) as dynamodb:
        items = [from_item(i) for i in (await dynamodb.scan(TableName=stack.settings.table("sessions")))["Items"]]
    dump = json.dumps(items)
    assert items and "127.0.0.1" not in dump and session_id not in dump
    assert all(len(i["ip_hmac"]) == 32 for i in items)
    assert not any(k.startswith("location_") for i in items for k in i)  # CloudFront headers not trusted


async def test_cloudfront_location_is_recorded_only_when_trusted(stack: Stack) -> None:
    base = start_gateway(stack, "gateway-cf", {"TRUST_CLOUDFRONT_HEADERS": "true"})
    try:
        async with httpx.AsyncClient(
            base_url=base,
            timeout=30,
            headers={
                "CloudFront-Viewer-Country": "IN",
                "CloudFront-Viewer-City": "Pune",
                "CloudFront-Viewer-Time-Zone": "Asia/Kolkata",
            },
        ) as http:
            await register(http)
            session_id = http.cookies["session"]
        import hashlib

        async with create_dynamodb_client(stack.settings) as dynamodb:
            item = await dynamodb.get_item(
                TableName=stack.settings.table("sessions"),
                Key={"pk": {"S": f"session#{hashlib.sha256(session_id.encode()).hexdigest()}"}},
            )
        stored = from_item(item["Item"])
        assert (stored["location_country"], stored["location_city"], stored["location_time_zone"]) == (
            "IN",
            "Pune",
            "Asia/Kolkata",
        )
    finally:
        stack.stop("gateway-cf")


async def test_cognito_jwts_valid_expired_wrong_audience_wrong_key(cognito: tuple[str, rsa.RSAPrivateKey]) -> None:
    base, key = cognito
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def me(jwt_token: str) -> httpx.Response:
            return await http.get("/api/me", headers={"Authorization": f"Bearer {jwt_token}"})

        ok = await me(id_token(key))
        assert ok.status_code == 200 and ok.json()["email"] == "cognito-user@example.com"
        assert ok.json()["verified"] is True
        for bad in (
            id_token(key, exp=int(time.time()) - 10),
            id_token(key, aud="someone-else"),
            id_token(other_key),
            id_token(key, iss="https://evil.example"),
        ):
            r = await me(bad)
            assert r.status_code == 401 and r.json()["reason"] == "invalid_jwt", r.text
        # Bearer auth needs no CSRF header: a token can be generated straight away.
        made = await http.post(
            "/api/generate-solution-token",
            json={"solution_id": "aws-solution-finder"},
            headers={"Authorization": f"Bearer {id_token(key)}"},
        )
        assert made.status_code == 201, made.text
