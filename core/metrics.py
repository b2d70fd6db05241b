"""Prometheus metrics shared by the gateway, the workers and the pollers.

With PROMETHEUS_MULTIPROC_DIR set (make up and compose set it), every process writes its samples there and
the gateway's /metrics adds them up, so uvicorn --workers N and the search workers show in one scrape.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _DIR:
    os.makedirs(_DIR, exist_ok=True)  # must exist before the first metric is made

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402
from prometheus_client import multiprocess as _multiprocess  # noqa: E402

REQUESTS = Counter("sf_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "sf_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
QUOTA_DECISIONS = Counter("sf_quota_decisions_total", "Quota decisions by tier and outcome", ["tier", "outcome"])
JOB_SECONDS = Histogram(
    "sf_search_job_duration_seconds",
    "Search job duration by outcome",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
QUEUE_WAIT_SECONDS = Histogram(
    "sf_search_queue_wait_seconds",
    "Time a search waited in the queue",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
FIRST_TOKEN_SECONDS = Histogram(
    "sf_search_time_to_first_token_seconds",
    "From job start to the first answer token",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
)
TOKENS_STREAMED = Counter("sf_search_tokens_streamed_total", "Answer pieces streamed", ["provider"])
PAYMENTS = Counter("sf_payments_total", "Payments reaching a state", ["state"])


def render() -> bytes:
    """This process's metrics, or every process's when running multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
