"""The versioned search index: dense vectors of three views of each entry, BM25, and the off-topic
anchors, built from the catalog and loaded mmapped.

Layout: <index_dir>/<version>/{dense.faiss, views.npy, off_topic.npy, bm25/, docs.json, meta.json} and
<index_dir>/CURRENT, which names the version in use and is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import bm25s
import faiss
import msgspec
import numpy as np
import Stemmer
from tqdm import tqdm

from core.errors import AppError
from search_worker.embedders import Embedder, Vectors
from search_worker.embedding_cache import EmbeddingCache, embedder_id, models, scope_cache_path
from search_worker.vocabulary import OFF_TOPIC, SpellingCorrector

FORMAT_VERSION = 3
_STEMMER = Stemmer.Stemmer("english")
_WORD = re.compile(r"[a-z0-9]+")


class IndexError_(AppError):
    reason = "index_error"


class IndexMismatchError(IndexError_):
    reason = "index_embedder_mismatch"


class CatalogRecord(msgspec.Struct, frozen=True):
    id: str
    title: str
    summary: str = ""
    description: str = ""
    services: list[str] = []
    categories: list[str] = []
    tags: list[str] = []
    url: str = ""
    source: str = ""
    license: str = ""


class IndexMeta(msgspec.Struct, frozen=True):
    version: str
    format_version: int
    embedder: str
    dimension: int
    documents: int
    catalog_sha256: str
    built_at_ms: int
    model: str = ""  # embedder_id: the exact model (an index from another model is rebuilt, never queried)
    scope_model: str = ""  # embedder_id of the scope test's model when it is not `model`


def read_catalog(path: str | Path) -> list[CatalogRecord]:
    decoder = msgspec.json.Decoder(CatalogRecord)
    with open(path, "rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]


def _humanise(name: str) -> str:
    """Turn ids such as 'apigw-lambda-dynamodb' into words BM25 and the embedder can use."""
    return re.sub(r"[-_/]+", " ", name)


def dense_text(record: CatalogRecord) -> str:
    """What the embedder sees: the fields that say what a solution is for, most telling first."""
    services = ", ".join(record.services[:12])
    parts = [record.title + ".", record.summary]
    if services:
        parts.append(f"Services: {services}.")
    if record.categories:
        parts.append("Categories: " + ", ".join(record.categories[:6]) + ".")
    parts.append(record.description[:600])
    return " ".join(p for p in parts if p)


def view_texts(record: CatalogRecord) -> tuple[str, str]:
    """Two more views for the embedder: what the entry is (title and summary) and how it works (the body).
    A question about either side is then matched against a vector that is not diluted by the other."""
    return f"{record.title}. {record.summary}", record.description[:1200] or record.summary


def sparse_text(record: CatalogRecord) -> str:
    """What BM25 sees: title and services repeated so that they weigh more than body text."""
    title = f"{record.title} {_humanise(record.id.split('/', 1)[-1])}"
    services = " ".join(record.services)
    tags = " ".join(record.tags + record.categories)
    return " ".join([title, title, title, services, services, tags, record.summary, record.description])


def tokenize(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in bm25s.stopwords.STOPWORDS_EN and len(w) > 1]
    return list(_STEMMER.stemWords(words))


def _catalog_hash(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


TEXT_GROUPS = ("full", "summaries", "bodies", "off_topic")  # what the ranking model embeds
SCOPE_GROUPS = ("full", "off_topic")  # what the scope model embeds


def index_texts(records: list[CatalogRecord]) -> dict[str, list[str]]:
    """Every text a build embeds, by what it becomes: the three views of each entry, the off-topic anchors."""
    views = [view_texts(r) for r in records]
    return {
        "full": [dense_text(r) for r in records],
        "summaries": [v[0] for v in views],
        "bodies": [v[1] for v in views],
        "off_topic": list(OFF_TOPIC),
    }


def build_index(
    catalog_path: str | Path,
    index_dir: str | Path,
    embedder: Embedder,
    *,
    batch_size: int = 32,
    cache: EmbeddingCache | None = None,
    scope_embedder: Embedder | None = None,
    scope_cache: EmbeddingCache | None = None,
) -> IndexMeta:
    """Embed the catalog (what `cache` lacks) with a progress bar, write a new version, point CURRENT at it."""
    records = read_catalog(catalog_path)
    root = Path(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = f"v{time.strftime('%Y%m%d-%H%M%S')}-{embedder.name}"
    staging = root / f".{version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()

    texts = index_texts(records)
    cache = cache if cache is not None else EmbeddingCache.load(None, embedder)
    full, summaries, bodies, off_topic = (
        _embed_all(embedder, texts[name], batch_size, f"embedding {name}", cache) for name in TEXT_GROUPS
    )
    dense = faiss.IndexFlatIP(full.shape[1])
    dense.add(full)
    faiss.write_index(dense, str(staging / "dense.faiss"))
    np.save(staging / "views.npy", np.stack([full, summaries, bodies]))
    np.save(staging / "off_topic.npy", off_topic)
    if scope_embedder is not None:  # the scope test's own vectors of the full texts and the anchors
        scope_cache = scope_cache if scope_cache is not None else EmbeddingCache.load(None, scope_embedder)
        for name in SCOPE_GROUPS:
            vectors = _embed_all(scope_embedder, texts[name], batch_size, f"embedding {name} (scope)", scope_cache)
            np.save(staging / f"scope_{name}.npy", vectors)

    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index([tokenize(sparse_text(r)) for r in records], show_progress=False)
    retriever.save(str(staging / "bm25"))

    (staging / "docs.json").write_bytes(msgspec.json.encode(records))
    meta = IndexMeta(
        version=version,
        format_version=FORMAT_VERSION,
        embedder=embedder.name,
        dimension=int(full.shape[1]),
        documents=len(records),
        catalog_sha256=_catalog_hash(catalog_path),
        built_at_ms=int(time.time() * 1000),
        model=embedder_id(embedder),
        scope_model=embedder_id(scope_embedder) if scope_embedder is not None else "",
    )
    (staging / "meta.json").write_bytes(msgspec.json.encode(meta))
    _publish(root, staging, version)
    return meta


def _publish(root: Path, staging: Path, version: str) -> None:
    """Move the finished version into place, then point CURRENT at it (both atomic renames)."""
    final = root / version
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    pointer = root / ".CURRENT.tmp"
    pointer.write_text(version)
    os.replace(pointer, root / "CURRENT")


def _embed_all(embedder: Embedder, texts: list[str], batch_size: int, label: str, cache: EmbeddingCache) -> Vectors:
    """The texts' vectors: the cache's where it has them, the others embedded (and added to it)."""
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    missing = []
    for n, text in enumerate(texts):
        known = cache.get(text)
        if known is None:
            missing.append(n)
        else:
            vectors[n] = known
    # Batches of similar length waste less time on padding.
    order = sorted(missing, key=lambda i: len(texts[i]))
    with tqdm(total=len(order), desc=label, unit="doc", file=sys.stderr, disable=not order) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            vectors[batch] = embedder.embed_sync([texts[i] for i in batch])
            for i in batch:
                cache.put(texts[i], vectors[i])
            bar.update(len(batch))
    return vectors


def current_version(index_dir: str | Path) -> str | None:
    pointer = Path(index_dir) / "CURRENT"
    try:
        return pointer.read_text().strip() or None
    except FileNotFoundError:
        return None


def checked_meta(path: Path, embedder_name: str, model: str | None = None, scope_model: str | None = None) -> IndexMeta:
    """The index's meta.json, once it is known to fit this process (else IndexMismatchError or, for an old
    format, IndexError_): reads nothing but that file."""
    meta = msgspec.json.decode((path / "meta.json").read_bytes(), type=IndexMeta)
    if meta.embedder != embedder_name:
        raise IndexMismatchError(
            f"index {meta.version} was built with embedder '{meta.embedder}' but this "
            f"process is configured with EMBEDDER={embedder_name}; rebuild it with `make index`"
        )
    if model is not None and meta.model != model:
        raise IndexMismatchError(
            f"index {meta.version} was built with model '{meta.model or 'unknown'}' but this "
            f"process embeds questions with '{model}'; rebuild it with `make index`"
        )
    if scope_model is not None and meta.scope_model != scope_model:
        raise IndexMismatchError(
            f"index {meta.version} was built with scope model '{meta.scope_model or 'none'}' but "
            f"this process tests scope with '{scope_model or 'none'}'; rebuild it with `make index`"
        )
    if meta.format_version != FORMAT_VERSION:
        raise IndexError_(f"index {meta.version} has an old format; rebuild it with `make index`")
    return meta


class LoadedIndex:
    """One version of the index, opened read-only; the FAISS file is mmapped so workers share it."""

    def __init__(
        self, path: Path, embedder_name: str, model: str | None = None, scope_model: str | None = None
    ) -> None:
        self.meta = checked_meta(path, embedder_name, model, scope_model)
        self.dense = faiss.read_index(str(path / "dense.faiss"), faiss.IO_FLAG_MMAP_IFC)
        self.bm25 = bm25s.BM25.load(str(path / "bm25"), mmap=True, load_corpus=False, show_progress=False)
        self.records = msgspec.json.decode((path / "docs.json").read_bytes(), type=list[CatalogRecord])
        self.vocab: dict[str, int] = dict(self.bm25.vocab_dict)
        # Read into memory as one matrix so the three views are scored in one BLAS call (a 3-d memmap
        # takes numpy's slow path: 28 ms instead of 0.3 ms).
        views = np.load(path / "views.npy")
        self.views: Vectors = np.ascontiguousarray(views.reshape(-1, views.shape[-1]), dtype=np.float32)
        self.off_topic: Vectors = np.load(path / "off_topic.npy")
        # The scope test's vectors: its own model's when the index has them, else the ranking model's.
        self.scope_full: Vectors = self.views[: len(self.views) // 3]
        self.scope_off_topic: Vectors = self.off_topic
        if (path / "scope_full.npy").is_file():
            self.scope_full = np.ascontiguousarray(np.load(path / "scope_full.npy"), dtype=np.float32)
            self.scope_off_topic = np.load(path / "scope_off_topic.npy")
        self.spelling = SpellingCorrector(
            f"{r.title} {r.summary} {r.description} {' '.join(r.services)} {_humanise(r.id)}" for r in self.records
        )
        self.positions = {r.id: i for i, r in enumerate(self.records)}
        self.collections = sorted({r.source for r in self.records})
        self._collection_masks: dict[str, Any] = {}

    @property
    def version(self) -> str:
        return self.meta.version

    def collection_mask(self, collection: str) -> Any:
        mask = self._collection_masks.get(collection)
        if mask is None:
            mask = np.array([r.source == collection for r in self.records], dtype=np.float32)
            self._collection_masks[collection] = mask
        return mask

    def dense_scores(self, query_vector: Vectors) -> tuple[Vectors, Vectors]:
        """Cosine of the question with every entry: the full-text view, and the best of the three views."""
        by_view = (self.views @ query_vector.astype(np.float32)).reshape(3, -1)
        result: tuple[Vectors, Vectors] = (by_view[0], by_view.max(axis=0))
        return result

    def scope_cosines(self, scope_vector: Vectors) -> tuple[float, float]:
        """The question's best cosine with an entry's full text, and with an everyday off-topic anchor."""
        vector = scope_vector.astype(np.float32)
        return float((self.scope_full @ vector).max()), float((self.scope_off_topic @ vector).max())

    def bm25_scores(self, terms: list[str], mask: Any = None) -> Vectors:
        known = [t for t in terms if t in self.vocab]
        if not known:
            return np.zeros(len(self.records), dtype=np.float32)
        scores: Vectors = self.bm25.get_scores(known, weight_mask=mask).astype(np.float32)
        return scores


def open_current(
    index_dir: str | Path, embedder_name: str, model: str | None = None, scope_model: str | None = None
) -> LoadedIndex | None:
    version = current_version(index_dir)
    if version is None:
        return None
    return LoadedIndex(Path(index_dir) / version, embedder_name, model, scope_model)


def _refresh_cache(
    catalog_path: str, cache_path: str | Path, embedder: Embedder, groups: tuple[str, ...]
) -> EmbeddingCache:
    """Embed what the cache lacks for this catalog, drop what it no longer holds, write it back."""
    cache = EmbeddingCache.load(cache_path, embedder)
    by_group = index_texts(read_catalog(catalog_path))
    texts = [t for group in groups for t in by_group[group]]
    _embed_all(embedder, texts, 32, "embedding (cache)", cache)
    cache.keep_only(texts)
    cache.save(cache_path)
    return cache


def main(argv: list[str] | None = None) -> int:
    """`python -m search_worker.index build [--if-missing] | cache | show`: build the index from the catalog
    (with the shipped embedding cache), or rewrite that cache for the current catalog."""
    import argparse

    from core.logs import configure
    from core.settings import load_settings
    from search_worker.embedders import create_embedder, create_scope_embedder

    parser = argparse.ArgumentParser(prog="search_worker.index")
    parser.add_argument("command", choices=["build", "cache", "show"])
    parser.add_argument("--if-missing", action="store_true", help="do nothing when an index exists")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure(settings.log_level)
    log = logging.getLogger("search_worker.index")
    if args.command == "show":
        print(json.dumps({"current": current_version(settings.index_dir)}))
        return 0
    existing = current_version(settings.index_dir)
    threads = os.cpu_count() or 1
    embedder = create_embedder(settings, threads=threads)
    scope_embedder = create_scope_embedder(settings, threads=threads)
    if args.command == "build" and args.if_missing and existing:
        # Only meta.json is read: opening the index itself (FAISS, BM25, the spelling table) took a second.
        try:
            checked_meta(Path(settings.index_dir) / existing, settings.embedder)
        except AppError as exc:
            log.error("%s", exc)
            return 2
        try:
            checked_meta(Path(settings.index_dir) / existing, settings.embedder, *models(embedder, scope_embedder))
            log.info("index %s present", existing)
            return 0
        except IndexMismatchError as exc:
            log.warning("%s: rebuilding", exc)  # a model change (an upgrade) must not serve stale vectors
    scope_path = scope_cache_path(settings.embedding_cache_path)
    if args.command == "cache":
        cache = _refresh_cache(settings.catalog_path, settings.embedding_cache_path, embedder, TEXT_GROUPS)
        log.info("wrote %d vectors to %s", len(cache), settings.embedding_cache_path)
        if scope_embedder is not None:
            scope = _refresh_cache(settings.catalog_path, scope_path, scope_embedder, SCOPE_GROUPS)
            log.info("wrote %d vectors to %s", len(scope), scope_path)
        return 0
    cache = EmbeddingCache.load(settings.embedding_cache_path, embedder)
    scope_cache = EmbeddingCache.load(scope_path, scope_embedder) if scope_embedder is not None else None
    started = time.monotonic()
    meta = build_index(
        settings.catalog_path,
        settings.index_dir,
        embedder,
        cache=cache,
        scope_embedder=scope_embedder,
        scope_cache=scope_cache,
    )
    log.info(
        "built index %s: %d documents, embedder %s, in %.1f s (%d cached vectors offered)",
        meta.version,
        meta.documents,
        meta.embedder,
        time.monotonic() - started,
        len(cache),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
