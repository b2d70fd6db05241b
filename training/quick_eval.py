"""Dense-only recall@5 / MRR@10 of a sentence-transformers model on the tuning half (never the held-out
half): a quick signal while adapting; the real figures come from bench/retrieval.py on the built index."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    model = SentenceTransformer(sys.argv[1], device="cpu")
    records = [json.loads(line) for line in (ROOT / "data/catalog/solutions.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records]
    texts = [f"{r['title']}. {r.get('summary', '')} {r.get('description', '')[:600]}" for r in records]
    docs = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    rows = []
    for name in ("eval_dev.jsonl", "eval_tune.jsonl"):
        rows += [json.loads(line) for line in (ROOT / "data/eval" / name).read_text().splitlines()]
    rows = [r for r in rows if r["relevant"]]
    queries = model.encode([r["query"] for r in rows], normalize_embeddings=True, show_progress_bar=False)
    recall, mrr = [], []
    for row, q in zip(rows, queries, strict=True):
        order = np.argsort(-(docs @ q))[:10]
        top = [ids[i] for i in order]
        relevant = set(row["relevant"])
        recall.append(len(relevant & set(top[:5])) / min(5, len(relevant)))
        mrr.append(next((1 / (n + 1) for n, i in enumerate(top) if i in relevant), 0.0))
    print(f"{sys.argv[1]}: tuning half dense recall@5 {np.mean(recall):.3f} MRR@10 {np.mean(mrr):.3f} (n={len(rows)})")


if __name__ == "__main__":
    main()
