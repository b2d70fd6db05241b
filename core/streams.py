"""Owns the search:* Redis keys that the gateway and the workers share, and the refund stream they feed."""

from __future__ import annotations

SEARCH_PREFIX = "search:"
QUEUE_NAME = "arq:search"
WORKERS_KEY = "search:workers"
REFUND_STREAM = "quota:refunds"


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
