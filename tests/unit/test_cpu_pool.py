"""The CPU pools are a process's parallelism: numpy's BLAS and faiss's OpenMP must not run pools of their
own beside them (OpenBLAS's spinning threads took the cores from the search worker's two embeddings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json
import faiss, numpy  # the libraries the worker loads before its pool
from threadpoolctl import threadpool_info
from core.cpu import create_cpu_pool
create_cpu_pool("probe").shutdown()
print(json.dumps(threadpool_info()))
"""


def test_a_cpu_pool_leaves_blas_and_openmp_one_thread_each() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    pools = json.loads(out)
    assert {pool["user_api"] for pool in pools} >= {"blas", "openmp"}, pools  # numpy's BLAS and faiss's OpenMP
    assert all(pool["num_threads"] == 1 for pool in pools), pools
