"""Every page at desktop and phone width: one shell (skip link, one h1, the same nav), nothing wider than
the screen, no script errors or CSP violations; screenshots for docs/screens/ (SCREENS_DIR=docs/screens)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import ARTIFACTS
from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    api_register,
    csrf_header,
    make_admin,
    new_email,
    search,
    sign_in,
    wait_done,
)
from tests.conftest import Stack

pytestmark = pytest.mark.browser
BOTH = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
PUBLIC = [
    "/",
    "/register",
    "/login",
    "/verify",
    "/password/forgot",
    "/pricing",
    "/solutions",
    "/solutions/aws-solution-finder",
]
SIGNED_IN = ["/account", "/partners", "/partners/apply", "/admin"]
NAV = ["Search", "Solutions", "Pricing", "Partner", "Admin", "Account", "Log out"]


def screens_dir() -> Path:
    return Path(os.environ.get("SCREENS_DIR") or ARTIFACTS / "screens")


def shot_name(path: str, width: int) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", path.strip("/").lower()).strip("-") or "home"
    return f"{name}-{width}.png"


async def check_page(page: Page, path: str) -> None:
    await expect(page.locator("h1")).to_have_count(1)
    await expect(page.locator("h1")).not_to_be_empty()
    assert await page.locator("body > a.skip").get_attribute("href") == "#main", path
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
    for target in await page.locator("main button:visible, nav a:visible, nav button:visible").all():
        box = await target.bounding_box()
        assert box and box["height"] >= 24, f"{path}: a target is {box} px"


async def visit(page: Page, stack: Stack, path: str, width: int) -> None:
    await page.goto(f"{stack.base_url}{path}")
    await page.wait_for_load_state("networkidle")
    await check_page(page, path)
    folder = screens_dir()
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / shot_name(path, width)), full_page=True)


@BOTH
async def test_every_page_shares_the_shell_and_fits_the_screen(
    page: Page, context: BrowserContext, stack: Stack, viewport: dict[str, int]
) -> None:
    for path in PUBLIC:
        await visit(page, stack, path, viewport["width"])
    await page.goto(f"{stack.base_url}/search")
    await search(page, "resize images on the fly behind CloudFront")
    await wait_done(page)
    await check_page(page, "/search")
    await page.screenshot(path=str(screens_dir() / shot_name("/search", viewport["width"])), full_page=True)

    email = new_email("shots")
    await api_register(stack, email)
    make_admin(stack, email)
    await sign_in(context, stack, email)
    checkout = await context.request.post(
        f"{stack.base_url}/api/payments/checkout",
        data={"plan": "pro", "solution_id": "aws-solution-finder"},
        headers=await csrf_header(context),
    )
    order = (await checkout.json())["merchant_order_id"]
    assert (await context.request.post(f"{stack.env['PHONEPE_BASE_URL']}/simulator/orders/{order}/complete")).ok
    for path in SIGNED_IN:
        await visit(page, stack, path, viewport["width"])
        labels = [t.strip() for t in await page.locator("nav a:visible, nav button:visible").all_inner_texts()]
        assert labels == NAV, labels  # the same nav, with Log out, on every page
    await page.goto(f"{stack.base_url}/payments/{order}")
    await expect(page.locator("#payment-state")).to_have_attribute("data-state", "COMPLETED", timeout=15_000)
    await visit(page, stack, f"/payments/{order}", viewport["width"])
    os.replace(
        screens_dir() / shot_name(f"/payments/{order}", viewport["width"]),
        screens_dir() / shot_name("/payments/order", viewport["width"]),
    )


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = (_luminance(tuple(int(x) for x in re.findall(r"\d+", c)[:3])) for c in (a, b))  # type: ignore[arg-type]
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


async def test_the_focus_ring_stands_out_from_the_page(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/search")
    await page.keyboard.press("Tab")  # the skip link
    await page.keyboard.press("Tab")  # the brand link, with a focus-visible ring
    ring = await page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    width = await page.evaluate("parseFloat(getComputedStyle(document.activeElement).outlineWidth)")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert width >= 2 and contrast(ring, background) >= 3, (ring, background, contrast(ring, background))


async def test_the_favicon_is_served_and_the_nav_marks_the_current_page(page: Page, stack: Stack) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    await page.goto(f"{stack.base_url}/pricing")
    await page.wait_for_load_state("networkidle")
    favicon = await page.request.get(f"{stack.base_url}/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/svg+xml")
    assert not missing, missing
    await expect(page.locator("nav a[aria-current=page]")).to_have_text("Pricing")
    await expect(page.locator("#nav-login")).to_be_visible()
    await expect(page.locator("#nav-logout")).to_be_hidden()
