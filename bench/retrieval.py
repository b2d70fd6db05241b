"""Retrieval quality per evaluation half and per question type, with 95 % bootstrap intervals, and the
embed + search latency of the offline default.

Usage: python bench/retrieval.py [--eval tuning=data/eval/eval_dev.jsonl,data/eval/eval_tune.jsonl]
       [--eval held-out=data/eval/eval_heldout.jsonl] [--mode hybrid|dense|bm25] [--misses tuning]
recall@5 counts the right entries in the top five out of min(5, how many are right), so a question with
eight right patterns can still score 1.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import load_settings  # noqa: E402
from search_worker.embedders import create_embedder, create_scope_embedder  # noqa: E402
from search_worker.embedding_cache import models  # noqa: E402
from search_worker.index import open_current  # noqa: E402
from search_worker.retrieval import Retriever  # noqa: E402

DEFAULT_SETS = [
    "tuning=data/eval/eval_dev.jsonl,data/eval/eval_tune.jsonl",
    "held-out=data/eval/eval_heldout.jsonl",
]


@dataclass
class Scores:
    recall5: list[float] = field(default_factory=list)
    mrr10: list[float] = field(default_factory=list)
    refused: int = 0
    oos: int = 0
    oos_refused: int = 0
    oos_accepted: list[str] = field(default_factory=list)


def score_row(ids: list[str], relevant: set[str]) -> tuple[float, float]:
    recall = len(set(ids[:5]) & relevant) / min(5, len(relevant))
    mrr = next((1 / (rank + 1) for rank, doc in enumerate(ids[:10]) if doc in relevant), 0.0)
    return recall, mrr


def interval(values: list[float], rounds: int = 2000, seed: int = 14) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean, resampling questions."""
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(rounds))
    return means[int(rounds * 0.025)], means[int(rounds * 0.975) - 1]


def evaluate(retriever: Retriever, rows: list[dict], mode: str, latencies: list[float], misses: bool) -> dict:
    groups: dict[str, Scores] = {"all": Scores()}
    for row in rows:
        started = time.perf_counter()
        result = retriever.retrieve_sync(row["query"], k=10, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        relevant = set(row["relevant"])
        if not relevant:
            groups["all"].oos += 1
            groups["all"].oos_refused += result.no_match
            if not result.no_match:
                groups["all"].oos_accepted.append(f"{row['query']!r} (scope {result.scope_score})")
            continue
        ids = [] if result.no_match else [r.id for r in result.results]
        recall, mrr = score_row(ids, relevant)
        kinds = ["all", f"type:{row['type']}", "several right answers" if len(relevant) > 1 else "one right answer"]
        for kind in kinds:
            scores = groups.setdefault(kind, Scores())
            scores.recall5.append(recall)
            scores.mrr10.append(mrr)
            scores.refused += result.no_match
        if misses and recall < 1:
            print(
                f"  MISS {recall:.2f} {row['qid']} {row['query']!r}\n     got {ids[:5]}\n     want {sorted(relevant)}"
            )
    return groups


def report(name: str, groups: dict[str, Scores]) -> None:
    overall = groups["all"]
    n = len(overall.recall5)
    print(f"\n{name}: {n} in-scope and {overall.oos} out-of-scope questions")
    print(f"  {'group':28} {'n':>4}  {'recall@5 [95% CI]':>24}  {'MRR@10 [95% CI]':>24}")
    for kind, scores in sorted(groups.items(), key=lambda item: (item[0] != "all", item[0])):
        if not scores.recall5:
            continue
        r_low, r_high = interval(scores.recall5)
        m_low, m_high = interval(scores.mrr10)
        recall = sum(scores.recall5) / len(scores.recall5)
        mrr = sum(scores.mrr10) / len(scores.mrr10)
        print(
            f"  {kind:28} {len(scores.recall5):>4}  {recall:.3f} [{r_low:.3f}, {r_high:.3f}]"
            f"      {mrr:.3f} [{m_low:.3f}, {m_high:.3f}]"
        )
    print(f"  out of scope refused {overall.oos_refused}/{overall.oos}; in scope wrongly refused {overall.refused}/{n}")
    for accepted in overall.oos_accepted:
        print(f"  accepted out-of-scope: {accepted}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", action="append", help="name=file[,file...]; repeatable")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "bm25"])
    parser.add_argument("--misses", default="", help="print the misses of this set (never the held-out one)")
    args = parser.parse_args()
    settings = load_settings()
    embedder, scope_embedder = create_embedder(settings), create_scope_embedder(settings)
    index = open_current(settings.index_dir, settings.embedder, *models(embedder, scope_embedder))
    if index is None:
        print("no index: run `make index` first", file=sys.stderr)
        return 2
    retriever = Retriever(index, embedder, min_relevance=settings.min_relevance, scope_embedder=scope_embedder)
    retriever.retrieve_sync("warm up", k=10)
    print(
        f"index {index.version} · model {index.meta.model} · scope model {index.meta.scope_model or 'the same'}"
        f" · mode {args.mode} · scope threshold {settings.min_relevance}"
    )
    latencies: list[float] = []
    for spec in args.eval or DEFAULT_SETS:
        name, files = spec.split("=", 1)
        rows = [json.loads(line) for file in files.split(",") for line in open(file) if line.strip()]
        report(name, evaluate(retriever, rows, args.mode, latencies, misses=name == args.misses))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"\nembed + search (+ merge, scope test), {len(latencies)} questions one at a time: "
        f"p50 {latencies[len(latencies) // 2]:.1f} ms, p99 {p99:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
