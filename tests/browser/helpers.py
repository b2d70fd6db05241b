"""What the browser journeys share: people made through the real API, codes read from the dev mailbox, and
the few page actions every journey repeats."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import ROOT, Stack

PASSWORD = "correct horse 1"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def new_email(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}@example.com"


async def mail_code(base_url: str, email: str, subject: str = "verification", newer_than: float = 0) -> str:
    """The 6-digit code in the newest mail to `email` whose subject mentions `subject`, waiting for it."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(100):
            mail = (await http.get("/dev/mailbox/messages", params={"to": email})).json()
            for message in mail:
                if subject in message["subject"].lower() and message["sent_at"] > newer_than:
                    found = re.search(r"\b(\d{6})\b", message["text"])
                    assert found, message
                    return found.group(1)
            await asyncio.sleep(0.1)
    raise AssertionError(f"no {subject} mail for {email}")


async def api_register(stack: Stack, email: str, *, verify: bool = True) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        token = (await http.get("/api/auth/csrf")).json()["csrf_token"]
        r = await http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD}, headers={"X-CSRFToken": token}
        )
        assert r.status_code == 201, r.text
        if verify:
            code = await mail_code(stack.base_url, email)
            assert (await http.post("/api/auth/verify", json={"email": email, "code": code})).status_code == 200


async def sign_in(context: BrowserContext, stack: Stack, email: str) -> None:
    """Signs the browser context in through the API, sharing the context's cookies."""
    await context.request.get(f"{stack.base_url}/api/auth/csrf")
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    r = await context.request.post(
        f"{stack.base_url}/api/auth/login",
        data={"email": email, "password": PASSWORD},
        headers={"X-CSRFToken": cookies["csrftoken"]},
    )
    assert r.status == 200, await r.text()


async def csrf_header(context: BrowserContext) -> dict[str, str]:
    return {"X-CSRFToken": {c["name"]: c["value"] for c in await context.cookies()}["csrftoken"]}


def make_admin(stack: Stack, email: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "marketplace.admin", email], env=stack.env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


async def search(page: Page, query: str) -> None:
    await page.fill("#q", query)
    await page.press("#q", "Enter")


async def wait_done(page: Page) -> None:
    await expect(page.locator("#answer")).not_to_be_empty(timeout=20_000)
    await expect(page.locator("#answer")).to_have_attribute("aria-busy", "false", timeout=20_000)


async def register_in_browser(page: Page, stack: Stack, email: str, start: str = "") -> None:
    """Register on /register, then enter the mailed code on /verify."""
    if start:
        await page.goto(f"{stack.base_url}{start}")
    else:
        await page.goto(f"{stack.base_url}/register?solution_id=aws-solution-finder")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#register-submit")
    await page.wait_for_url(re.compile(r"/verify$"))
    await page.fill("#code", await mail_code(stack.base_url, email))
    await page.click("#verify-submit")
    await page.wait_for_url(re.compile(r"/search$"))
