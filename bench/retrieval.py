"""Retrieval quality on the development set: recall@5, hit@5, MRR@10 and out-of-scope rejection.

Usage: python bench/retrieval.py [--eval data/eval/eval_dev.jsonl] [--mode hybrid|dense|bm25]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import load_settings  # noqa: E402
from search_worker.embedders import create_embedder  # noqa: E402
from search_worker.index import open_current  # noqa: E402
from search_worker.retrieval import Retriever  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", default="data/eval/eval_dev.jsonl")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "bm25"])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    index = open_current(settings.index_dir, settings.embedder)
    if index is None:
        print("no index: run `make index` first", file=sys.stderr)
        return 2
    retriever = Retriever(index, create_embedder(settings), min_relevance=settings.min_relevance)
    rows = [json.loads(line) for line in open(args.eval)]
    recall5 = hit5 = mrr10 = 0.0
    in_scope = oos = oos_rejected = in_scope_rejected = 0
    started = time.perf_counter()
    latencies: list[float] = []
    for row in rows:
        t = time.perf_counter()
        result = retriever.retrieve_sync(row["query"], k=10, mode=args.mode)
        latencies.append((time.perf_counter() - t) * 1000)
        ids = [r.id for r in result.results]
        relevant = set(row["relevant"])
        if not relevant:
            oos += 1
            oos_rejected += result.no_match
            continue
        in_scope += 1
        in_scope_rejected += result.no_match
        if result.no_match:
            ids = []
        top5 = set(ids[:5])
        recall5 += len(top5 & relevant) / len(relevant)
        hit5 += bool(top5 & relevant)
        for rank, doc in enumerate(ids[:10]):
            if doc in relevant:
                mrr10 += 1 / (rank + 1)
                break
        if args.verbose and not top5 & relevant:
            print(f"MISS {row['qid']} {row['query']!r}: got {ids[:5]} want {sorted(relevant)}")
    elapsed = time.perf_counter() - started
    print(f"index {index.version} · mode {args.mode} · {in_scope} in-scope and {oos} out-of-scope queries")
    print(f"recall@5  {recall5 / in_scope:.3f}")
    print(f"hit@5     {hit5 / in_scope:.3f}")
    print(f"MRR@10    {mrr10 / in_scope:.3f}")
    print(f"out-of-scope rejected {oos_rejected}/{oos}; in-scope wrongly rejected {in_scope_rejected}/{in_scope}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"embed + search: p50 {latencies[len(latencies) // 2]:.1f} ms, p99 {p99:.1f} ms "
        f"({elapsed / len(rows) * 1000:.1f} ms mean over {len(rows)} queries)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
