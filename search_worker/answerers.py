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


# Words a question shares with every sentence: they cannot tell which sentence answers it.
_STOPWORDS = frozenset(
    "the and for with from that this these those into onto over your our their you can how what when where which "
    "who why are was were has have had not but all any each its use using via per like so than then them they "
    "get make want need let lets".split()
)
# A sentence break, except after "i.e." / "e.g." / "etc.", which end abbreviations, not sentences.
_SENTENCE = re.compile(r"(?<!i\.e\.)(?<!e\.g\.)(?<!etc\.)(?<=[.!?])\s+")
_LABEL = re.compile(r"^[A-Za-z][\w -]{1,28}:\s+")  # "Summary: ", "IMPORTANT: ", "v2 Architecture Update: "
_BOILERPLATE = re.compile(
    r"^(welcome to|this (repo|repository|project)|source code for|note:|see |to learn more|important:)"
    r"|publishing guidelines|replaced this solution|codecommit",
    re.I,
)
# Sentences that set the scene (the problem, an example, a date) rather than say what the entry does:
# used only when nothing else shares the question's words.
_SCENE = re.compile(
    r"^(for example|for instance|however|this is (useful|important|because)|in (january|february|march|april|may|"
    r"june|july|august|september|october|november|december) \d{4}|traditional|many |most |organi[sz]ations |"
    r"customers |companies |businesses |enterprises |today|with the |when |while |as |there (is|are) |managing |"
    r"knowing |in today|the (sam|cdk) (template|stack)|this (sam|cdk) (template|stack))",
    re.I,
)
_LONG = 240  # characters: a longer sentence is cut at a clause


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def _candidates(text: str) -> list[str]:
    sentences = []
    for raw in _SENTENCE.split(text):
        sentence = _LABEL.sub("", raw.strip(), count=1)
        if 20 <= len(sentence) <= 600 and not _BOILERPLATE.search(sentence):
            sentences.append(sentence)
    return sentences[:8]


def _best_sentence(text: str, query_words: set[str]) -> str:
    """A sentence that says what the entry does (not the scene it sets: the problem, an example, a date)
    and, of those, the one that shares most of the question's content words, then the earlier one."""
    sentences = _candidates(text)
    if not sentences:
        return ""
    return max(
        sentences,
        key=lambda s: (not _SCENE.match(s), len(_words(s) & query_words), -sentences.index(s)),
    )


def _as_it(sentence: str, title: str) -> str:
    """ "QnABot on AWS is a chatbot" under the bold title "QnABot on AWS" reads "It is a chatbot" (only
    before a verb: "<title> after a timeout" stays as it is)."""
    match = re.match(
        rf"(the )?{re.escape(title)}( solution| guidance| pattern| construct)? (?=(is|are|can|will|[a-z]+s)\b)",
        sentence,
        re.I,
    )
    if match is None or sentence[match.end() :].startswith(("its ", "this ", "as ")):
        return sentence
    return "It " + sentence[match.end() :]


def _finished(sentence: str) -> str:
    """A whole sentence under _LONG characters, cut at a clause when longer; where the catalog's own text
    was cut off ("…"), it ends at the last whole clause or word, still marked."""
    if len(sentence) > _LONG:
        cut = max(sentence.rfind(mark, 80, _LONG) for mark in (", ", "; ", " – ", " — ", " ("))
        if cut > 0:
            return sentence[:cut].rstrip(" ,;(–—") + "."
        sentence = sentence[: sentence.rfind(" ", 80, _LONG)] + "…"
    if sentence.endswith((".", "!", "?")):
        return sentence
    if not sentence.endswith(("…", "...")):
        return sentence + "."
    text = sentence.rstrip(" .…")
    if text.count("(") > text.count(")"):
        text = text[: text.rfind("(")]
    return text.rstrip(" ,;:-–—") + "…"


NO_MATCH_ANSWER = (
    "No matching solution in the catalog for this question, so it was not counted against your searches. "
    "Try describing the workload and what it should do on AWS, for example “resize images on the fly behind "
    "CloudFront” or “stop EC2 and RDS instances outside office hours”."
)
# Alternatives are listed only while they stay this close to the first pick's score.
_ALTERNATIVE_SHARE = 0.6


def _why(source: SourceItem, query_words: set[str]) -> tuple[str, str]:
    """The sentence of the entry's own summary that best says why it answers the question, and the same
    sentence as it stands in the catalog (to tell a repeat)."""
    sentence = _best_sentence(source.summary, query_words)
    return (_finished(_as_it(sentence, source.title)), _said(sentence)) if sentence else ("", "")


def _same_product(first: str, second: str) -> bool:
    return any(first in group and second in group for group in SAME_PRODUCT)


def _also(twins: list[tuple[int, SourceItem]], *, aside: bool = False) -> str:
    names = " and ".join(f"**{s.title}** [{n}]" for n, s in twins)
    if not names:
        return ""
    return f" (also listed as {names})" if aside else f", also listed as {names},"


def _said(sentence: str) -> str:
    """A sentence as words only, so that "invokes an SQS queue." and "invokes a SQS queue" compare alike."""
    return " ".join(w for w in _WORD.findall(sentence.lower()) if w not in ("a", "an", "the"))


class ExtractiveAnswerer:
    """Writes a grounded answer from the results' own words, with [n] citations, with no model at all."""

    mode = "extractive"

    def __init__(self, piece_delay_s: float = 0.02) -> None:
        self.piece_delay_s = piece_delay_s

    def compose(self, query: str, sources: list[SourceItem]) -> str:
        if not sources:
            return NO_MATCH_ANSWER
        query_words = _words(query)
        # One product under two catalog names is one entry, named once with both citations.
        entries: list[tuple[int, SourceItem, list[tuple[int, SourceItem]]]] = []
        for n, source in enumerate(sources, 1):
            twin = next((entry for entry in entries if _same_product(entry[1].id, source.id)), None)
            if twin is not None:
                twin[2].append((n, source))
            else:
                entries.append((n, source, []))
        (_, best, renamed), rest = entries[0], entries[1:]
        why, seen = _why(best, query_words)
        lines = [f"**{best.title}** [1]{_also(renamed)} is the closest fit. {why}".rstrip()]
        floor = best.score * _ALTERNATIVE_SHARE if best.score > 0 else float("-inf")
        said = {seen}
        items: list[str] = []
        for n, source, twins in rest:
            if source.score < floor or len(items) == 3:
                continue
            why, seen = _why(source, query_words)
            if seen and seen in said:
                continue  # the same words again (a pattern in another language): not a new alternative
            said.add(seen)
            items.append(f"- **{source.title}** [{n}]{_also(twins, aside=True)}" + (f": {why}" if why else ""))
        if items:
            lines += ["", "Other entries that cover part of it:", *items]
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
