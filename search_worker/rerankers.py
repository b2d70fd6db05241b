"""Rerankers for the top of the retrieval list: the Bedrock Rerank API (amazon.rerank-v1:0)."""

from __future__ import annotations

from typing import Any

from core.errors import AppError
from core.settings import Settings


class RerankError(AppError):
    reason = "rerank_failed"


class BedrockReranker:
    """bedrock-agent-runtime Rerank through aioboto3: one call scores every document against the question."""

    name = "bedrock"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def model_arn(self) -> str:
        model = self._settings.rerank_model_id
        if model.startswith("arn:"):
            return model
        return f"arn:aws:bedrock:{self._settings.aws_region}::foundation-model/{model}"

    def _client(self) -> Any:
        import aioboto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "region_name": self._settings.aws_region,
            "config": Config(retries={"total_max_attempts": 2, "mode": "standard"}, read_timeout=10),
        }
        if self._settings.bedrock_endpoint_url:
            kwargs["endpoint_url"] = self._settings.bedrock_endpoint_url
        return aioboto3.Session().client("bedrock-agent-runtime", **kwargs)

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        """Relevance per document, in the documents' order."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not documents:
            return []
        request = {
            "queries": [{"type": "TEXT", "textQuery": {"text": query[:1000]}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d[:4000]}}}
                for d in documents
            ],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": len(documents),
                    "modelConfiguration": {"modelArn": self.model_arn()},
                },
            },
        }
        try:
            async with self._client() as client:
                response = await client.rerank(**request)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise RerankError(f"Bedrock rerank failed: {type(exc).__name__}") from exc
        relevance = [0.0] * len(documents)
        for item in response.get("results", []):
            index = int(item["index"])
            if 0 <= index < len(documents):
                relevance[index] = float(item["relevanceScore"])
        return relevance
