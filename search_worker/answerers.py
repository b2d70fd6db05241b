"""Answer providers behind one interface: extractive (offline default), Bedrock ConverseStream, OpenAI."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from core.errors import AppError
from core.messages import SourceItem
from core.settings import Settings
from search_worker.vocabulary import SAME_PRODUCT

CITATION = re.compile(r"\[(\d{1,2})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")


class AnswerError(AppError):
    """The provider failed; `retryable` says whether nothing was streamed yet and a retry may help."""

    reason = "answer_failed"

    def __init__(self, message: str, *, reason: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, reason=reason)
        self.retryable = retryable


class ThrottledError(AnswerError):
    reason = "model_throttled"


@dataclass
class AnswerUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    model_latency_ms: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_latency_ms": self.model_latency_ms,
            **self.extra,
        }


class Answerer(Protocol):
    mode: str

    def stream(self, query: str, sources: list[SourceItem], usage: AnswerUsage) -> AsyncIterator[str]: ...


def parse_citations(answer: str, sources: list[SourceItem]) -> list[str]:
    """The ids of the sources the answer cites as [n], in order of first citation."""
    cited: list[str] = []
    for match in CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= len(sources) and sources[n - 1].id not in cited:
            cited.append(sources[n - 1].id)
    return cited


def build_prompt(query: str, sources: list[SourceItem]) -> tuple[str, str]:
    system = (
        "You are the AWS Solution Finder. Answer only from the numbered catalog entries the user "
        "message gives. Recommend the entries that fit the question, say briefly why, and cite each "
        "one as [n] right after the claim it supports. If none fit, say that no catalog entry matches. "
        "Do not invent solutions, services or links. Be concise: at most 150 words."
    )
    lines = [f"Question: {query}", "", "Catalog entries:"]
    for n, source in enumerate(sources, 1):
        services = ", ".join(source.services) or "n/a"
        lines.append(f"[{n}] {source.title} ({source.url})\nServices: {services}\n{source.summary}")
    return system, "\n".join(lines)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


_BOILERPLATE = re.compile(r"^(welcome to|this (repo|repository|project)|source code for|note:)", re.I)


def _best_sentence(text: str, query_words: set[str]) -> str:
    sentences = [
        s.strip() for s in _SENTENCE.split(text) if 20 <= len(s.strip()) <= 400 and not _BOILERPLATE.match(s.strip())
    ]
    if not sentences:
        return text.strip()[:300]
    return max(sentences[:8], key=lambda s: (len(_words(s) & query_words), -sentences.index(s)))


NO_MATCH_ANSWER = (
    "No matching solution in the catalog for this question, so it was not counted against your searches. "
    "Try describing the workload and what it should do on AWS, for example “resize images on the fly behind "
    "CloudFront” or “stop test servers at night”."
)
# Alternatives are listed only while they stay this close to the first pick's score.
_ALTERNATIVE_SHARE = 0.6


def _why(source: SourceItem, query_words: set[str]) -> str:
    """The sentence of the entry's own summary that shares most words with the question."""
    sentence = _best_sentence(source.summary, query_words).rstrip()
    if not sentence:
        return ""
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def _same_product(first: str, second: str) -> bool:
    return any(first in group and second in group for group in SAME_PRODUCT)


class ExtractiveAnswerer:
    """Writes a grounded answer from the results' own words, with [n] citations, with no model at all."""

    mode = "extractive"

    def __init__(self, piece_delay_s: float = 0.02) -> None:
        self.piece_delay_s = piece_delay_s

    def compose(self, query: str, sources: list[SourceItem]) -> str:
        if not sources:
            return NO_MATCH_ANSWER
        query_words = _words(query)
        best = sources[0]
        # One product under two catalog names is named once, with both citations, not listed as an
        # alternative that repeats the first pick's own description.
        renamed = [(n, s) for n, s in enumerate(sources[1:], 2) if _same_product(best.id, s.id)]
        also = "".join(f", also listed as **{s.title}** [{n}]," for n, s in renamed)
        lines = [f"**{best.title}** [1]{also} is the closest fit. {_why(best, query_words)}".rstrip()]
        floor = best.score * _ALTERNATIVE_SHARE if best.score > 0 else float("-inf")
        named = {n for n, _ in renamed}
        others = [(n, s) for n, s in enumerate(sources[1:], 2) if n not in named and s.score >= floor][:3]
        if others:
            lines.append("")
            lines.append("Other entries that cover part of it:")
            lines.extend(f"- **{s.title}** [{n}]: {_why(s, query_words)}".rstrip() for n, s in others)
        return "\n".join(lines)

    async def stream(self, query: str, sources: list[SourceItem], usage: AnswerUsage) -> AsyncIterator[str]:
        text = self.compose(query, sources)
        pieces = re.findall(r"\S+\s*", text)
        usage.output_tokens = len(pieces)
        for start in range(0, len(pieces), 2):
            yield "".join(pieces[start : start + 2])
            if self.piece_delay_s:
                await asyncio.sleep(self.piece_delay_s)


