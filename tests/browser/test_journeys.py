"""What people do in the browser: search anonymously, register, hit the daily limit, pay, manage tokens,
resume, cancel, and an admin approving a partner."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import Stack
from tests.integration.test_marketplace import make_admin

pytestmark = pytest.mark.browser


async def search(page: Page, query: str) -> None:
    await page.fill("input[name=q]", query)
    await page.press("input[name=q]", "Enter")


async def wait_done(page: Page) -> None:
    await expect(page.locator("#answer")).not_to_be_empty(timeout=20_000)
    await expect(page.locator("#answer")).to_have_attribute("aria-busy", "false", timeout=20_000)


async def register_in_browser(page: Page, stack: Stack, email: str) -> None:
    await page.goto(f"{stack.base_url}/register?solution_id=aws-solution-finder")
    await page.fill("#email", email)
    await page.fill("#password", "correct horse 1")
    await page.click("#register-form button[type=submit]")
    await expect(page.locator("#verify-form")).to_be_visible()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for _ in range(50):
            mail = (await http.get("/dev/mailbox/messages", params={"to": email})).json()
            if mail:
                break
            await asyncio.sleep(0.1)
    assert mail, email
    code = re.search(r"\b(\d{6})\b", mail[0]["text"]).group(1)  # type: ignore[union-attr]
    await page.fill("#code", code)
    await page.click("#verify-form button[type=submit]")
    await page.wait_for_url(f"{stack.base_url}/search")


async def test_anonymous_three_searches_then_the_register_prompt(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    for left in (2, 1, 0):
        await search(page, "resize images on the fly for a CDN")
        await expect(page.locator("#quota")).to_have_text(f"{left} of 3 free searches left")
        await wait_done(page)
    await expect(page.locator("#sources a").first).to_be_visible()
    await expect(page.locator("#mode")).to_contain_text("Offline answer mode")
    await search(page, "one more")
    prompt = page.locator("#notice a", has_text="Register")
    await expect(prompt).to_have_attribute("href", "/register?solution_id=aws-solution-finder")


async def test_the_answer_visibly_grows_while_it_streams(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "crop and resize pictures on the fly for a CDN")
    lengths: list[int] = []
    for _ in range(200):
        text = await page.locator("#answer").inner_text()
        if text and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
        if await page.locator("#answer").get_attribute("aria-busy") == "false" and lengths:
            break
        await asyncio.sleep(0.03)
    assert len(lengths) >= 3 and lengths == sorted(lengths), lengths
    cite = page.locator("#answer a.cite").first
    await expect(cite).to_have_attribute("href", "#source-1")


async def test_register_search_until_the_limit_then_pay_and_become_pro(page: Page, stack: Stack) -> None:
    email = "browser-pro@example.com"
    await register_in_browser(page, stack, email)
    token = await page.evaluate("localStorage.getItem('sf_token')")
    assert token and token.startswith("sf_") and "sf_" not in page.url
    async with httpx.AsyncClient(base_url=stack.base_url) as http:  # use 9 of today's 10 elsewhere
        for _ in range(9):
            r = await http.post(
                "/api/validate-solution-token", json={"token": token, "solution_id": "aws-solution-finder"}
            )
            assert r.status_code == 200
    await search(page, "serverless image handler")
    await expect(page.locator("#quota")).to_have_text("0 of 10 searches today left")
    await wait_done(page)
    await search(page, "and another")
    upgrade = page.locator("#notice a", has_text="Upgrade")
    await expect(upgrade).to_be_visible()
    await upgrade.click()
    await page.wait_for_url(re.compile(r"/pricing"))
    await expect(page.locator("#price")).to_have_text("₹499.00")
    await page.click("#buy")
    await page.wait_for_url(re.compile(r"/simulator/pay/"))
    await page.click("#pay")
    await page.wait_for_url(re.compile(r"/payments/return"))
    await expect(page.locator("#payment-state")).to_have_attribute("data-state", "COMPLETED")
    await page.goto(f"{stack.base_url}/search")
    await search(page, "video on demand")
    await expect(page.locator("#quota")).to_have_text("Pro: unlimited searches")
    await wait_done(page)
    await page.goto(f"{stack.base_url}/account")
    await expect(page.locator("#tier")).to_have_text("pro")
    await expect(page.locator("#payments tr")).to_have_count(1)


async def test_resume_after_a_reload(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "build a data lake on S3 with Glue and Athena")
    await expect(page.locator("#answer")).not_to_be_empty()
    await page.reload()
    await wait_done(page)
    text = await page.locator("#answer").inner_text()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        quota = (await http.post("/api/searches", json={"query": "x"})).json()["quota"]
    assert quota["used"] == 1  # a new identity: the reload itself charged nothing in its own
    assert "[1]" in text or "No matching" in text


async def test_stop_cancels_the_search(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "streaming video platform with adaptive bitrate")
    await expect(page.locator("#stop")).to_be_visible()
    await expect(page.locator("#answer")).not_to_be_empty()
    await page.click("#stop")
    await expect(page.locator("#notice")).to_have_text("Search stopped.")
    await expect(page.locator("#stop")).to_be_hidden()


async def test_revoking_the_token_on_account_makes_search_refuse_it(page: Page, stack: Stack) -> None:
    await register_in_browser(page, stack, "browser-revoke@example.com")
    await page.goto(f"{stack.base_url}/account")
    await page.locator("button[data-revoke]").first.click()
    await expect(page.locator("#message")).to_contain_text("revoked")
    await asyncio.sleep(1.0)
    await page.goto(f"{stack.base_url}/search")
    await search(page, "anything")
    await expect(page.locator("#notice")).to_contain_text("no longer valid")


async def test_an_admin_approves_a_partner_application(page: Page, stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    await register_in_browser(page, stack, "browser-partner@example.com")
    await page.goto(f"{stack.base_url}/partners/apply")
    await page.fill("#company", "Acme Cloud")
    await page.fill("#website", "https://acme.example")
    await page.fill("#description", "A log analyzer that finds errors in CloudWatch.")
    await page.click("#apply-form button[type=submit]")
    await expect(page.locator("#mine li[data-status=pending]")).to_have_count(1)

    admin_context = await browser.new_context()
    admin = await admin_context.new_page()
    await register_in_browser(admin, stack, "browser-admin@example.com")
    make_admin(stack, "browser-admin@example.com")
    await admin.goto(f"{stack.base_url}/admin")
    await admin.locator("button[data-approve]").first.click()
    await expect(admin.locator("#message")).to_contain_text("approved")
    await admin_context.close()
    await page.reload()
    await expect(page.locator("#mine li[data-status=approved]")).to_have_count(1)


@pytest.mark.parametrize("width", [1280, 390])
async def test_screenshots_of_search_and_account(page: Page, stack: Stack, width: int) -> None:
    from tests.browser.conftest import ARTIFACTS

    await page.set_viewport_size({"width": width, "height": 900})
    await register_in_browser(page, stack, f"browser-shot-{width}@example.com")
    await search(page, "resize images on the fly behind CloudFront")
    await wait_done(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"search-{width}.png"), full_page=True)
    overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow  # usable at phone width
    await page.goto(f"{stack.base_url}/account")
    await expect(page.locator("#tier")).to_have_text("registered")
    await expect(page.locator("#tokens tr")).to_have_count(1)
    await page.screenshot(path=str(ARTIFACTS / f"account-{width}.png"), full_page=True)
    assert not await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
