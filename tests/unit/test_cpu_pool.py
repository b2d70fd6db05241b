"""The CPU pools are a process's parallelism: numpy's BLAS and faiss's OpenMP must not run pools of their
own beside them (OpenBLAS's spinning threads took the cores from the search worker's two embeddings)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

# In a fresh process, as the worker does: the libraries load, then the pool; each pool thread reports what
# its BLAS and OpenMP would use (OpenMP's setting is per thread, so the main thread's says nothing).
_PROBE = """
import json, threading
import faiss, numpy
from threadpoolctl import threadpool_info
from core.cpu import create_cpu_pool
pool = create_cpu_pool("probe")
together = threading.Barrier(pool._max_workers)
def probe():
    together.wait(30)  # every pool thread answers, not one thread many times
    return {"libraries": threadpool_info(), "faiss_omp": faiss.omp_get_max_threads()}
print(json.dumps([f.result() for f in [pool.submit(probe) for _ in range(pool._max_workers)]]))
pool.shutdown()
"""


def test_every_cpu_pool_thread_runs_blas_and_openmp_on_one_thread() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for thread in json.loads(out):
        libraries = thread["libraries"]
        assert {lib["user_api"] for lib in libraries} >= {"blas", "openmp"}, libraries  # numpy's and faiss's
        assert all(lib["num_threads"] == 1 for lib in libraries), libraries
        assert thread["faiss_omp"] == 1
