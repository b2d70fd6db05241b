"""Turns a question into ranked catalog entries: embed, hybrid search, and the out-of-scope test."""

from __future__ import annotations

import time

import numpy as np

from core.messages import SourceItem
from search_worker.embedders import Embedder
from search_worker.index import LoadedIndex


class Retrieval:
    def __init__(self, results: list[SourceItem], no_match: bool, timings_ms: dict[str, float]) -> None:
        self.results = results
        self.no_match = no_match
        self.timings_ms = timings_ms


class Retriever:
    def __init__(self, index: LoadedIndex, embedder: Embedder, *, min_relevance: float) -> None:
        self.index = index
        self.embedder = embedder
        self.min_relevance = min_relevance

    def _rank(self, query: str, vector: np.ndarray, k: int, collection: str | None, mode: str) -> Retrieval:
        started = time.perf_counter()
        hits = self.index.search(query, vector, k, collection=collection)
        if mode == "dense":
            hits = sorted(hits, key=lambda h: h.dense_score, reverse=True)
        top_dense = max((h.dense_score for h in hits), default=0.0)
        # A question is in scope when its best semantic match is close enough; word overlap alone
        # ("best pizza" matching "best practices") is not evidence.
        no_match = top_dense < self.min_relevance
        results = [
            SourceItem(
                id=self.index.records[h.position].id,
                title=self.index.records[h.position].title,
                url=self.index.records[h.position].url,
                summary=self.index.records[h.position].summary,
                score=round(h.score, 6),
                services=list(self.index.records[h.position].services[:8]),
                source=self.index.records[h.position].source,
            )
            for h in hits
        ]
        return Retrieval(results, no_match, {"search_ms": (time.perf_counter() - started) * 1000})

    def retrieve_sync(self, query: str, *, k: int, collection: str | None = None, mode: str = "hybrid") -> Retrieval:
        started = time.perf_counter()
        vector = self.embedder.embed_sync([query])[0]
        embed_ms = (time.perf_counter() - started) * 1000
        result = self._rank(query, vector, k, collection, mode)
        result.timings_ms["embed_ms"] = embed_ms
        return result

    async def retrieve(self, query: str, *, k: int, collection: str | None = None) -> Retrieval:
        started = time.perf_counter()
        vector = (await self.embedder.embed([query]))[0]
        embed_ms = (time.perf_counter() - started) * 1000
        result = self._rank(query, vector, k, collection, "hybrid")
        result.timings_ms["embed_ms"] = embed_ms
        return result
