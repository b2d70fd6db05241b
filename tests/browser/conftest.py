"""Playwright driving Debian's Chromium against the session's real gateway; a failing test saves a screenshot."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.helpers import DESKTOP

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_console_errors: the journey provokes errors on purpose")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM}: `apt-get install chromium` (make test does it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
def viewport() -> dict[str, int]:
    """Desktop unless a test is parametrized with `viewport` (DESKTOP, PHONE)."""
    return DESKTOP


@pytest.fixture
async def context(browser: Browser, clean: None, viewport: dict[str, int]) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    elif report is not None and report.passed and not request.node.get_closest_marker("allow_console_errors"):
        scripting = [e for e in errors if "Failed to load resource" not in e]
        assert not scripting, f"script errors or CSP violations on the page: {scripting}"
