"""Owns every quota:* Redis key, laid out so that each script touches one Redis Cluster slot.

A subject (a user and solution, an anonymous id, a hashed IP) belongs to one of SHARDS shards by a
stable hash. Its counter, idempotency keys and refund markers, and the shard's part of the usage log,
all carry the shard's hash tag, so the consume and refund scripts never cross slots. The flusher reads
every shard's log.
"""

from __future__ import annotations

import zlib

from core.streams import REFUND_STREAM

SHARDS = 64
REFUNDS = REFUND_STREAM


def shard(subject: str) -> int:
    return zlib.crc32(subject.encode()) % SHARDS


def _tag(subject: str) -> str:
    return f"{{q{shard(subject)}}}"


def counter(subject: str) -> str:
    return f"quota:{_tag(subject)}:counter:{subject}"


def idempotency(subject: str, key: str) -> str:
    return f"quota:{_tag(subject)}:idem:{subject}:{key}"


def refund_marker(subject: str, search_id: str) -> str:
    return f"quota:{_tag(subject)}:refund:{subject}:{search_id}"


def usage_log(subject: str) -> str:
    """The part of the usage log that this subject's admitted uses go to."""
    return usage_log_shard(shard(subject))


def usage_log_shard(n: int) -> str:
    return f"quota:{{q{n}}}:usage-log"


def usage_logs() -> list[str]:
    return [usage_log_shard(n) for n in range(SHARDS)]


def user_subject(user_id: str, solution_id: str) -> str:
    return f"u:{user_id}:{solution_id}"


def anonymous_subject(anon_id: str, solution_id: str) -> str:
    return f"a:{anon_id}:{solution_id}"


def ip_subject(ip_hash: str, solution_id: str) -> str:
    return f"ip:{ip_hash}:{solution_id}"