class BedrockAnswerer:
    """Amazon Bedrock ConverseStream through aioboto3; retries throttling only before the first token."""

    mode = "bedrock"

    def __init__(self, settings: Settings, *, max_attempts: int = 4, backoff_s: float = 0.25) -> None:
        self.settings = settings
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s

    def _client(self) -> Any:
        import aioboto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "region_name": self.settings.aws_region,
            # We retry throttling ourselves, and only while nothing has been streamed.
            "config": Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60),
        }
        if self.settings.bedrock_endpoint_url:
            kwargs["endpoint_url"] = self.settings.bedrock_endpoint_url
        return aioboto3.Session().client("bedrock-runtime", **kwargs)

    async def stream(self, query: str, sources: list[SourceItem], usage: AnswerUsage) -> AsyncIterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError, EventStreamError

        system, user = build_prompt(query, sources)
        request = {
            "modelId": self.settings.bedrock_model_id,
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "inferenceConfig": {"maxTokens": 600, "temperature": 0.2},
        }
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            streamed = False
            try:
                async with self._client() as client:
                    response = await client.converse_stream(**request)
                    stopped = False
                    async for event in response["stream"]:
                        if "contentBlockDelta" in event:
                            text = event["contentBlockDelta"]["delta"].get("text", "")
                            if text:
                                streamed = True
                                yield text
                        elif "messageStop" in event:
                            stopped = True
                        elif "metadata" in event:
                            meta = event["metadata"]
                            usage.input_tokens = int(meta.get("usage", {}).get("inputTokens", 0))
                            usage.output_tokens = int(meta.get("usage", {}).get("outputTokens", 0))
                            usage.model_latency_ms = int(
                                meta.get("metrics", {}).get("latencyMs", (time.perf_counter() - started) * 1000)
                            )
                    if not stopped:
                        raise AnswerError("the model's stream ended without messageStop", reason="model_truncated")
                    return
            except (ClientError, EventStreamError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
                throttled = code in {
                    "ThrottlingException",
                    "TooManyRequestsException",
                    "ServiceUnavailableException",
                }
                if throttled and not streamed and attempt < self.max_attempts:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                    continue
                if throttled:
                    raise ThrottledError(f"Bedrock throttled the request: {code}") from exc
                raise AnswerError(f"Bedrock failed: {code or type(exc).__name__}") from exc
            except (BotoCoreError, OSError, TimeoutError) as exc:  # connection lost, a frame cut short, ...
                raise AnswerError(f"Bedrock's stream broke: {type(exc).__name__}") from exc


class OpenAIAnswerer:
    """Any OpenAI-compatible streaming /v1/chat/completions endpoint (Ollama, vLLM, ...)."""

    mode = "openai"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def stream(self, query: str, sources: list[SourceItem], usage: AnswerUsage) -> AsyncIterator[str]:
        system, user = build_prompt(query, sources)
        headers = {"Authorization": f"Bearer {self.settings.openai_api_key}"} if self.settings.openai_api_key else {}
        body = {
            "model": self.settings.openai_model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        started = time.perf_counter()
        finished = False
        url = self.settings.openai_base_url.rstrip("/") + "/chat/completions"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5)) as client:
                async with client.stream("POST", url, json=body, headers=headers) as response:
                    if response.status_code == 429:
                        raise ThrottledError("the model endpoint throttled the request", retryable=True)
                    if response.status_code >= 400:
                        raise AnswerError(f"the model endpoint answered {response.status_code}")
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            finished = True
                            break
                        chunk = json.loads(data)
                        if chunk.get("usage"):
                            usage.input_tokens = int(chunk["usage"].get("prompt_tokens", 0))
                            usage.output_tokens = int(chunk["usage"].get("completion_tokens", 0))
                        for choice in chunk.get("choices", []):
                            text = (choice.get("delta") or {}).get("content")
                            if text:
                                yield text
                            if choice.get("finish_reason"):
                                finished = True
        except httpx.HTTPError as exc:
            raise AnswerError(f"the model endpoint failed: {type(exc).__name__}") from exc
        usage.model_latency_ms = int((time.perf_counter() - started) * 1000)
        if not finished:
            raise AnswerError("the model's stream ended early", reason="model_truncated")


def create_answerer(settings: Settings) -> Answerer:
    if settings.answer_provider == "bedrock":
        return BedrockAnswerer(settings)
    if settings.answer_provider == "openai":
        return OpenAIAnswerer(settings)
    return ExtractiveAnswerer(settings.extractive_piece_delay_s)
