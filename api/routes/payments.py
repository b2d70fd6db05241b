"""Pro checkout through PhonePe, its verified webhook, the return page, receipts and admin refunds."""

from __future__ import annotations

import html
import logging
import re
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter
from msgspec import Meta

from api.routes.accounts import admin_user, session_user
from api.state import Services
from core.errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError, UnavailableError
from marketplace.catalog import CatalogStore, SolutionId
from payments.analytics import Analytics, compute, to_csv
from payments.checkout import Transaction, TransactionStore, begin_checkout, new_merchant_order_id
from payments.gst import STATES, valid_gstin
from payments.invoices import InvoiceIssuer
from payments.phonepe import PhonePeError, verify_webhook_authorization

log = logging.getLogger("payments")
ORDER_ID = r"^[A-Za-z0-9_-]{1,63}$"
# Query parameters take their bounds from Parameter: Litestar does not apply msgspec Meta to them.
Days = Annotated[int, Parameter(ge=1, le=366, description="Window in days, 1 to 366")]
OrderIdQuery = Annotated[str, Parameter(pattern=ORDER_ID, description="A merchant order id")]


class Billing(msgspec.Struct, forbid_unknown_fields=True):
    country: Annotated[str, Meta(pattern="^[A-Z]{2}$")] = "IN"
    state_code: Annotated[str, Meta(pattern="^[0-9]{2}$")] | None = None
    address: Annotated[str, Meta(max_length=300)] = ""
    postal_code: Annotated[str, Meta(pattern="^[A-Za-z0-9 -]{0,12}$")] = ""
    company_name: Annotated[str, Meta(max_length=120)] = ""
    gstin: Annotated[str, Meta(max_length=20)] = ""


class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    plan: Literal["pro"]
    solution_id: SolutionId
    billing: Billing | None = None


def checked_billing(billing: Billing | None, seller_state_code: str) -> Billing:
    """Billing details as the invoice will use them; a GSTIN must be valid and match the state."""
    billing = billing or Billing()
    if billing.country == "IN":
        state = billing.state_code or seller_state_code
        if state not in STATES:
            raise BadRequestError("Unknown Indian state code.", detail="billing.state_code")
        gstin = billing.gstin.strip().upper()
        if gstin:
            if not valid_gstin(gstin):
                raise BadRequestError(
                    "That GSTIN is not valid (format or check character).",
                    reason="invalid_gstin",
                    detail="billing.gstin",
                )
            if gstin[:2] != state:
                raise BadRequestError(
                    "The GSTIN belongs to another state than the billing state.",
                    reason="invalid_gstin",
                    detail="billing.gstin",
                )
        return msgspec.structs.replace(billing, state_code=state, gstin=gstin)
    if billing.gstin:
        raise BadRequestError("A GSTIN applies only to buyers in India.", detail="billing.gstin")
    return msgspec.structs.replace(billing, state_code=None)


class CheckoutCreated(msgspec.Struct):
    merchant_order_id: str
    redirect_url: str
    amount_paise: int


class PaymentView(msgspec.Struct):
    invoice_no: str
    merchant_order_id: str
    state: str  # PENDING | COMPLETED | FAILED | EXPIRED (nobody paid before the order expired)
    amount_paise: int
    solution_id: str
    created_at_ms: int
    pro_until: int  # when this order's pass ended or ends, as granted
    refund_state: str | None  # None | REQUESTED | PENDING | COMPLETED | FAILED
    flag: str
    pro_days: int = 0


class WebhookAck(msgspec.Struct):
    status: str


def view(txn: Transaction) -> PaymentView:
    return PaymentView(
        txn.invoice_no,
        txn.merchant_order_id,
        txn.state,
        txn.amount_paise,
        txn.solution_id,
        int(txn.created_at),
        txn.pro_until,
        txn.refund_state,
        txn.flag,
        txn.pro_days,
    )


