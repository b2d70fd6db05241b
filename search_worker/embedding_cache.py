"""Owns the shipped embedding cache: the vectors of every text an index build embeds, keyed by a hash of the
embedder's identity and the text, so that a build embeds only texts it has not seen.

The repository carries the cache for its catalog (data/index/, float16: half the size, and the rounding,
below 1e-3 of a cosine, moves no ranking measured in docs/benchmarks.md), so the first `make up` builds
its index in seconds instead of embedding three views of 1,230 entries for minutes. A catalog edit costs
only the changed entries; `python -m search_worker.index cache` writes the cache for the current catalog.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from search_worker.embedders import Embedder, Vectors

log = logging.getLogger("search_worker.index")
KEY_BYTES = 16


def embedder_id(embedder: Embedder) -> str:
    """The embedder and the exact model behind it: a cache made with another model must not be used."""
    return f"{embedder.name}:{getattr(embedder, 'revision', '')}"


def models(embedder: Embedder, scope_embedder: Embedder | None) -> tuple[str, str]:
    """What an index must have been built with for these embedders (ranking, scope; "" = no scope model)."""
    return embedder_id(embedder), embedder_id(scope_embedder) if scope_embedder is not None else ""


def scope_cache_path(path: str | Path) -> Path:
    """The scope model's cache beside the ranking model's (one model per file)."""
    target = Path(path)
    return target.with_name(f"{target.stem}.scope{target.suffix}")


def text_key(identity: str, text: str) -> bytes:
    return hashlib.sha256(f"{identity}\0{text}".encode()).digest()[:KEY_BYTES]


class EmbeddingCache:
    def __init__(self, identity: str, dimension: int) -> None:
        self.identity = identity
        self.dimension = dimension
        self._rows: dict[bytes, Vectors] = {}

    def __len__(self) -> int:
        return len(self._rows)

    @classmethod
    def load(cls, path: str | Path | None, embedder: Embedder) -> EmbeddingCache:
        """The cache at `path` if it was made by this embedder's model; an empty one otherwise."""
        cache = cls(embedder_id(embedder), embedder.dimension)
        if not path or not Path(path).is_file():
            return cache
        with np.load(path) as stored:
            identity = str(stored["identity"])
            if identity != cache.identity or stored["vectors"].shape[1] != embedder.dimension:
                log.info("embedding cache %s is for %s, not %s: not used", path, identity, cache.identity)
                return cache
            vectors = stored["vectors"].astype(np.float32)
            cache._rows = {key.tobytes(): vectors[n] for n, key in enumerate(stored["keys"])}
        return cache

    def get(self, text: str) -> Vectors | None:
        return self._rows.get(text_key(self.identity, text))

    def put(self, text: str, vector: Vectors) -> None:
        self._rows[text_key(self.identity, text)] = vector

    def keep_only(self, texts: list[str]) -> None:
        """Forget what the catalog no longer holds, so the shipped file does not grow with every edit."""
        wanted = {text_key(self.identity, text) for text in texts}
        self._rows = {key: row for key, row in self._rows.items() if key in wanted}

    def save(self, path: str | Path) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._rows)
        rows = [self._rows[key] for key in keys]
        vectors = (np.stack(rows) if rows else np.zeros((0, self.dimension))).astype(np.float16)
        staging = target.with_name(f".{target.name}.tmp.npz")
        np.savez_compressed(
            staging,
            identity=np.array(self.identity),
            # Bytes as uint8 rows: a numpy bytes array would drop a key's trailing NUL bytes.
            keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES),
            vectors=vectors,
        )
        os.replace(staging, target)
