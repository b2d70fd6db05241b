"""Paying, selling and running the marketplace in the browser: pricing that knows who you are, billing
details, the payment page; a partner's listings and an admin's approvals and charts; catalog browsing."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.helpers import DESKTOP, api_register, csrf_header, make_admin, new_email, search, sign_in
from tests.conftest import Stack

pytestmark = pytest.mark.browser
GSTIN_MAHARASHTRA = "27AAPFU0939F1ZV"


async def test_anonymous_upgrade_asks_to_sign_in_and_comes_back(page: Page, stack: Stack) -> None:
    email = new_email("upgrade")
    await api_register(stack, email)
    await page.goto(f"{stack.base_url}/pricing")
    await expect(page.locator("#buy")).to_have_text("Log in to upgrade")
    await page.click("#buy")
    await page.wait_for_url(re.compile(r"/login\?next=%2Fpricing&why=upgrade$"))
    await expect(page.locator("#why")).to_contain_text("upgrade to Pro")
    await page.fill("#email", email)
    await page.fill("#password", "correct horse 1")
    await page.click("#login-submit")
    await page.wait_for_url(re.compile(r"/pricing$"))
    await expect(page.locator("#buy")).to_have_text("Upgrade to Pro")


async def test_buy_pro_with_billing_details_then_the_payment_page_says_what_was_bought(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    email = new_email("buyer")
    await api_register(stack, email)
    await sign_in(context, stack, email)
    await page.goto(f"{stack.base_url}/pricing")
    await expect(page.locator("#price")).to_have_text("₹499.00")
    await page.click("#buy")
    await expect(page.locator("#bill-name")).to_be_focused()
    await page.fill("#bill-name", "Acme Traders")
    await page.fill("#bill-address", "1 MG Road, Pune")
    await page.click("#pay")
    await expect(page.locator("#message")).to_have_text("Choose the state for the invoice.")
    await page.select_option("#bill-state", "29")
    await page.fill("#bill-gstin", GSTIN_MAHARASHTRA)
    await page.click("#pay")
    await expect(page.locator("#message")).to_contain_text("state's code")
    await page.fill("#bill-gstin", GSTIN_MAHARASHTRA[:-1] + "X")
    await page.select_option("#bill-state", "27")
    await page.click("#pay")
    await expect(page.locator("#message")).to_contain_text("GSTIN is not valid")
    await page.fill("#bill-gstin", GSTIN_MAHARASHTRA)
    await page.click("#pay")
    await page.wait_for_url(re.compile(r"/simulator/pay/"))
    await page.click("#pay")
    await page.wait_for_url(re.compile(r"/payments/return"))
    order = re.search(r"merchant_order_id=([A-Za-z0-9_-]+)", page.url).group(1)  # type: ignore[union-attr]
    await page.goto(f"{stack.base_url}/payments/{order}")
    await expect(page.locator("#payment-state")).to_have_attribute("data-state", "COMPLETED", timeout=15_000)
    await expect(page.locator("#amount")).to_have_text("₹499.00")
    await expect(page.locator("#invoice a")).to_have_attribute("href", f"/api/payments/{order}/invoice.pdf")
    await expect(page.locator("#pro-until")).to_be_visible()
    invoice = await context.request.get(f"{stack.base_url}/api/payments/{order}/invoice.pdf")
    assert invoice.status == 200 and (await invoice.body()).startswith(b"%PDF")

    # Pro users see their pass, and buying more time needs a confirmation.
    await page.goto(f"{stack.base_url}/pricing")
    await expect(page.locator("#current")).to_contain_text("You are")
    await expect(page.locator("#buy")).to_have_text("Add 30 more days")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.click("#buy")
    await expect(page.locator("#billing-form")).to_be_hidden()
    await page.goto(f"{stack.base_url}/account")
    await expect(page.locator("#tier")).to_have_text("pro")
    await expect(page.locator("#upgrade")).to_be_hidden()
    await expect(page.locator(f"#payments a[href='/payments/{order}']")).to_be_visible()


async def test_a_failed_payment_says_nothing_was_charged_and_offers_another_try(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    email = new_email("failer")
    await api_register(stack, email)
    await sign_in(context, stack, email)
    r = await context.request.post(
        f"{stack.base_url}/api/payments/checkout",
        data={"plan": "pro", "solution_id": "aws-solution-finder"},
        headers=await csrf_header(context),
    )
    assert r.status == 201, await r.text()
    order = (await r.json())["merchant_order_id"]
    assert (await context.request.post(f"{stack.env['PHONEPE_BASE_URL']}/simulator/orders/{order}/fail")).ok
    await page.goto(f"{stack.base_url}/payments/{order}")
    await expect(page.locator("#payment-state")).to_have_attribute("data-state", "FAILED", timeout=15_000)
    await expect(page.locator("#payment-text")).to_contain_text("Nothing was charged")
    await expect(page.locator("#next-steps a", has_text="Try again")).to_have_attribute(
        "href", "/pricing?solution_id=aws-solution-finder"
    )
    await page.goto(f"{stack.base_url}/payments/not-mine-123")
    await expect(page.locator("#payment-state")).to_have_attribute("data-state", "UNKNOWN")


async def test_a_partner_lists_edits_and_retires_a_solution_after_admin_approval(
    browser, page: Page, context: BrowserContext, stack: Stack
) -> None:  # type: ignore[no-untyped-def]
    partner_email, admin_email = new_email("seller"), new_email("admin")
    await api_register(stack, partner_email)
    await api_register(stack, admin_email)
    make_admin(stack, admin_email)
    await sign_in(context, stack, partner_email)
    await page.goto(f"{stack.base_url}/partners/apply")
    await page.fill("#company", "Acme Cloud")
    await page.fill("#website", "https://acme.example")
    await page.fill("#description", "A log analyzer that finds errors in CloudWatch.")
    await page.click("#apply-form button[type=submit]")
    await expect(page.locator("#mine li[data-status=pending]")).to_have_count(1)

    admin_context = await browser.new_context(viewport=DESKTOP)
    admin = await admin_context.new_page()
    await sign_in(admin_context, stack, admin_email)
    await admin.goto(f"{stack.base_url}/admin")
    await admin.locator("button[data-approve]").first.click()
    await expect(admin.locator("#message")).to_contain_text("approved")

    await page.goto(f"{stack.base_url}/partners/apply")
    await expect(page.locator("#approved a")).to_have_attribute("href", "/partners")
    await expect(page.locator("#nav-partners")).to_be_visible()
    await page.click("#approved a")
    await expect(page.locator("#no-listings")).to_be_visible()
    solution_id = new_email("log").split("@")[0]
    await page.fill("#f-id", solution_id)
    await page.fill("#f-name", "Log Analyzer")
    await page.fill("#f-description", "Finds errors in CloudWatch logs.")
    await page.fill("#f-price", "199")
    await page.click("#f-submit")
    await expect(page.locator(f"tr[data-solution={solution_id}]")).to_have_attribute("data-status", "pending")
    assert (await page.request.get(f"{stack.base_url}/api/solutions/{solution_id}")).status == 404

    await admin.reload()
    await admin.locator(f"button[data-approve-listing={solution_id}]").click()
    await expect(admin.locator("#message")).to_contain_text("is live")
    await admin_context.close()

    await page.reload()
    row = page.locator(f"tr[data-solution={solution_id}]")
    await expect(row).to_have_attribute("data-status", "active")
    await row.locator("button[data-edit]").click()
    await expect(page.locator("#f-name")).to_be_focused()
    await page.fill("#f-price", "249")
    await page.click("#f-submit")
    await expect(row).to_contain_text("₹249.00")
    await page.goto(f"{stack.base_url}/solutions")
    await expect(page.locator("#list a", has_text="Log Analyzer")).to_be_visible()
    await page.goto(f"{stack.base_url}/partners")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.locator(f"button[data-retire={solution_id}]").click()
    await expect(row).to_have_attribute("data-status", "retired")
    await page.goto(f"{stack.base_url}/solutions")
    await expect(page.locator("#list a", has_text="Log Analyzer")).to_have_count(0)


async def test_admin_analytics_are_drawn_as_charts_with_csv_links(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    email = new_email("charts")
    await api_register(stack, email)
    make_admin(stack, email)
    await page.goto(f"{stack.base_url}/search")
    await search(page, "resize images on the fly behind CloudFront")  # one anonymous search today
    await expect(page.locator("#answer")).not_to_be_empty()
    await sign_in(context, stack, email)
    await page.goto(f"{stack.base_url}/admin")
    await expect(page.locator("#nav-admin")).to_be_visible()
    for chart in ("revenue", "funnel", "searches"):
        await expect(page.locator(f"#chart-{chart} svg[role=img] title").first).not_to_be_empty()
    bars = page.locator("#chart-searches svg[role=img] rect.bar-b")
    await expect(bars).to_have_count(1)
    assert int(await bars.get_attribute("data-value") or 0) >= 1
    csv = page.locator("#chart-searches a[data-csv]")
    await expect(csv).to_have_attribute("href", "/api/admin/analytics/export/searches?days=30")
    response = await context.request.get(f"{stack.base_url}/api/admin/analytics/export/searches?days=30")
    assert response.ok and (await response.text()).startswith("day,anonymous,registered,pro")
    await page.select_option("#days", "7")
    await expect(csv).to_have_attribute("href", "/api/admin/analytics/export/searches?days=7")


async def test_the_catalog_can_be_filtered_by_words_category_and_service(page: Page, stack: Stack) -> None:
    await page.goto(f"{stack.base_url}/solutions")
    await expect(page.locator("#list a", has_text="AWS Solution Finder")).to_be_visible()
    count = page.locator("#catalog-count")
    await expect(count).to_contain_text("matches")
    everything = int((await count.inner_text()).split()[0])
    await page.select_option("#catalog-service", "Amazon CloudFront")
    await expect(count).not_to_contain_text(f"{everything} matches")
    for services in await page.locator("#catalog .services").all_inner_texts():
        assert "Amazon CloudFront" in services
    await page.fill("#catalog-q", "image")
    await page.press("#catalog-q", "Enter")
    await expect(page.locator("#catalog li").first).to_contain_text(re.compile("image", re.I))
    await page.reload()  # the filters live in the address
    await expect(page.locator("#catalog-service")).to_have_value("Amazon CloudFront")
    await expect(page.locator("#catalog-q")).to_have_value("image")