@post("/api/payments/checkout", status_code=201, summary="Start a Pro purchase; returns PhonePe's payment URL")
async def checkout(data: CheckoutRequest, request: Request[Any, Any, Any], services: Services) -> CheckoutCreated:
    user = await session_user(request, services, csrf=True)
    if not user.verified:
        raise ForbiddenError("Verify your email address first.", reason="email_unverified")
    solution = await CatalogStore(services.dynamodb, services.settings).get(data.solution_id)
    if solution.status != "active":
        raise NotFoundError("That solution is not for sale.", reason="unknown_solution")
    settings = services.settings
    billing = checked_billing(data.billing, settings.seller_state_code)
    now_ms = int(time.time() * 1000)
    txn = Transaction(
        merchant_order_id=new_merchant_order_id(),
        user_id=user.user_id,
        email=user.email,
        solution_id=solution.solution_id,
        amount_paise=solution.price_paise,  # the price is ours, never the browser's
        state="PENDING",
        created_at=str(now_ms),
        expire_at=now_ms // 1000 + settings.payment_expire_after_s,
        next_check_at=now_ms / 1000 + 20 * settings.payment_poll_scale,
        buyer_name=user.name,
        billing_country=billing.country,
        billing_state_code=billing.state_code or "",
        billing_address=billing.address,
        billing_postal_code=billing.postal_code,
        billing_company=billing.company_name,
        billing_gstin=billing.gstin,
    )
    store = TransactionStore(services.dynamodb, settings)
    return_url = f"{settings.public_base_url}/payments/return?merchant_order_id={txn.merchant_order_id}"
    redirect_url = await begin_checkout(
        store, services.payments.phonepe, txn, return_url, settings.payment_expire_after_s
    )
    return CheckoutCreated(txn.merchant_order_id, redirect_url, txn.amount_paise)


@post("/api/payments/phonepe/webhook", status_code=200, summary="PhonePe's server-to-server callback")
async def phonepe_webhook(request: Request[Any, Any, Any], services: Services) -> WebhookAck:
    settings = services.settings
    if not verify_webhook_authorization(
        request.headers.get("authorization", ""), settings.phonepe_webhook_username, settings.phonepe_webhook_password
    ):
        raise UnauthorizedError("The webhook's Authorization header does not match.", reason="invalid_signature")
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return WebhookAck(status="ignored: not JSON")
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        return WebhookAck(status="ignored: no payload")
    event = str(body.get("event") or body.get("type") or "")
    order_id = str(payload.get("originalMerchantOrderId") or payload.get("merchantOrderId") or "")
    if not re.fullmatch(ORDER_ID, order_id):
        return WebhookAck(status="ignored: no order id")
    # The body only says which order to look at; what happened is asked of PhonePe itself.
    try:
        if "refund" in event.lower():
            await services.payments.settle_refund(order_id)
        else:
            await services.payments.reconcile(order_id)
    except PhonePeError as exc:
        log.warning("could not confirm order %s with PhonePe: %s; the poller will", order_id, exc)
    return WebhookAck(status="received")


@get("/payments/return", include_in_schema=False)
async def payment_return(
    request: Request[Any, Any, Any], services: Services, merchant_order_id: OrderIdQuery
) -> Response[str]:
    state = "UNKNOWN"
    try:
        user = await session_user(request, services, csrf=False)
        txn = await TransactionStore(services.dynamodb, services.settings).get(merchant_order_id)
        if txn is not None and txn.user_id == user.user_id:
            try:
                txn = await services.payments.reconcile(merchant_order_id) or txn
            except PhonePeError:
                pass
            state = txn.state
    except UnauthorizedError:
        pass
    messages = {
        "COMPLETED": ("Payment received", "You are now Pro: unlimited searches.", "/search"),
        "FAILED": ("Payment failed", "Nothing was upgraded. You can try again.", "/pricing"),
        "EXPIRED": ("Checkout expired", "This checkout was not paid in time; nothing was charged.", "/pricing"),
        "PENDING": (
            "Payment pending",
            "PhonePe has not confirmed the payment yet; this page will know soon.",
            f"/payments/return?merchant_order_id={merchant_order_id}",
        ),
        "UNKNOWN": ("Payment status unavailable", "Sign in with the account that paid to see this payment.", "/login"),
    }
    title, text, link = messages[state]
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/style.css"></head><body><main>'
        f'<h1 id="payment-title">{title}</h1><p id="payment-state" data-state="{state}">{html.escape(text)}</p>'
        f'<p><a href="{html.escape(link)}">Continue</a> · <a href="/account">Account</a></p></main></body></html>'
    )
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": "default-src 'self'", "Cache-Control": "no-store"},
    )


