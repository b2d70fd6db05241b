"""A local PhonePe: the v2 Standard Checkout endpoints, a payment page with Pay and Fail buttons, control
endpoints for scripts and tests, and webhooks signed as PhonePe signs them. `python -m payments.simulator`.

Misbehaviour for tests: POST /simulator/orders/{id}/complete?webhook=normal|duplicate|late|missing|out_of_order
and ?amount_delta=-100 (the order then reports another amount than was asked for);
POST /simulator/orders/{id}/expire (its time runs out unpaid, as if the buyer walked away);
POST /simulator/orders/{id}/refund-outcome?state=FAILED (how its next refund ends);
GET /simulator/refunds (every refund call received, in order).
"""

from __future__ import annotations

import asyncio
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect

from core.logs import log_config
from core.settings import Settings, load_settings
from payments.phonepe import webhook_authorization


@dataclass
class Order:
    merchant_order_id: str
    order_id: str
    amount: int
    redirect_url: str
    expire_at_ms: int
    state: str = "PENDING"
    reported_amount: int = 0
    payment_details: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Refund:
    merchant_refund_id: str
    refund_id: str
    merchant_order_id: str
    amount: int
    state: str = "PENDING"


@dataclass
class Simulator:
    settings: Settings
    webhook_url: str
    orders: dict[str, Order] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    refund_calls: list[dict[str, Any]] = field(default_factory=list)
    refund_outcomes: dict[str, str] = field(default_factory=dict)  # merchant order id -> COMPLETED | FAILED

    def status_body(self, order: Order) -> dict[str, Any]:
        return {
            "orderId": order.order_id,
            "state": order.state,
            "merchantOrderId": order.merchant_order_id,
            "amount": order.reported_amount or order.amount,
            "expireAt": order.expire_at_ms,
            "paymentDetails": order.payment_details,
        }

    async def deliver(self, event: str, payload: dict[str, Any], *, delay_s: float = 0.0, times: int = 1) -> None:
        async def send() -> None:
            await asyncio.sleep(delay_s)
            headers = {
                "Authorization": webhook_authorization(
                    self.settings.phonepe_webhook_username, self.settings.phonepe_webhook_password
                )
            }
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(times):
                    try:
                        r = await http.post(
                            self.webhook_url, json={"event": event, "payload": payload}, headers=headers
                        )
                        self.delivered.append({"event": event, "status": r.status_code})
                    except httpx.HTTPError as exc:
                        self.delivered.append({"event": event, "error": type(exc).__name__})

        task = asyncio.create_task(send())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _sim(request: Request[Any, Any, Any]) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


def _error(status: int, code: str, message: str) -> Response[Any]:
    return Response({"code": code, "message": message, "success": False}, status_code=status)


def _authorised(request: Request[Any, Any, Any]) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme == "O-Bearer" and token in _sim(request).tokens


