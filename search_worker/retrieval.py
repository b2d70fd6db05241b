"""Turns a question into ranked catalog entries: spelling and vocabulary expansion, dense and BM25 scores
fused after normalisation, renamed products merged, an optional Bedrock rerank, and the out-of-scope test."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from core.messages import SourceItem
from core.settings import Settings
from search_worker.embedders import Embedder, Vectors
from search_worker.index import LoadedIndex, tokenize
from search_worker.rerankers import BedrockReranker, RerankError
from search_worker.vocabulary import SAME_PRODUCT, Expansion

# Chosen on the tuning half (data/eval/eval_dev.jsonl + eval_tune.jsonl), never on the held-out half.
BM25_WEIGHT = 0.5  # keyword evidence, as a share of the best keyword score, against normalised dense
EXPANSION_WEIGHT = 0.5  # words a phrase stands for count half as much as the user's own words
OFF_TOPIC_WEIGHT = 0.5  # how much "nearer to everyday topics than to the catalog" lowers the scope score
FAMILY_GAP: float | None = 0.02  # a pattern's IaC/language variants rank just below their best sibling
RERANK_DEPTH = 20
_KEEP = 50  # ranked positions kept: enough for any k and the rerank window
log = logging.getLogger("search_worker")
T = TypeVar("T")


class Reranker(Protocol):
    name: str

    async def rerank(self, query: str, documents: list[str]) -> list[float]: ...


@dataclass
class Retrieval:
    results: list[SourceItem]
    no_match: bool  # the out-of-scope flag: nothing in the catalog answers this question
    timings_ms: dict[str, float] = field(default_factory=dict)
    scope_score: float = 0.0
    expansion: Expansion | None = None


@dataclass
class _Ranked:
    order: list[int]
    scores: Vectors
    scope_score: float
    expansion: Expansion


class Retriever:
    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        *,
        min_relevance: float,
        reranker: Reranker | None = None,
        executor: Executor | None = None,
        scope_embedder: Embedder | None = None,
        scope_alongside: bool = True,
    ) -> None:
        self.index = index
        self.scope_alongside = scope_alongside  # the scope model embeds on a second pool thread at once
        self.embedder = embedder
        self.scope_embedder = scope_embedder  # the out-of-scope test's own model, if not the ranking one
        self.min_relevance = min_relevance
        self.reranker = reranker
        self.executor = executor  # where the CPU-bound steps of `retrieve` run, off the event loop
        present = ([index.positions[i] for i in group if i in index.positions] for group in SAME_PRODUCT)
        self._groups = _Pools([group for group in present if len(group) > 1])  # a catalog may hold one name only
        self._families = _Pools(pattern_families([r.id for r in index.records]))

    def scope_score(self, scope_vector: Vectors) -> float:
        """How clearly the question belongs to the catalog: its best full-text cosine, raised or lowered
        by how much nearer it is to the catalog than to the everyday off-topic anchors."""
        top, off_topic = self.index.scope_cosines(scope_vector)
        return top + OFF_TOPIC_WEIGHT * (top - off_topic)

    def _fuse(
        self, expansion: Expansion, vector: Vectors, scope_vector: Vectors | None, collection: str | None, mode: str
    ) -> _Ranked:
        """The fused order; with no `scope_vector` (its embedding runs beside this one) the scope score is
        NaN until the caller sets it."""
        best = self.index.dense_scores(vector)[1]
        median = float(np.median(best))
        dense = (best - median) / max(float(best.max()) - median, 1e-6)
        mask = self.index.collection_mask(collection) if collection else None
        words = tokenize(expansion.text)
        keyword = self.index.bm25_scores(words, mask)
        extra = [t for t in tokenize(expansion.extra) if t not in set(words)]
        if extra:
            keyword = keyword + EXPANSION_WEIGHT * self.index.bm25_scores(extra, mask)
        keyword = keyword / max(float(keyword.max()), 1e-9)
        scores = {"dense": dense, "bm25": keyword}.get(mode, dense + BM25_WEIGHT * keyword)
        scores = np.where(mask > 0, scores, -np.inf) if mask is not None else scores.copy()
        self._groups.raise_to_best(scores, 0.0)
        if FAMILY_GAP is not None:
            self._families.raise_to_best(scores, FAMILY_GAP)
        order = np.argsort(-scores, kind="stable")[:_KEEP]
        kept = [int(i) for i in order[np.isfinite(scores[order])]]
        scope = self.scope_score(scope_vector) if scope_vector is not None else float("nan")
        return _Ranked(kept, scores, scope, expansion)

    def _result(self, ranked: _Ranked, k: int, timings: dict[str, float]) -> Retrieval:
        records = self.index.records
        results = [
            SourceItem(
                id=records[i].id,
                title=records[i].title,
                url=records[i].url,
                summary=records[i].summary,
                score=round(float(ranked.scores[i]), 6),
                services=list(records[i].services[:8]),
                source=records[i].source,
            )
            for i in ranked.order[:k]
        ]
        no_match = ranked.scope_score < self.min_relevance
        return Retrieval(results, no_match, timings, round(ranked.scope_score, 4), ranked.expansion)

    def _rank_local(
        self, query: str, collection: str | None, mode: str = "hybrid", *, with_scope: bool = True
    ) -> tuple[_Ranked, dict[str, float]]:
        """`with_scope=False`: the scope model's embedding runs elsewhere (see `retrieve`)."""
        started = time.perf_counter()
        expansion = self.index.spelling.expand(query)
        scope_vector: Vectors | None
        if self.scope_embedder is None:
            vector, scope_vector = _pair(self.embedder.embed_sync(_texts(query, expansion)))
        else:  # the corrected question ranks with the adapted model; the typed one decides scope
            vector = self.embedder.embed_sync([expansion.text])[0]
            scope_vector = self.scope_embedder.embed_sync([query])[0] if with_scope else None
        embedded = time.perf_counter()
        ranked = self._fuse(expansion, vector, scope_vector, collection, mode)
        timings = {"embed_ms": (embedded - started) * 1000, "search_ms": (time.perf_counter() - embedded) * 1000}
        return ranked, timings

    def retrieve_sync(self, query: str, *, k: int, collection: str | None = None, mode: str = "hybrid") -> Retrieval:
        """The offline path (benchmarks, tests): no remote reranker."""
        ranked, timings = self._rank_local(query, collection, mode)
        return self._result(ranked, k, timings)

    async def _off_loop(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(function, *args))

    async def retrieve(self, query: str, *, k: int, collection: str | None = None) -> Retrieval:
        """Spelling, embedding and scoring run in the executor; the loop only waits (and reranks remotely)."""
        local = getattr(self.embedder, "local", False)
        if local and self.scope_embedder is not None and self.scope_alongside:
            # Two models, two pool threads at once: the scope model's embedding of the question as typed
            # does not wait for the ranking one (one core each: 11 ms instead of 20 on an AVX2-only core).
            (ranked, timings), scope_vectors = await asyncio.gather(
                self._off_loop(functools.partial(self._rank_local, with_scope=False), query, collection),
                self._off_loop(self.scope_embedder.embed_sync, [query]),
            )
            ranked.scope_score = self.scope_score(scope_vectors[0])
        elif local:  # one hop to the executor for all of it
            ranked, timings = await self._off_loop(self._rank_local, query, collection)
        else:
            started = time.perf_counter()
            expansion = await self._off_loop(self.index.spelling.expand, query)
            vector, scope_vector = _pair(await self.embedder.embed(_texts(query, expansion)))
            embedded = time.perf_counter()
            ranked = await self._off_loop(self._fuse, expansion, vector, scope_vector, collection, "hybrid")
            timings = {"embed_ms": (embedded - started) * 1000, "search_ms": (time.perf_counter() - embedded) * 1000}
        if self.reranker is not None and ranked.scope_score >= self.min_relevance:
            reranked = time.perf_counter()
            try:
                ranked.order = await self._rerank(query, ranked.order)
            except RerankError as exc:
                # The fused order is a good answer on its own: a failed rerank costs quality, not the search.
                log.warning("rerank failed, keeping the fused order: %s", exc)
            timings["rerank_ms"] = (time.perf_counter() - reranked) * 1000
        return self._result(ranked, k, timings)

    async def _rerank(self, query: str, order: list[int]) -> list[int]:
        assert self.reranker is not None
        head = order[:RERANK_DEPTH]
        records = self.index.records
        documents = [f"{records[i].title}. {records[i].summary}" for i in head]
        relevance = await self.reranker.rerank(query, documents)
        ranked_head = [head[j] for j in sorted(range(len(head)), key=lambda j: -relevance[j])]
        return ranked_head + order[RERANK_DEPTH:]


