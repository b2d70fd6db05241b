"""The search page as people use it: keyboard only, at desktop and phone width; one answer per search even
when Enter is pressed twice; Escape stops; refusals shown once; answers rendered, not raw Markdown."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, Page, expect
from redis.asyncio import Redis

from quota import keys
from tests.browser.helpers import DESKTOP, PHONE, search, wait_done
from tests.conftest import Stack
from tests.helpers import wait_until

pytestmark = pytest.mark.browser
BOTH = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])

COUNT_LIVE_MUTATIONS = """() => {
  window.__live = 0;
  const observer = new MutationObserver((records) => { window.__live += records.length; });
  for (const node of document.querySelectorAll('[aria-live], [role=status], [role=alert]'))
    observer.observe(node, { childList: true, subtree: true, characterData: true });
}"""


@BOTH
async def test_keyboard_only_search_from_skip_link_to_a_citation(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await expect(page.locator("h1")).to_have_count(1)
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.evaluate(COUNT_LIVE_MUTATIONS)
    # A question with alternatives, so the answer holds a list (the CloudFront one names one product twice).
    await page.keyboard.type("chatbot that answers customer questions")
    await page.keyboard.press("Enter")
    await expect(page.locator("#go")).to_be_disabled()  # no second search while this one streams
    await wait_done(page)
    await expect(page.locator("#go")).to_be_enabled()
    await expect(page.locator("#quota")).to_have_text("2 of 3 free searches left")
    await expect(page.locator("#status")).to_contain_text("Answer ready")
    tokens = await page.evaluate("window.__live")
    assert tokens <= 6, f"the live regions changed {tokens} times during one answer"
    # Rendered, not raw: bold and list items are elements, no Markdown marks remain.
    answer = page.locator("#answer")
    assert "**" not in await answer.inner_text()
    await expect(answer.locator("strong").first).to_be_visible()
    await expect(answer.locator("ul li").first).to_be_visible()
    assert not any(line.lstrip().startswith("- ") for line in (await answer.inner_text()).splitlines())
    cite = answer.locator("a.cite").first
    box = await cite.bounding_box()
    assert box and box["width"] >= 24 and box["height"] >= 24, box
    for _ in range(30):  # Tab onwards from the box until the first citation has focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('cite')"):
            break
    else:
        raise AssertionError("no citation reachable by Tab")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#source-\d+$"))
    overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow


async def test_double_enter_on_the_last_free_search_keeps_the_answer(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    await page.goto(f"{stack.base_url}/search")
    for _ in range(2):  # use two of the three free searches with the page's own cookie
        r = await context.request.post(f"{stack.base_url}/api/searches", data={"query": "video on demand"})
        assert r.status == 202
    await page.fill("#q", "resize images on the fly behind CloudFront")
    await page.press("#q", "Enter")
    await page.press("#q", "Enter")
    await wait_done(page)
    await expect(page.locator("#quota")).to_have_text("0 of 3 free searches left")
    await expect(page.locator("#notice")).to_be_hidden()
    await expect(page.locator("#answer a.cite").first).to_be_visible()
    await search(page, "one more")  # the limit: the answer already paid for stays on the page
    await expect(page.locator("#notice")).to_contain_text("used your free searches")
    await expect(page.locator("#answer a.cite").first).to_be_visible()
    link = page.locator("#notice a", has_text="Create an account")
    await expect(link).to_have_attribute("href", "/register?solution_id=aws-solution-finder&next=/search")


async def test_escape_stops_the_search_and_focus_stays_in_the_box(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "streaming video platform with adaptive bitrate")
    await expect(page.locator("#stop")).to_be_visible()
    await expect(page.locator("#answer")).not_to_be_empty()
    await page.press("#q", "Escape")
    await expect(page.locator("#notice")).to_have_text("Search stopped.")
    await expect(page.locator("#stop")).to_be_hidden()
    assert await page.input_value("#q") == "streaming video platform with adaptive bitrate"
    assert await page.evaluate("document.activeElement.id") == "q"


async def test_stop_button_hands_focus_back_to_the_box(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "build a data lake on S3 with Glue and Athena")
    await expect(page.locator("#answer")).not_to_be_empty()
    await page.focus("#stop")
    await page.keyboard.press("Enter")
    await expect(page.locator("#stop")).to_be_hidden()
    assert await page.evaluate("document.activeElement.id") == "q"


async def test_a_refused_question_shows_once_without_an_empty_sources_heading(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "zqxv plorf wibble")
    await wait_done(page)
    await expect(page.locator("#sources-section")).to_be_hidden()
    await expect(page.locator("#notice")).to_be_hidden()
    text = await page.locator("#answer").inner_text()
    assert text.strip() and text.count(text.strip()[:30]) == 1


async def test_a_refused_question_costs_nothing(page: Page, stack: Stack, redis: Redis, flusher: None) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "zqxv plorf wibble")
    await wait_done(page)
    # The refund is applied by the quota flusher; wait until the counter shows it, then search again.
    anon = next(c["value"] for c in await page.context.cookies() if c["name"] == "anon_id").rsplit(".", 1)[0]
    counter = keys.counter(keys.anonymous_subject(anon, "aws-solution-finder"))
    assert await wait_until(lambda: redis.hget(counter, "refunded"), lambda v: v == b"1") == b"1"
    await search(page, "resize images on the fly behind CloudFront")
    await expect(page.locator("#quota")).to_have_text("2 of 3 free searches left")


async def test_resume_after_a_reload(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await search(page, "build a data lake on S3 with Glue and Athena")
    await expect(page.locator("#answer")).not_to_be_empty()
    await page.reload()
    await wait_done(page)
    await expect(page.locator("#answer a.cite").first).to_be_visible()
    await expect(page.locator("#quota")).to_have_text("2 of 3 free searches left")  # remembered, not blank


async def test_example_questions_on_the_landing_page_run_a_search(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/")
    await expect(page.locator("#pro-price")).to_have_text("₹499.00")
    await page.locator("#examples a").first.click()
    await page.wait_for_url(f"{stack.base_url}/search")
    await wait_done(page)
    assert "CloudFront" in await page.input_value("#q")
