"""A local bedrock-runtime that speaks ConverseStream's wire format: AWS binary event-stream frames
(prelude with lengths and CRC32, typed headers, JSON payload, message CRC32) over HTTP, as the real
service does, so that the real aioboto3 client can be pointed at it with endpoint_url."""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", STRING, len(raw_value)) + raw_value
    return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: total length, headers length, prelude CRC, headers, payload, message CRC."""
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, data: dict[str, Any], *, padding: bool = True) -> bytes:
    if padding:  # Bedrock pads events with a random field "p" so their sizes leak nothing
        data = {**data, "p": secrets.token_urlsafe(secrets.randbelow(24) + 1)}
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, json.dumps(data).encode())


def exception(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())


@dataclass
class Script:
    """What the next calls do: 'ok', 'throttle' (HTTP 429 before any frame), 'midstream_error',
    'truncated' (stream ends without messageStop), 'slow' (no token until the test sets `release`)."""

    plan: list[str] = field(default_factory=lambda: ["ok"])
    text: list[str] = field(default_factory=lambda: ["Use ", "the Serverless ", "Image Handler [1]", "."])
    calls: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def next(self) -> str:
        return self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]


def create_app(script: Script) -> web.Application:
    async def converse_stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        script.calls.append(
            {"model": request.match_info["model"], "body": body, "auth": request.headers.get("Authorization", "")}
        )
        mode = script.next()
        if mode == "throttle":
            return web.json_response(
                {"message": "Too many requests, please wait before trying again."},
                status=429,
                headers={"x-amzn-ErrorType": "ThrottlingException"},
            )
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": secrets.token_hex(8)},
        )
        await response.prepare(request)
        await response.write(event("messageStart", {"role": "assistant"}))
        if mode == "slow":
            await script.release.wait()  # the caller's timeout, not a clock here, decides what happens
        for n, piece in enumerate(script.text):
            await response.write(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
            if mode == "midstream_error" and n == 1:
                await response.write(exception("modelStreamErrorException", "The model stream failed."))
                await response.write_eof()
                return response
        if mode == "truncated":
            await response.write_eof()
            return response
        await response.write(event("contentBlockStop", {"contentBlockIndex": 0}))
        await response.write(event("messageStop", {"stopReason": "end_turn"}))
        await response.write(
            event(
                "metadata",
                {"usage": {"inputTokens": 321, "outputTokens": 12, "totalTokens": 333}, "metrics": {"latencyMs": 456}},
                padding=False,
            )
        )
        await response.write_eof()
        return response

    async def invoke(request: web.Request) -> web.Response:
        """InvokeModel for Titan Text Embeddings v2: a deterministic vector per input text."""
        body = await request.json()
        script.calls.append({"model": request.match_info["model"], "body": body})
        seed = zlib.crc32(body["inputText"].encode())
        vector = [((seed * (i + 1)) % 1000) / 1000 - 0.5 for i in range(int(body.get("dimensions", 1024)))]
        return web.json_response({"embedding": vector, "inputTextTokenCount": len(body["inputText"].split())})

    async def rerank(request: web.Request) -> web.Response:
        """bedrock-agent-runtime Rerank: relevance = share of the query's words found in each document."""
        body = await request.json()
        script.calls.append({"operation": "rerank", "body": body})
        if script.next() == "throttle":
            return web.json_response(
                {"message": "Too many requests"}, status=429, headers={"x-amzn-ErrorType": "ThrottlingException"}
            )
        words = set(body["queries"][0]["textQuery"]["text"].lower().split())
        texts = [s["inlineDocumentSource"]["textDocument"]["text"].lower() for s in body["sources"]]
        scored = [(len(words & set(t.split())) / max(len(words), 1), i) for i, t in enumerate(texts)]
        limit = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"]
        ranked = sorted(scored, key=lambda item: -item[0])[:limit]
        return web.json_response({"results": [{"index": i, "relevanceScore": score} for score, i in ranked]})

    app = web.Application()
    app.router.add_post("/model/{model}/converse-stream", converse_stream)
    app.router.add_post("/model/{model}/invoke", invoke)
    app.router.add_post("/rerank", rerank)
    return app
