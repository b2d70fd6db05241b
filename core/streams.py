"""Owns the search:* Redis keys that the gateway and the workers share, the refund stream they feed, and the
names of the arq queue and its jobs.

Every key is safe on Redis Cluster: a search's keys share the search id's hash tag, and arq's keys (the
queue, `arq:job:<job id>`, `arq:in-progress:<job id>`, `arq:result:<job id>`, `arq:retry:<job id>`, the
health check and the abort set), which arq writes together in MULTI blocks, all carry QUEUE_TAG: the queue
name and every job id hold it, and so does WAKE_KEY, the list a submit pushes to so that a worker blocked on
it takes the job at once. The queue therefore lives in one slot, on one node of a cluster.
"""

from __future__ import annotations

SEARCH_PREFIX = "search:"
QUEUE_TAG = "{search-queue}"
QUEUE_NAME = f"arq:{QUEUE_TAG}"
ABORT_KEY = f"arq:{QUEUE_TAG}:abort"  # arq's own name, `arq:abort`, has no tag; see search_worker.main
# One entry per submitted job (capped): workers block on it with BLPOP instead of polling the queue fast.
WAKE_KEY = f"arq:{QUEUE_TAG}:wake"
WAKE_MAXLEN = 256
WORKERS_KEY = "search:workers"
REFUND_STREAM = "quota:refunds"


def job_id(search_id: str) -> str:
    """The arq job id of a search: carries the queue's hash tag, so arq's per-job keys share its slot."""
    return f"{QUEUE_TAG}:{search_id}"


def events_key(search_id: str) -> str:
    return f"{SEARCH_PREFIX}{{{search_id}}}:events"


def cancel_key(search_id: str) -> str:
    return f"{SEARCH_PREFIX}{{{search_id}}}:cancel"


def meta_key(search_id: str) -> str:
    """Who owns the search, what it charged and which worker took it."""
    return f"{SEARCH_PREFIX}{{{search_id}}}:meta"


def ended_key(search_id: str) -> str:
    """Set once, by whoever writes the search's terminal event (done or error)."""
    return f"{SEARCH_PREFIX}{{{search_id}}}:ended"


RUNNING_KEY = "search:running"  # search ids a worker has started and not finished, scored by start time


def streams_open_key(owner: str) -> str:
    """The SSE streams a caller has open now (members: stream ids, scores: open time in ms)."""
    return f"{SEARCH_PREFIX}streams:{owner}"


def worker_index_key(worker_id: str) -> str:
    """The index version a live worker has loaded."""
    return f"{WORKERS_KEY}:index:{worker_id}"


def relay_control_key(process_id: str) -> str:
    """A gateway process's own stream: a write to it interrupts that process's blocked multiplexed XREAD."""
    return f"{SEARCH_PREFIX}relay:{process_id}"
