"""POST /api/validate-solution-token, the hot path other solutions call on every use.

It is a bare ASGI handler: Litestar still routes it and its errors still go through the one error
handler, but the body is read and decoded with msgspec directly and the answer is written as bytes,
because per-request framework work dominated this endpoint's cost (docs/benchmarks.md). Litestar leaves
ASGI handlers out of the OpenAPI schema, so `document_validator` adds the operation of a typed twin
(`validate_token_documented`, never routed) to the app's schema; the hot path is not touched.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, asgi, post
from litestar.datastructures import ResponseHeader, State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import Parameter
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from api.admission import admit, caller_for_grant
from api.errors import ERROR_STATUSES, BodyTooLargeError, ErrorBody, MethodNotAllowedError
from api.routes.accounts import QuotaInfo, ValidateRequest, ValidateResponse
from api.state import Services
from core.errors import BadRequestError, ForbiddenError

PATH = "/api/validate-solution-token"
MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_decoder = msgspec.json.Decoder(ValidateRequest)
_encoder = msgspec.json.Encoder()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        assert isinstance(chunk, bytes)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def decide(
    services: Services, data: ValidateRequest, body: bytes, key: str | None, client_ip: str
) -> tuple[ValidateResponse, dict[str, str]]:
    """The validator's decision and its RateLimit headers, whichever handler received the request."""
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequestError("Idempotency-Key must be 1-128 characters of [A-Za-z0-9._:-].", detail="Idempotency-Key")
    grant = await services.tokens.resolve(data.token, data.solution_id, client=await services.ip_hasher.hash(client_ip))
    if data.user_email is not None and data.user_email.strip().lower() != grant.email:
        raise ForbiddenError("The token belongs to another user than user_email.", reason="user_mismatch")
    caller = caller_for_grant(grant, client_ip)
    # A retry must be the same request: the key is bound to a hash of the body (the IETF draft's rule).
    fingerprint = hashlib.sha256(body).hexdigest()[:32] if key else ""
    admission = await admit(services, caller, check_only=data.check_only, idempotency_key=key, fingerprint=fingerprint)
    decision = admission.decision
    answer = ValidateResponse(
        allowed=True,
        user_email=grant.email,
        solution_id=data.solution_id,
        access_tier=grant.access_tier,
        quota_remaining=decision.remaining,
        quota=QuotaInfo(daily_limit=decision.limit, daily_used=decision.used, unlimited=decision.limit < 0),
        entitlement_status=grant.entitlement_status,
        created_at=grant.created_at,
    )
    return answer, admission.headers


@asgi(PATH, copy_scope=False)
async def validate_token(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method") == "OPTIONS":  # without an Origin (browsers' preflight is answered in api/cors.py)
        allow = [(b"allow", b"POST, OPTIONS"), (b"content-length", b"0")]
        await send(HTTPResponseStartEvent(type="http.response.start", status=204, headers=allow))
        await send(HTTPResponseBodyEvent(type="http.response.body", body=b"", more_body=False))
        return
    if scope.get("method") != "POST":
        raise MethodNotAllowedError("Use POST.", headers={"Allow": "POST, OPTIONS"})
    services: Services = scope["app"].state.services
    body = await _read_body(receive)
    try:
        data = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise BadRequestError("The request is malformed.", detail=str(exc)[:300]) from exc
    key = _header(scope, b"idempotency-key")
    client = scope.get("client")
    answer, rate_headers = await decide(services, data, body, key, client[0] if client else "unknown")
    body = _encoder.encode(answer)
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in rate_headers.items())
    await send(HTTPResponseStartEvent(type="http.response.start", status=200, headers=headers))
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))


VALIDATE_ERRORS = {
    400: "Malformed body (reason bad_request, with detail) or a malformed Idempotency-Key",
    401: "Unknown, revoked or expired token (reason invalid_token)",
    403: "The token's user has no active entitlement to solution_id (not_entitled, entitlement_inactive), "
    "or user_email names another user (user_mismatch)",
    405: "Any method but POST and OPTIONS (see Allow)",
    413: f"Body over {MAX_BODY_BYTES} bytes",
    422: "The Idempotency-Key was first used with another body (reason idempotency_key_reused)",
    429: "The day's quota is used up (reason daily_limit_exceeded, with limit, used and access_tier); "
    "nothing was counted",
    503: ERROR_STATUSES[503],
}
_RATE_HEADERS = [
    ResponseHeader(
        name="RateLimit-Policy",
        value='"registered";q=10;w=86400',
        documentation_only=True,
        description="The quota: q uses per w seconds",
    ),
    ResponseHeader(
        name="RateLimit",
        value='"registered";r=9;t=3600',
        documentation_only=True,
        description="What is left: r uses, t seconds to the reset",
    ),
]


@post(
    PATH,
    status_code=200,
    summary="Validate a solution token and count one use of its quota",
    description=(
        "The API other solutions call on every use. Counts one use unless check_only; a refused call counts "
        "nothing. An Idempotency-Key header makes a retried call count once. Answers any origin (CORS)."
    ),
    operation_id="validateSolutionToken",
    tags=["validator"],
    response_headers=_RATE_HEADERS,
    responses={
        status: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
        for status, text in VALIDATE_ERRORS.items()
    },
)
async def validate_token_documented(
    data: ValidateRequest,
    request: Request[Any, Any, Any],
    services: Services,
    idempotency_key: Annotated[
        str | None,
        Parameter(header="Idempotency-Key", max_length=128, pattern=IDEMPOTENCY_KEY.pattern, required=False),
    ] = None,
) -> Response[ValidateResponse]:
    """The typed twin of `validate_token`, with the same decision: the app routes the bare ASGI handler
    (for speed) and reads this one only for its OpenAPI operation."""
    body = msgspec.json.encode(data)
    client_ip = request.client.host if request.client else "unknown"
    answer, headers = await decide(services, data, body, idempotency_key, client_ip)
    return Response(answer, headers=headers)


def _app_services(state: State) -> Services:
    services: Services = state.services
    return services


def document_validator(app: Litestar) -> None:
    """Put the validator's operation (and the schemas it names) into the app's OpenAPI document."""
    twin = Litestar(
        [validate_token_documented],
        openapi_config=OpenAPIConfig(title="twin", version="0"),
        dependencies={"services": Provide(_app_services, sync_to_thread=False)},
        signature_namespace={"Services": Services, "Request": Request},
        logging_config=None,  # a default one would replace the root logger's JSON handler
    )
    twin_schema = twin.openapi_schema
    schema = app.openapi_schema
    assert schema.paths is not None and twin_schema.paths is not None
    schema.paths[PATH] = twin_schema.paths[PATH]
    schema.components.schemas = {**(twin_schema.components.schemas or {}), **(schema.components.schemas or {})}
