"""The OpenAI-compatible answerer against a local /v1/chat/completions server streaming SSE chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.settings import load_settings
from dev.servers import free_port
from search_worker.answerers import AnswerError, AnswerUsage, OpenAIAnswerer
from tests.integration.test_bedrock import SOURCES


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[dict[str, object], str]]:
    state: dict[str, object] = {"finish": True, "requests": []}

    async def completions(request: web.Request) -> web.StreamResponse:
        state["requests"].append(await request.json())  # type: ignore[attr-defined]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ["Try ", "the Serverless Image Handler [1]."]:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if state["finish"]:
            await response.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
            usage = {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 9}}
            await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_streams_pieces_and_usage(endpoint: tuple[dict[str, object], str]) -> None:
    state, url = endpoint
    answerer = OpenAIAnswerer(load_settings({"OPENAI_BASE_URL": url, "OPENAI_MODEL": "llama3.1"}))
    usage = AnswerUsage()
    text = "".join([p async for p in answerer.stream("resize images", SOURCES, usage)])
    assert text == "Try the Serverless Image Handler [1]."
    assert (usage.input_tokens, usage.output_tokens) == (100, 9)
    request = state["requests"][0]  # type: ignore[index]
    assert request["model"] == "llama3.1" and request["stream"] is True


async def test_a_stream_that_stops_early_is_a_failure(endpoint: tuple[dict[str, object], str]) -> None:
    state, url = endpoint
    state["finish"] = False
    answerer = OpenAIAnswerer(load_settings({"OPENAI_BASE_URL": url}))
    with pytest.raises(AnswerError):
        _ = [p async for p in answerer.stream("q", SOURCES, AnswerUsage())]
