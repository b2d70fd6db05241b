"""The Bedrock answerer through the real aioboto3 client against a local ConverseStream server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.messages import SourceItem
from core.settings import load_settings
from dev.servers import free_port
from search_worker.answerers import AnswerError, AnswerUsage, BedrockAnswerer, ThrottledError, parse_citations
from tests.fakes.bedrock import Script, create_app

SOURCES = [
    SourceItem(
        id="solution/serverless-image-handler",
        title="Serverless Image Handler",
        url="u",
        summary="Resize images on the fly.",
        score=1.0,
        services=["Amazon CloudFront"],
    )
]


@pytest.fixture
async def bedrock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Script, BedrockAnswerer]]:
    script = Script()
    runner = web.AppRunner(create_app(script))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = load_settings({"ANSWER_PROVIDER": "bedrock", "BEDROCK_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    yield script, BedrockAnswerer(settings, backoff_s=0.01)
    await runner.cleanup()


async def collect(answerer: BedrockAnswerer, usage: AnswerUsage) -> str:
    return "".join([piece async for piece in answerer.stream("resize images", SOURCES, usage)])


async def test_normal_stream_with_padding_gives_text_citations_and_usage(
    bedrock: tuple[Script, BedrockAnswerer],
) -> None:
    script, answerer = bedrock
    usage = AnswerUsage()
    text = await collect(answerer, usage)
    assert text == "Use the Serverless Image Handler [1]."
    assert parse_citations(text, SOURCES) == ["solution/serverless-image-handler"]
    assert (usage.input_tokens, usage.output_tokens, usage.model_latency_ms) == (321, 12, 456)
    call = script.calls[0]
    assert call["model"] == "amazon.nova-pro-v1:0"
    assert "[1] Serverless Image Handler" in call["body"]["messages"][0]["content"][0]["text"]
    assert "cite" in call["body"]["system"][0]["text"]
    assert call["auth"].startswith("AWS4-HMAC-SHA256")  # the real client signed it


async def test_throttling_before_the_first_token_is_retried(bedrock: tuple[Script, BedrockAnswerer]) -> None:
    script, answerer = bedrock
    script.plan = ["throttle", "throttle", "ok"]
    assert await collect(answerer, AnswerUsage()) == "Use the Serverless Image Handler [1]."
    assert len(script.calls) == 3


async def test_throttling_that_never_ends_is_a_throttled_error(bedrock: tuple[Script, BedrockAnswerer]) -> None:
    script, answerer = bedrock
    script.plan = ["throttle"]
    with pytest.raises(ThrottledError):
        await collect(answerer, AnswerUsage())
    assert len(script.calls) == answerer.max_attempts


async def test_an_exception_frame_mid_stream_fails_without_retry(bedrock: tuple[Script, BedrockAnswerer]) -> None:
    script, answerer = bedrock
    script.plan = ["midstream_error", "ok"]
    pieces: list[str] = []
    with pytest.raises(AnswerError) as failure:
        async for piece in answerer.stream("q", SOURCES, AnswerUsage()):
            pieces.append(piece)
    assert pieces == ["Use ", "the Serverless "]
    assert "modelStreamErrorException" in str(failure.value)
    assert len(script.calls) == 1  # tokens were already shown: no retry


async def test_a_stream_without_message_stop_is_a_failure(bedrock: tuple[Script, BedrockAnswerer]) -> None:
    script, answerer = bedrock
    script.plan = ["truncated"]
    with pytest.raises(AnswerError) as failure:
        await collect(answerer, AnswerUsage())
    assert failure.value.reason == "model_truncated"


async def test_titan_embedder_through_invoke_model(bedrock: tuple[Script, BedrockAnswerer]) -> None:
    import numpy as np

    from search_worker.embedders import TitanEmbedder

    script, answerer = bedrock
    embedder = TitanEmbedder(answerer.settings)
    vectors = await embedder.embed(["resize images", "stop idle servers"])
    assert vectors.shape == (2, 1024)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert script.calls[-1]["model"] == "amazon.titan-embed-text-v2:0"
    assert script.calls[-1]["body"]["dimensions"] == 1024
