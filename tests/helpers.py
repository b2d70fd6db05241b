"""Helpers every integration test shares: accounts through the real API, extra gateways, admins, waits."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from dev.servers import free_port, wait_for_port
from tests.conftest import ROOT, Stack, wait_until  # noqa: F401  (re-exported: one wait helper)

PASSWORD = "correct horse 1"
T = TypeVar("T")


async def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    token = (await client.get("/api/auth/csrf")).json()["csrf_token"]
    return {"X-CSRFToken": token}


async def mailed_code(client: httpx.AsyncClient, email: str, marker: str = "code is ") -> str:
    mail = (await client.get("/dev/mailbox/messages", params={"to": email.lower()})).json()
    return str(next(m["text"] for m in mail if marker in m["text"]).split(marker)[1][:6])


async def register(
    client: httpx.AsyncClient,
    *,
    verify: bool = True,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "",
) -> tuple[str, dict[str, str]]:
    headers = await csrf(client)
    email = email or f"user-{uuid.uuid4().hex[:8]}@Example.com"
    body = {"email": email, "password": password, **({"name": name} if name else {})}
    response = await client.post("/api/auth/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email.lower()
    if verify:
        code = await mailed_code(client, email)
        assert (await client.post("/api/auth/verify", json={"email": email, "code": code})).status_code == 200
    return email.lower(), headers


async def token_for(
    client: httpx.AsyncClient, headers: dict[str, str], solution_id: str = "aws-solution-finder"
) -> str:
    response = await client.post("/api/generate-solution-token", json={"solution_id": solution_id}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["access_tier"] == "registered" and body["quota"]["daily_limit"] == 10
    return str(body["token"])


def start_gateway(stack: Stack, name: str, env: dict[str, str], workers: int = 1) -> str:
    """Another gateway on a free port with extra settings; returns its base URL."""
    port = free_port()
    process = stack.spawn(
        name,
        ["-m", "api.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
    )
    wait_for_port(port, timeout_s=60, process=process)
    return f"http://127.0.0.1:{port}"


def make_admin(stack: Stack, email: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "marketplace.admin", email], env=stack.env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@contextlib.asynccontextmanager
async def cognito_gateway(
    stack: Stack, extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, rsa.RSAPrivateKey]]:
    """A gateway with AUTH_PROVIDER=cognito and a local JWKS endpoint; yields its URL and the signing key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="test-key", alg="RS256", use="sig")

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    name = f"gateway-cognito-{port}"
    base = start_gateway(
        stack,
        name,
        {
            "AUTH_PROVIDER": "cognito",
            "COGNITO_JWKS_URL": f"http://127.0.0.1:{port}/.well-known/jwks.json",
            "COGNITO_ISSUER": "https://cognito-idp.test/pool",
            "COGNITO_AUDIENCE": "app-client",
            **(extra_env or {}),
        },
    )
    try:
        yield base, key
    finally:
        stack.stop(name)
        await runner.cleanup()


@pytest.fixture
async def cognito(stack: Stack) -> AsyncIterator[tuple[str, rsa.RSAPrivateKey]]:
    async with cognito_gateway(stack) as gateway:
        yield gateway


def id_token(key: rsa.RSAPrivateKey, **overrides: object) -> str:
    """A Cognito id token for the `cognito` fixture's pool, signed with `key`."""
    claims = {
        "sub": "abc",
        "email": "cognito-user@example.com",
        "email_verified": True,
        "token_use": "id",
        "aud": "app-client",
        "iss": "https://cognito-idp.test/pool",
        "exp": int(time.time()) + 300,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})
