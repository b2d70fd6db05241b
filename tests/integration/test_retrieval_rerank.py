"""The Bedrock reranker through the real aioboto3 bedrock-agent-runtime client against the local fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.settings import Settings, load_settings
from dev.servers import free_port
from search_worker.rerankers import BedrockReranker, RerankError
from tests.fakes.bedrock import Script, create_app


@pytest.fixture
async def rerank_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Script, Settings]]:
    script = Script()
    runner = web.AppRunner(create_app(script))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    yield script, load_settings({"RERANKER": "bedrock", "BEDROCK_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    await runner.cleanup()


async def test_rerank_scores_come_back_in_document_order(rerank_server: tuple[Script, Settings]) -> None:
    script, settings = rerank_server
    documents = ["stop idle servers at night", "resize images behind a cdn", "images"]
    relevance = await BedrockReranker(settings).rerank("resize images cdn", documents)
    assert relevance == pytest.approx([0.0, 1.0, 1 / 3])
    body = script.calls[-1]["body"]
    model = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"]["modelArn"]
    assert model == "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"
    assert [s["inlineDocumentSource"]["textDocument"]["text"] for s in body["sources"]] == documents


async def test_throttled_rerank_raises_our_error(rerank_server: tuple[Script, Settings]) -> None:
    script, settings = rerank_server
    script.plan = ["throttle"]
    with pytest.raises(RerankError):
        await BedrockReranker(settings).rerank("resize images", ["a", "b"])
