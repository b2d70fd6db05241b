"""Owns every quota:* Redis key. One hash tag per subject keeps a subject's keys in one cluster slot."""

from __future__ import annotations

from core.streams import REFUND_STREAM

USAGE_LOG = "quota:usage-log"
REFUNDS = REFUND_STREAM


def counter(subject: str) -> str:
    return f"quota:{{{subject}}}:counter"


def idempotency(subject: str, key: str) -> str:
    return f"quota:{{{subject}}}:idem:{key}"


def refund_marker(subject: str, search_id: str) -> str:
    return f"quota:{{{subject}}}:refund:{search_id}"


def user_subject(user_id: str, solution_id: str) -> str:
    return f"u:{user_id}:{solution_id}"


def anonymous_subject(anon_id: str, solution_id: str) -> str:
    return f"a:{anon_id}:{solution_id}"


def ip_subject(ip_hash: str, solution_id: str) -> str:
    return f"ip:{ip_hash}:{solution_id}"
