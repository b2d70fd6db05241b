"""Owns the search:* Redis keys that the gateway and the workers share."""

from __future__ import annotations

SEARCH_PREFIX = "search:"
QUEUE_NAME = "arq:search"
WORKER_HEARTBEAT_PREFIX = "search:worker:"
INDEX_VERSION_KEY = "search:index:current"
REFUND_STREAM = "quota:refunds"


def events_key(search_id: str) -> str:
    return f"{SEARCH_PREFIX}{{{search_id}}}:events"


def cancel_key(search_id: str) -> str:
    return f"{SEARCH_PREFIX}{{{search_id}}}:cancel"


def meta_key(search_id: str) -> str:
    """Who owns the search and what it charged; read when a client resumes or cancels."""
    return f"{SEARCH_PREFIX}{{{search_id}}}:meta"


def worker_heartbeat_key(worker_id: str) -> str:
    return f"{WORKER_HEARTBEAT_PREFIX}{worker_id}"


WORKERS_KEY = "search:workers"
