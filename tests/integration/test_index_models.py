"""An index remembers the exact models it was built with (issue 14's adapted model): a process with other
models never queries it, and `make up`'s `build --if-missing` rebuilds it instead of serving stale vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import load_settings
from search_worker.embedders import MiniLMEmbedder, create_embedder, create_scope_embedder
from search_worker.embedding_cache import EmbeddingCache, embedder_id, models
from search_worker.index import IndexMismatchError, build_index, current_version, open_current
from tests.conftest import CATALOG, ROOT


@pytest.fixture()
def small_catalog(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in CATALOG.read_text().splitlines()[:6]]
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_shipped_configuration_ranks_with_the_adapted_model_and_tests_scope_with_the_base_one() -> None:
    settings = load_settings({})
    ranking, scope = create_embedder(settings), create_scope_embedder(settings)
    assert scope is not None
    assert "minilm-catalog-v1" in embedder_id(ranking) and "minilm-base-v1" in embedder_id(scope)
    assert embedder_id(ranking) != embedder_id(scope)
    assert create_scope_embedder(load_settings({"MINILM_SCOPE_MODEL": "same"})) is None


def test_an_index_from_another_model_is_refused(small_catalog: Path, tmp_path: Path) -> None:
    old = MiniLMEmbedder(1, model="base")  # the unadapted package model, as indexes before issue 14 had
    build_index(small_catalog, tmp_path / "index", old)
    settings = load_settings({})
    ranking, scope = create_embedder(settings), create_scope_embedder(settings)
    with pytest.raises(IndexMismatchError, match="rebuild it"):
        open_current(tmp_path / "index", "minilm", *models(ranking, scope))
    # the same models open it
    assert open_current(tmp_path / "index", "minilm", *models(old, None)) is not None


def test_build_if_missing_rebuilds_an_index_made_with_another_model(small_catalog: Path, tmp_path: Path) -> None:
    old = MiniLMEmbedder(1, model="base")
    build_index(small_catalog, tmp_path / "index", old)
    before = current_version(tmp_path / "index")
    env = {
        **os.environ,
        "INDEX_DIR": str(tmp_path / "index"),
        "CATALOG_PATH": str(small_catalog),
        "EMBEDDING_CACHE_PATH": str(ROOT / "data" / "index" / "minilm-embeddings.npz"),
    }
    for _ in range(2):  # the second run finds the rebuilt index and keeps it
        subprocess.run(
            [sys.executable, "-m", "search_worker.index", "build", "--if-missing"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        if _ == 0:
            rebuilt = current_version(tmp_path / "index")
    assert rebuilt != before and current_version(tmp_path / "index") == rebuilt
    settings = load_settings({})
    index = open_current(
        tmp_path / "index", "minilm", *models(create_embedder(settings), create_scope_embedder(settings))
    )
    assert index is not None and index.meta.scope_model and index.scope_full.shape == (6, 384)


def test_a_scope_cache_is_one_models_file(tmp_path: Path) -> None:
    settings = load_settings({})
    scope = create_scope_embedder(settings)
    assert scope is not None
    cache = EmbeddingCache.load(ROOT / "data" / "index" / "minilm-embeddings.npz", scope)
    assert len(cache) == 0  # the ranking model's file is not the scope model's