@get("/api/payments", summary="Your payments, newest first")
async def list_payments(request: Request[Any, Any, Any], services: Services) -> list[PaymentView]:
    user = await session_user(request, services, csrf=False)
    return [view(t) for t in await TransactionStore(services.dynamodb, services.settings).for_user(user.user_id)]


@get("/api/payments/{merchant_order_id:str}", summary="One of your payments (others get 404)")
async def get_payment(merchant_order_id: str, request: Request[Any, Any, Any], services: Services) -> PaymentView:
    user = await session_user(request, services, csrf=False)
    txn = await TransactionStore(services.dynamodb, services.settings).get(merchant_order_id[:63])
    if txn is None or txn.user_id != user.user_id:
        raise NotFoundError("No such payment.")
    return view(txn)


@get(
    "/api/payments/{merchant_order_id:str}/invoice.pdf",
    summary="Your tax invoice (owner only)",
    media_type="application/pdf",
)
async def invoice_pdf(merchant_order_id: str, request: Request[Any, Any, Any], services: Services) -> Response[bytes]:
    user = await session_user(request, services, csrf=False)
    txn = await TransactionStore(services.dynamodb, services.settings).get(merchant_order_id[:63])
    if txn is None or txn.user_id != user.user_id or not txn.invoice_no:
        raise NotFoundError("No invoice for that payment.")
    data = await InvoiceIssuer(services.dynamodb, services.settings).pdf(txn)
    filename = txn.invoice_no.replace("/", "_") + ".pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private"},
    )


@get("/api/admin/analytics", summary="Revenue, MRR, ARPU, Pro users, sign-ups, funnel, searches, no-match (admins)")
async def analytics(request: Request[Any, Any, Any], services: Services, days: Days = 30) -> Analytics:
    await admin_user(request, services, csrf=False)
    return await compute(services.dynamodb, services.redis, services.settings, days=days)


@get("/api/admin/analytics/export/{table:str}", summary="One analytics table as CSV (admins)", media_type="text/csv")
async def analytics_csv(
    table: str, request: Request[Any, Any, Any], services: Services, days: Days = 30
) -> Response[str]:
    await admin_user(request, services, csrf=False)
    if table not in ("revenue", "signups", "searches", "no_match"):
        raise NotFoundError("Tables: revenue, signups, searches, no_match.")
    body = to_csv(await compute(services.dynamodb, services.redis, services.settings, days=days), table)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{table}.csv"'},
    )


@post("/api/admin/payments/{merchant_order_id:str}/refund", status_code=200, summary="Refund a payment (admins)")
async def refund_payment(merchant_order_id: str, request: Request[Any, Any, Any], services: Services) -> PaymentView:
    """One refund per order at a time: concurrent requests get 409 refund_not_allowed, a FAILED refund
    may be requested again."""
    await admin_user(request, services, csrf=True)
    if not re.fullmatch(ORDER_ID, merchant_order_id):
        raise NotFoundError("No completed payment with that id.")
    try:
        after = await services.payments.refund(merchant_order_id)
    except PhonePeError as exc:
        raise UnavailableError("PhonePe refused or could not take the refund.", reason="refund_failed") from exc
    return view(after)


ROUTES = [
    checkout,
    phonepe_webhook,
    payment_return,
    list_payments,
    get_payment,
    invoice_pdf,
    refund_payment,
    analytics,
    analytics_csv,
]
