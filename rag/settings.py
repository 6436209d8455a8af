"""Every knob of the app in one place, read from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_EMBED_MODEL = "all-MiniLM-L6-v2"


def _env(name: str, field: str, default, **kw):
    # Accept both the documented env var and the field name as a keyword argument.
    return Field(default, validation_alias=AliasChoices(name, field), **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # documents and store
    docs_dir: Path = _env("RAG_DOCS_DIR", "docs_dir", Path("seeds"))
    store_dir: Path = _env("RAG_STORE_DIR", "store_dir", Path("index_store"))
    collection: str = _env("RAG_COLLECTION", "collection", "rag")
    max_file_mb: float = _env("RAG_MAX_FILE_MB", "max_file_mb", 20.0)

    # chunking: MiniLM reads 256 word pieces; stay under it with room for [CLS]/[SEP]
    chunk_size: int = _env("RAG_CHUNK_SIZE", "chunk_size", 200, ge=32, le=2048)
    chunk_overlap: int = _env("RAG_CHUNK_OVERLAP", "chunk_overlap", 30, ge=0)

    # embeddings: the bundled model, or "openai:<model>" for an OpenAI-compatible endpoint
    embed_model: str = _env("RAG_EMBED_MODEL", "embed_model", BUNDLED_EMBED_MODEL)
    embed_batch_size: int = _env("RAG_EMBED_BATCH_SIZE", "embed_batch_size", 32, ge=1)

    # retrieval
    top_k: int = _env("RAG_TOP_K", "top_k", 5, ge=1, le=50)
    candidates: int = _env("RAG_CANDIDATES", "candidates", 40, ge=1)
    # zscore: add each ranking's standardised scores (measured best on SciFact); rrf: reciprocal ranks
    fusion: Literal["zscore", "rrf"] = _env("RAG_FUSION", "fusion", "zscore")
    rrf_k: int = _env("RAG_RRF_K", "rrf_k", 60, ge=1)
    dense_weight: float = _env("RAG_DENSE_WEIGHT", "dense_weight", 1.0, ge=0)
    bm25_weight: float = _env("RAG_BM25_WEIGHT", "bm25_weight", 1.0, ge=0)
    # below this cosine similarity of the best passage the question counts as not covered
    min_similarity: float = _env("RAG_MIN_SIMILARITY", "min_similarity", 0.25)

    # generation
    generator: Literal["auto", "openai", "local", "extractive"] = _env(
        "RAG_GENERATOR", "generator", "auto"
    )
    openai_api_key: Optional[SecretStr] = _env("OPENAI_API_KEY", "openai_api_key", None)
    openai_base_url: Optional[str] = _env("OPENAI_BASE_URL", "openai_base_url", None)
    llm_model: str = _env("RAG_LLM_MODEL", "llm_model", "gpt-4o-mini")
    llm_timeout: float = _env("RAG_LLM_TIMEOUT", "llm_timeout", 60.0, gt=0)
    max_answer_tokens: int = _env("RAG_MAX_ANSWER_TOKENS", "max_answer_tokens", 256, ge=16)
    temperature: float = _env("RAG_TEMPERATURE", "temperature", 0.0, ge=0)

    # bundled local model (xllamacpp)
    local_model_path: Optional[Path] = _env("RAG_LOCAL_MODEL_PATH", "local_model_path", None)
    local_cache_dir: Optional[Path] = _env("RAG_LOCAL_CACHE_DIR", "local_cache_dir", None)
    # 2 measured faster than 1 on the 2-core target, and no slower beside a busy embedding loop
    # (scripts/bench_local.py; README "Local model")
    llm_threads: int = _env("RAG_LLM_THREADS", "llm_threads", 2, ge=1)
    llm_context: int = _env("RAG_LLM_CONTEXT", "llm_context", 4096, ge=512)

    # question limits
    max_question_chars: int = _env("RAG_MAX_QUESTION_CHARS", "max_question_chars", 2000, ge=10)

    # Chroma server (scale-out); unset means the embedded on-disk store
    chroma_host: Optional[str] = _env("CHROMA_HOST", "chroma_host", None)
    chroma_port: int = _env("CHROMA_PORT", "chroma_port", 8000)
    # seconds a request to the server may take before the server counts as not answering
    chroma_timeout: float = _env("CHROMA_TIMEOUT", "chroma_timeout", 60.0, gt=0)

    # browser UI: "user:password" turns on login (needed before binding beyond 127.0.0.1)
    auth: Optional[SecretStr] = _env("RAG_AUTH", "auth", None)

    def openai_configured(self) -> bool:
        return bool(self.openai_base_url or self.openai_api_key)

    def describe_store(self) -> str:
        if self.chroma_host:
            return f"chroma server http://{self.chroma_host}:{self.chroma_port} (collection {self.collection})"
        return f"{self.store_dir.resolve()} (collection {self.collection})"
