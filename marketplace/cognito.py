"""AUTH_PROVIDER=cognito: verifies Cognito User Pool JWTs (RS256) against the pool's JWKS."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from core.errors import UnauthorizedError
from core.settings import Settings

JWKS_TTL_S = 3600


class CognitoVerifier:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.jwks_url = settings.cognito_jwks_url
        self.issuer = settings.cognito_issuer
        self.audience = settings.cognito_audience
        self.http = http
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys or time.monotonic() - self._fetched_at > JWKS_TTL_S:
            response = await self.http.get(self.jwks_url, timeout=5)
            response.raise_for_status()
            self._keys = {k["kid"]: jwt.PyJWK(k).key for k in response.json().get("keys", []) if "kid" in k}
            self._fetched_at = time.monotonic()
        if kid not in self._keys:
            raise UnauthorizedError("The sign-in token was signed by an unknown key.", reason="invalid_jwt")
        return self._keys[kid]

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; id tokens must name our app client in `aud`, access tokens in `client_id`."""
        try:
            header = jwt.get_unverified_header(token)
            key = await self._key(str(header.get("kid", "")))
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iss", "sub", "token_use"]},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The sign-in token is not valid: {exc}.", reason="invalid_jwt") from exc
        except httpx.HTTPError as exc:
            raise UnauthorizedError("The sign-in keys could not be fetched.", reason="invalid_jwt") from exc
        use = claims.get("token_use")
        audience = claims.get("aud") if use == "id" else claims.get("client_id")
        if use not in ("id", "access") or audience != self.audience:
            raise UnauthorizedError("The sign-in token is for another application.", reason="invalid_jwt")
        return claims