@post("/v1/oauth/token", status_code=200)
async def oauth_token(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    sim = _sim(request)
    if (
        form.get("client_id") != sim.settings.phonepe_client_id
        or form.get("client_secret") != sim.settings.phonepe_client_secret
        or form.get("grant_type") != "client_credentials"
    ):
        return _error(401, "INVALID_CLIENT", "Client authentication failed")
    token = secrets.token_urlsafe(24)
    sim.tokens.add(token)
    expires_at = int(time.time()) + 3600
    return Response(
        {
            "access_token": token,
            "encrypted_access_token": token,
            "expires_in": None,
            "issued_at": int(time.time()),
            "expires_at": expires_at,
            "session_expires_at": expires_at,
            "token_type": "O-Bearer",
        }
    )


@post("/checkout/v2/pay", status_code=200)
async def pay(request: Request[Any, Any, Any]) -> Response[Any]:
    if not _authorised(request):
        return _error(401, "UNAUTHORIZED", "Invalid token")
    body = await request.json()
    sim = _sim(request)
    merchant_order_id = str(body.get("merchantOrderId", ""))
    amount = body.get("amount")
    if not merchant_order_id or not isinstance(amount, int) or amount < 100:
        return _error(400, "BAD_REQUEST", "merchantOrderId and amount (>= 100 paise) are required")
    if merchant_order_id in sim.orders:
        return _error(409, "DUPLICATE_ORDER", "merchantOrderId already used")
    redirect = str(body.get("paymentFlow", {}).get("merchantUrls", {}).get("redirectUrl", ""))
    expire_after = int(body.get("expireAfter") or 1200)
    order = Order(
        merchant_order_id,
        f"OMO{secrets.token_hex(8).upper()}",
        amount,
        redirect,
        int((time.time() + expire_after) * 1000),
    )
    sim.orders[merchant_order_id] = order
    # The payment page is opened by the browser, which may know the simulator by another name.
    base = (sim.settings.simulator_public_url or str(request.base_url)).rstrip("/")
    return Response(
        {
            "orderId": order.order_id,
            "state": "PENDING",
            "expireAt": order.expire_at_ms,
            "redirectUrl": f"{base}/simulator/pay/{merchant_order_id}",
        }
    )


@get("/checkout/v2/order/{merchant_order_id:str}/status")
async def order_status(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    if not _authorised(request):
        return _error(401, "UNAUTHORIZED", "Invalid token")
    order = _sim(request).orders.get(merchant_order_id)
    if order is None:
        return _error(404, "ORDER_NOT_FOUND", "No such order")
    if order.state == "PENDING" and order.expire_at_ms < time.time() * 1000:
        order.state = "FAILED"
    return Response(_sim(request).status_body(order))


@get("/simulator/pay/{merchant_order_id:str}")
async def payment_page(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[str]:
    order = _sim(request).orders.get(merchant_order_id)
    if order is None:
        return Response("<p>No such order.</p>", media_type="text/html", status_code=404)
    rupees = f"₹{order.amount / 100:,.2f}"
    oid = html.escape(merchant_order_id)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PhonePe simulator</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui; max-width: 28rem; margin: 2rem auto">
<h1>PhonePe simulator</h1><p>Order <code>{oid}</code>: <strong id="amount">{rupees}</strong></p>
<form method="post" action="/simulator/orders/{oid}/complete"><button id="pay" type="submit">Pay {rupees}</button></form>
<form method="post" action="/simulator/orders/{oid}/fail"><button id="fail" type="submit">Fail</button></form>
<p>This is a local stand-in for PhonePe's payment page; no money moves.</p></body></html>"""
    return Response(page, media_type="text/html")


async def _settle(request: Request[Any, Any, Any], merchant_order_id: str, state: str) -> Response[Any]:
    sim = _sim(request)
    order = sim.orders.get(merchant_order_id)
    if order is None:
        return _error(404, "ORDER_NOT_FOUND", "No such order")
    params = request.query_params
    webhook = params.get("webhook", "normal")
    order.state = state
    if params.get("amount_delta"):
        order.reported_amount = order.amount + int(params["amount_delta"])
    # Both buttons are a payment attempt: PhonePe lists it under paymentDetails.
    order.payment_details = [
        {
            "paymentMode": "UPI_INTENT",
            "transactionId": f"OM{secrets.token_hex(6)}",
            "timestamp": int(time.time() * 1000),
            "amount": order.amount,
            "state": state,
            **({} if state == "COMPLETED" else {"errorCode": "PAYMENT_ERROR", "detailedErrorCode": "XC"}),
        }
    ]
    event = "checkout.order.completed" if state == "COMPLETED" else "checkout.order.failed"
    payload = sim.status_body(order)
    if webhook == "duplicate":
        await sim.deliver(event, payload, times=3)
    elif webhook == "late":
        await sim.deliver(event, payload, delay_s=2.0)
    elif webhook == "out_of_order":
        stale = {**payload, "state": "FAILED" if state == "COMPLETED" else "COMPLETED"}
        await sim.deliver(
            "checkout.order.failed" if state == "COMPLETED" else "checkout.order.completed", stale, delay_s=0.5
        )
        await sim.deliver(event, payload)
    elif webhook != "missing":
        await sim.deliver(event, payload)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        target = order.redirect_url or "/"
        return Redirect(target, status_code=303)
    return Response({"merchantOrderId": merchant_order_id, "state": state, "webhook": webhook})


@post("/simulator/orders/{merchant_order_id:str}/complete", status_code=200)
async def complete(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    return await _settle(request, merchant_order_id, "COMPLETED")


@post("/simulator/orders/{merchant_order_id:str}/fail", status_code=200)
async def fail(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    return await _settle(request, merchant_order_id, "FAILED")


@post("/simulator/orders/{merchant_order_id:str}/expire", status_code=200)
async def expire(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    """The order's time runs out with nobody having paid: FAILED without attempts, and the webhook."""
    sim = _sim(request)
    order = sim.orders.get(merchant_order_id)
    if order is None:
        return _error(404, "ORDER_NOT_FOUND", "No such order")
    order.expire_at_ms = int(time.time() * 1000) - 1
    order.state = "FAILED"
    if request.query_params.get("webhook", "normal") != "missing":
        await sim.deliver("checkout.order.failed", sim.status_body(order))
    return Response({"merchantOrderId": merchant_order_id, "state": order.state})


@post("/simulator/orders/{merchant_order_id:str}/refund-outcome", status_code=200)
async def refund_outcome(merchant_order_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.query_params.get("state", "COMPLETED")
    if state not in ("COMPLETED", "FAILED"):
        return _error(400, "BAD_REQUEST", "state is COMPLETED or FAILED")
    _sim(request).refund_outcomes[merchant_order_id] = state
    return Response({"merchantOrderId": merchant_order_id, "refundOutcome": state})


@get("/simulator/refunds")
async def refund_calls(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    return _sim(request).refund_calls


@post("/payments/v2/refund", status_code=200)
async def refund(request: Request[Any, Any, Any]) -> Response[Any]:
    if not _authorised(request):
        return _error(401, "UNAUTHORIZED", "Invalid token")
    body = await request.json()
    sim = _sim(request)
    sim.refund_calls.append(
        {
            "merchantRefundId": str(body.get("merchantRefundId", "")),
            "originalMerchantOrderId": str(body.get("originalMerchantOrderId", "")),
            "amount": body.get("amount"),
            "at_ms": int(time.time() * 1000),
        }
    )
    order = sim.orders.get(str(body.get("originalMerchantOrderId", "")))
    if order is None or order.state != "COMPLETED":
        return _error(400, "INVALID_REFUND", "Only a completed order can be refunded")
    amount = int(body.get("amount", 0))
    if amount < 100 or amount > order.amount:
        return _error(400, "INVALID_REFUND_AMOUNT", "Refund amount out of range")
    merchant_refund_id = str(body.get("merchantRefundId", ""))
    item = sim.refunds.get(merchant_refund_id) or Refund(
        merchant_refund_id, f"OMR{secrets.token_hex(8).upper()}", order.merchant_order_id, amount
    )
    sim.refunds[merchant_refund_id] = item

    outcome = sim.refund_outcomes.pop(order.merchant_order_id, "COMPLETED")

    async def finish() -> None:
        await asyncio.sleep(0.3)
        item.state = outcome
        await sim.deliver(
            "pg.refund.completed" if outcome == "COMPLETED" else "pg.refund.failed",
            {
                "merchantRefundId": merchant_refund_id,
                "refundId": item.refund_id,
                "originalMerchantOrderId": item.merchant_order_id,
                "amount": item.amount,
                "state": outcome,
            },
        )

    task = asyncio.create_task(finish())
    sim.tasks.add(task)
    task.add_done_callback(sim.tasks.discard)
    return Response({"refundId": item.refund_id, "amount": item.amount, "state": item.state})


@get("/payments/v2/refund/{merchant_refund_id:str}/status")
async def refund_status(merchant_refund_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    if not _authorised(request):
        return _error(401, "UNAUTHORIZED", "Invalid token")
    item = _sim(request).refunds.get(merchant_refund_id)
    if item is None:
        return _error(404, "REFUND_NOT_FOUND", "No such refund")
    return Response(
        {
            "refundId": item.refund_id,
            "amount": item.amount,
            "state": item.state,
            "originalMerchantOrderId": item.merchant_order_id,
        }
    )


@get("/simulator/webhooks")
async def delivered(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    return _sim(request).delivered


def create_simulator(settings: Settings, webhook_url: str | None = None) -> Litestar:
    simulator = Simulator(settings, webhook_url or f"{settings.public_base_url}/api/payments/phonepe/webhook")
    return Litestar(
        route_handlers=[
            oauth_token,
            pay,
            order_status,
            payment_page,
            complete,
            fail,
            expire,
            refund_outcome,
            refund_calls,
            refund,
            refund_status,
            delivered,
        ],
        state=State({"simulator": simulator}),
        openapi_config=None,
    )


def main() -> None:
    settings = load_settings()
    app = create_simulator(settings, settings.simulator_webhook_url or None)
    uvicorn.run(
        app, host=settings.simulator_host, port=settings.simulator_port, log_config=log_config(), log_level="warning"
    )


if __name__ == "__main__":
    main()