# Words in a serverless pattern's id that name how it is built, not what it does.
_BUILD_WORDS = frozenset(
    "cdk sam terraform tf cfn cloudformation serverless sls pulumi cdktf python py ts typescript js javascript "
    "node nodejs java dotnet net go golang rust ruby v2".split()
)


def pattern_families(ids: list[str]) -> list[list[int]]:
    """Positions of serverless patterns that are one pattern built with other tools or languages
    (`apigw-sqs-cdk-typescript`, `apigw-sqs-terraform`): the same words in the same order once the build
    words are gone. Order matters: `aws-lambda-s3` and `aws-s3-lambda` are different patterns."""
    families: dict[tuple[str, ...], list[int]] = {}
    for position, entry in enumerate(ids):
        kind, _, name = entry.partition("/")
        if kind == "pattern":
            core = tuple(word for word in name.split("-") if word not in _BUILD_WORDS)
            families.setdefault(core, []).append(position)
    return [family for family in families.values() if len(family) > 1]


class _Pools:
    """Disjoint groups of positions whose members score at least their best member's score less a gap, in
    one pass over all groups (a Python loop over ~90 groups was a fifth of the scoring time). A member
    a collection filter took out (-inf) stays out."""

    def __init__(self, groups: list[list[int]]) -> None:
        groups = [group for group in groups if group]  # reduceat cannot take an empty group
        members = [i for group in groups for i in group]
        assert len(set(members)) == len(members), "groups must be disjoint"
        self.members = np.array(members, dtype=np.intp)
        self.sizes = np.array([len(group) for group in groups], dtype=np.intp)
        self.starts = (np.cumsum(self.sizes) - self.sizes).astype(np.intp)

    def raise_to_best(self, scores: Vectors, gap: float) -> None:
        if not len(self.members):
            return
        values = scores[self.members]
        best = np.repeat(np.maximum.reduceat(values, self.starts), self.sizes) - gap
        scores[self.members] = np.where(np.isfinite(values), np.maximum(values, best), values)


def _texts(query: str, expansion: Expansion) -> list[str]:
    """The corrected question ranks; the question as typed decides scope, because correcting every
    unknown word to a catalog word ("films" -> "files") would pull everyday questions into scope."""
    return [expansion.text] if expansion.text == query.lower() else [expansion.text, query]


def _pair(vectors: Vectors) -> tuple[Vectors, Vectors]:
    return vectors[0], vectors[-1]


def create_retriever(
    index: LoadedIndex,
    embedder: Embedder,
    settings: Settings,
    executor: Executor | None = None,
    scope_embedder: Embedder | None = None,
) -> Retriever:
    reranker: Reranker | None = None
    if settings.reranker == "bedrock":
        reranker = BedrockReranker(settings)
    return Retriever(
        index,
        embedder,
        min_relevance=settings.min_relevance,
        reranker=reranker,
        executor=executor,
        scope_embedder=scope_embedder,
        scope_alongside=settings.scope_embed_alongside,
    )
