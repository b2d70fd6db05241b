"""Who is calling: the signed anonymous cookie, hashed client addresses and the rate-limit headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ANON_COOKIE = "anon_id"


def _sign(secret: str, value: str) -> str:
    mac = hmac.new(secret.encode(), f"anon:{value}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def mint_anon_id(secret: str) -> tuple[str, str]:
    """Returns (anon_id, cookie value): the cookie carries an HMAC so that it cannot be forged."""
    anon_id = secrets.token_urlsafe(16)
    return anon_id, f"{anon_id}.{_sign(secret, anon_id)}"


def verify_anon_cookie(secret: str, cookie: str | None) -> str | None:
    if not cookie or "." not in cookie or len(cookie) > 200:
        return None
    anon_id, _, mac = cookie.rpartition(".")
    if hmac.compare_digest(mac, _sign(secret, anon_id)):
        return anon_id
    return None


def ratelimit_headers(policy: str, limit: int, remaining: int, window_s: int) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers fields for one policy."""
    quota = limit if limit >= 0 else 1_000_000_000
    left = remaining if remaining >= 0 else quota
    window = max(1, window_s)
    return {
        "RateLimit-Policy": f'"{policy}";q={quota};w={window}',
        "RateLimit": f'"{policy}";r={left};t={window}',
    }
