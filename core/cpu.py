"""Owns the thread pools for CPU-bound work (argon2, embedding, scoring): sized to the cores, their threads
at a lower scheduling priority, so the event loop that serves every other request wins the CPU."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

LOWER_PRIORITY = 10  # nice increment: the kernel then gives a runnable event loop thread the core first


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWER_PRIORITY)


def create_cpu_pool(name: str, *, leave_free: int = 0) -> ThreadPoolExecutor:
    """A pool with one thread per core (less `leave_free`, at least one), each at lower priority."""
    workers = max(1, (os.cpu_count() or 1) - leave_free)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_lower_priority)
