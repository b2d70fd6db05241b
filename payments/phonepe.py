"""An async client for PhonePe's v2 Standard Checkout API on httpx: OAuth token (cached until it expires),
pay, order status, refund and refund status. Amounts are integer paise.

Not the official SDK (phonepe-pg-sdk-python): it is synchronous, starts threads, and pins requests 2.31
and urllib3 1.26.12, which have known CVEs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
import msgspec

from core.errors import AppError


class PhonePeError(AppError):
    reason = "payment_gateway_error"

    @property
    def status(self) -> int:
        """PhonePe's HTTP status; 0 when it could not be reached (then nobody knows what it did)."""
        return int(self.extra.get("status", 0))


class PayResult(msgspec.Struct):
    orderId: str  # noqa: N815  (PhonePe's field names)
    state: str
    redirectUrl: str  # noqa: N815
    expireAt: int = 0  # noqa: N815


class OrderStatus(msgspec.Struct):
    orderId: str  # noqa: N815
    state: str  # PENDING | COMPLETED | FAILED
    amount: int
    expireAt: int = 0  # noqa: N815
    merchantOrderId: str = ""  # noqa: N815
    paymentDetails: list[dict[str, Any]] = []  # noqa: N815
    errorCode: str = ""  # noqa: N815


class RefundResult(msgspec.Struct):
    refundId: str  # noqa: N815
    state: str  # PENDING | COMPLETED | FAILED
    amount: int


def webhook_authorization(username: str, password: str) -> str:
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def verify_webhook_authorization(header: str, username: str, password: str) -> bool:
    """PhonePe sends SHA256(username:password) in Authorization; compared in constant time."""
    value = header.strip()
    if value.lower().startswith("sha256 "):
        value = value[7:].strip()
    return hmac.compare_digest(value.lower().encode(), webhook_authorization(username, password).encode())


class PhonePeClient:
    def __init__(
        self, http: httpx.AsyncClient, base_url: str, client_id: str, client_secret: str, client_version: int
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_version = client_version
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _access_token(self) -> str:
        async with self._lock:
            if self._token and time.time() < self._expires_at - 60:
                return self._token
            response = await self._send(
                "POST",
                "/v1/oauth/token",
                data={
                    "client_id": self.client_id,
                    "client_version": str(self.client_version),
                    "client_secret": self.client_secret,
                    "grant_type": "client_credentials",
                },
                auth=False,
            )
            self._token = str(response["access_token"])
            self._expires_at = float(response.get("expires_at") or time.time() + 300)
            return self._token

    async def _send(
        self, method: str, path: str, *, json: Any = None, data: Any = None, auth: bool = True
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"O-Bearer {await self._access_token()}"
        try:
            response = await self.http.request(
                method, self.base_url + path, json=json, data=data, headers=headers, timeout=10
            )
        except httpx.HTTPError as exc:
            raise PhonePeError(f"PhonePe could not be reached: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            code = ""
            try:
                code = str(response.json().get("code", ""))
            except ValueError:
                pass
            raise PhonePeError(f"PhonePe answered {response.status_code} {code}".strip(), status=response.status_code)
        body: dict[str, Any] = response.json()
        return body

    async def pay(
        self,
        merchant_order_id: str,
        amount_paise: int,
        redirect_url: str,
        *,
        expire_after_s: int = 1200,
        meta: dict[str, str] | None = None,
    ) -> PayResult:
        body = {
            "merchantOrderId": merchant_order_id,
            "amount": amount_paise,
            "expireAfter": expire_after_s,
            "metaInfo": meta or {},
            "paymentFlow": {
                "type": "PG_CHECKOUT",
                "message": "Solution Finder Pro",
                "merchantUrls": {"redirectUrl": redirect_url},
            },
        }
        return msgspec.convert(await self._send("POST", "/checkout/v2/pay", json=body), PayResult)

    async def order_status(self, merchant_order_id: str) -> OrderStatus:
        data = await self._send("GET", f"/checkout/v2/order/{merchant_order_id}/status")
        return msgspec.convert(data, OrderStatus)

    async def refund(self, merchant_refund_id: str, merchant_order_id: str, amount_paise: int) -> RefundResult:
        body = {
            "merchantRefundId": merchant_refund_id,
            "originalMerchantOrderId": merchant_order_id,
            "amount": amount_paise,
        }
        return msgspec.convert(await self._send("POST", "/payments/v2/refund", json=body), RefundResult)

    async def refund_status(self, merchant_refund_id: str) -> RefundResult:
        data = await self._send("GET", f"/payments/v2/refund/{merchant_refund_id}/status")
        return msgspec.convert(data, RefundResult)
