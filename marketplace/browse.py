"""Browsing the AWS catalog the finder searches (CATALOG_PATH): filter by words, category and AWS service."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import msgspec


class CatalogEntry(msgspec.Struct):
    id: str
    title: str
    summary: str
    url: str
    services: list[str]
    categories: list[str]


class CatalogPage(msgspec.Struct):
    total: int
    offset: int
    items: list[CatalogEntry]
    categories: list[str]
    services: list[str]


class _Loaded(msgspec.Struct):
    entries: list[CatalogEntry]
    haystacks: list[str]
    categories: list[str]
    services: list[str]


@functools.cache
def _load(path: str, mtime_ns: int) -> _Loaded:
    pairs: list[tuple[CatalogEntry, str]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        entry = CatalogEntry(
            id=str(row["id"]),
            title=str(row.get("title", "")),
            summary=str(row.get("summary", "")),
            url=str(row.get("url", "")),
            services=[str(s) for s in row.get("services", [])],
            categories=[str(c) for c in row.get("categories", [])],
        )
        words = [entry.title, entry.summary, *entry.services, *entry.categories, *map(str, row.get("tags", []))]
        pairs.append((entry, " ".join(words).lower()))
    pairs.sort(key=lambda pair: (pair[0].title.lower(), pair[0].id))
    entries = [entry for entry, _ in pairs]
    return _Loaded(
        entries=entries,
        haystacks=[haystack for _, haystack in pairs],
        categories=sorted({c for e in entries for c in e.categories}),
        services=sorted({s for e in entries for s in e.services}),
    )


def load_catalog(path: str) -> _Loaded:
    """The catalog file, read again only when it changes (an index rebuild may replace it)."""
    resolved = Path(path).resolve()
    return _load(str(resolved), resolved.stat().st_mtime_ns)


def browse(
    path: str, *, q: str = "", category: str = "", service: str = "", offset: int = 0, limit: int = 20
) -> CatalogPage:
    catalog = load_catalog(path)
    words = re.findall(r"\w+", q.lower())
    matches = [
        entry
        for entry, haystack in zip(catalog.entries, catalog.haystacks, strict=True)
        if (not category or category in entry.categories)
        and (not service or service in entry.services)
        and all(w in haystack for w in words)
    ]
    return CatalogPage(
        total=len(matches),
        offset=offset,
        items=matches[offset : offset + limit],
        categories=catalog.categories,
        services=catalog.services,
    )
