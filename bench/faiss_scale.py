"""FAISS at scale on synthetic 384-dimension vectors: IndexFlatIP against HNSW32 and IVF, giving build time,
queries per second, recall@10 against the exact flat search, and memory.

Usage: python bench/faiss_scale.py [--n 1000000] [--queries 200]
Random vectors are the worst case for approximate indexes (no cluster structure); real embeddings do better.
"""

from __future__ import annotations

import argparse
import resource
import time

import faiss
import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(7)
    print(f"generating {args.n:,} × {args.dim} float32 vectors…", flush=True)
    data = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    faiss.normalize_L2(data)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    faiss.normalize_L2(queries)
    base_rss = rss_mb()

    def measure(name: str, index: faiss.Index, build_s: float, truth: np.ndarray | None) -> np.ndarray:
        faiss.omp_set_num_threads(1)  # one query at a time, as a worker serves them
        started = time.perf_counter()
        ids = np.vstack([index.search(q.reshape(1, -1), 10)[1] for q in queries])
        elapsed = time.perf_counter() - started
        faiss.omp_set_num_threads(2)
        recall = (
            1.0
            if truth is None
            else float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)]))
        )
        size_mb = faiss.serialize_index(index).nbytes / 2**20
        print(
            f"{name:28s} build {build_s:6.1f} s  {args.queries / elapsed:8.0f} q/s  "
            f"p50 {elapsed / args.queries * 1000:6.2f} ms  recall@10 {recall:.3f}  index {size_mb:7.0f} MB  "
            f"RSS +{rss_mb() - base_rss:6.0f} MB",
            flush=True,
        )
        return ids

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(data)
    truth = measure("IndexFlatIP (exact)", flat, time.perf_counter() - started, None)
    del flat

    started = time.perf_counter()
    nlist = 1024
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(data[: min(args.n, 100_000)])
    ivf.add(data)
    build = time.perf_counter() - started
    for nprobe in (16, 64):
        ivf.nprobe = nprobe
        measure(f"IVFFlat nlist 1024 nprobe {nprobe}", ivf, build, truth)
    del ivf

    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(data)
    build = time.perf_counter() - started
    for ef in (64, 128):
        hnsw.hnsw.efSearch = ef
        measure(f"HNSW32 efSearch {ef}", hnsw, build, truth)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
