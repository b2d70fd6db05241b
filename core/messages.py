"""Structs that cross process boundaries: search jobs, stream events and refund requests.

New fields always get defaults so that a rolling deploy can mix old and new processes.
"""

from __future__ import annotations

import msgspec


class Charge(msgspec.Struct, frozen=True):
    """What the gateway charged for a search, so that it can be given back if the search fails."""

    subject: str
    solution_id: str
    period: str
    ip_subject: str = ""
    ip_period: str = ""


class SearchJob(msgspec.Struct, frozen=True, tag="search_job"):
    search_id: str
    query: str
    k: int = 5
    collection: str | None = None
    access_tier: str = "anonymous"
    request_id: str = ""
    charge: Charge | None = None
    enqueued_at_ms: int = 0


class RefundRequest(msgspec.Struct, frozen=True, tag="refund"):
    search_id: str
    charge: Charge
    reason: str = "failed"


class SourceItem(msgspec.Struct, frozen=True):
    id: str
    title: str
    url: str
    summary: str
    score: float
    services: list[str] = []
    source: str = ""


class SourcesEvent(msgspec.Struct, frozen=True):
    results: list[SourceItem]
    answer_mode: str = "extractive"
    no_match: bool = False


class TokenEvent(msgspec.Struct, frozen=True):
    text: str


class DoneEvent(msgspec.Struct, frozen=True):
    answer: str
    citations: list[str]
    usage: dict[str, int]
    timings_ms: dict[str, float]


class ErrorEvent(msgspec.Struct, frozen=True):
    reason: str
    error: str


TERMINAL_EVENTS = frozenset({"done", "error"})
