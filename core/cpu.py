"""Owns the thread pools for CPU-bound work (argon2, embedding, scoring): sized to the cores, their threads
at a lower scheduling priority, so the event loop that serves every other request wins the CPU.

The pools are the process's parallelism: numpy's BLAS and OpenMP (faiss) keep to one thread each. Left at
one per core, OpenBLAS's threads spin after a matrix product and took the cores from the two embeddings
that run at once in the search worker (a retrieval 5.4 ms p50 instead of 3.5 on an idle 2-core machine).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

LOWER_PRIORITY = 10  # nice increment: the kernel then gives a runnable event loop thread the core first


def _pool_thread() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWER_PRIORITY)
    one_thread_per_library()  # OpenMP's setting is per thread: each pool thread sets its own


def one_thread_per_library() -> None:
    """BLAS and OpenMP (of the libraries loaded so far) run one thread each when called from this thread:
    their own pools would spin beside ours. OpenBLAS's pthreads build takes it for the whole process,
    OpenMP (faiss, and the OpenBLAS build faiss bundles) only for the calling thread."""
    threadpool_limits(limits=1)


def create_cpu_pool(name: str, *, leave_free: int = 0) -> ThreadPoolExecutor:
    """A pool with one thread per core (less `leave_free`, at least one), each at lower priority."""
    one_thread_per_library()
    workers = max(1, (os.cpu_count() or 1) - leave_free)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_pool_thread)
