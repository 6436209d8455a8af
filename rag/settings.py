"""Every knob of the app in one place, read from the environment and `.env`.

Each field's description and group also feed `.env.example` and the README's settings table
(rag/settings_doc.py), so a setting is described here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_EMBED_MODEL = "all-MiniLM-L6-v2"

# Sections of the generated docs, in order, each with the heading line .env.example gives it.
GROUPS: dict[str, str] = {
    "documents and store": "Where documents live and where the index is kept",
    "chunking": "Chunking (tokens of the embedding model; MiniLM reads at most 256)",
    "embeddings": "Embeddings",
    "retrieval": "Retrieval",
    "answers": "Answers",
    "local model": "Bundled local model (pip install -e '.[local]')",
    "server/UI": "Browser UI (rag serve)",
    "Chroma server": "Chroma server instead of the on-disk store (scale-out)",
}


def _env(name: str, field: str, default: Any, description: str, group: str, example: Any = None, **kw: Any) -> Any:
    # Accept both the documented env var and the field name as a keyword argument.
    # `example` is what .env.example shows for a setting whose default is unset.
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    extra: dict[str, Any] = {"group": group}
    if example is not None:
        extra["example"] = example
    return Field(default, validation_alias=AliasChoices(name, field), description=description,
                 json_schema_extra=extra, **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    docs_dir: Path = _env(
        "RAG_DOCS_DIR", "docs_dir", Path("seeds"),
        "Folder of documents to index (`.txt`, `.md`, `.html`, `.pdf`, `.docx`, `.pptx`, `.xlsx`, `.csv`, "
        "`.png`, `.jpg`; README \"Supported documents\").", "documents and store")
    store_dir: Path = _env(
        "RAG_STORE_DIR", "store_dir", Path("index_store"),
        "Folder of the on-disk index (Chroma plus BM25); with a Chroma server it keeps this machine's BM25 "
        "copy and write lock.", "documents and store")
    collection: str = _env(
        "RAG_COLLECTION", "collection", "rag",
        "Name of the index (collections `<name>_chunks` and `<name>_docs`, and `<name>_lease` on a server), so "
        "several indexes can share one Chroma server.", "documents and store")
    max_file_mb: float = _env(
        "RAG_MAX_FILE_MB", "max_file_mb", 20.0,
        "Files over this many megabytes are skipped with that reason, and the UI refuses larger uploads.",
        "documents and store")
    # a few KB of PDF can expand to millions of characters (issue 12): bounded while reading
    max_file_chars: int = _env(
        "RAG_MAX_FILE_CHARS", "max_file_chars", 2_000_000,
        "A file whose text runs past this many characters (about 1,000 book pages) is skipped with that "
        "reason, not half-indexed; reading stops as soon as it is over.", "documents and store", ge=1000)
    max_pages: int = _env(
        "RAG_MAX_PAGES", "max_pages", 2000,
        "PDFs with more pages, and presentations with more slides, are skipped with that reason.",
        "documents and store", ge=1)
    ocr: bool = _env(
        "RAG_OCR", "ocr", True,
        "Read the text of scanned PDF pages (pages without a text layer) and of `.png`/`.jpg` images by OCR "
        "(rapidocr, offline, a few seconds a page); `false` skips images and scanned PDFs with that reason.",
        "documents and store")

    watch: bool = _env(
        "RAG_WATCH", "watch", True,
        "`rag serve` watches the documents folder and re-indexes what was added, changed or deleted there "
        "within a few seconds (once the folder has been quiet for 1.5 s and each changed file has stopped "
        "growing); `false` turns it off (the Re-index button remains). `rag index --watch` does the same "
        "without the UI.", "documents and store")

    # MiniLM reads 256 word pieces; the default stays under it with room for [CLS]/[SEP]
    chunk_size: int = _env(
        "RAG_CHUNK_SIZE", "chunk_size", 200,
        "Chunk length in tokens, counted with the embedding model's tokenizer.", "chunking", ge=32, le=2048)
    chunk_overlap: int = _env(
        "RAG_CHUNK_OVERLAP", "chunk_overlap", 30,
        "Tokens that consecutive chunks of a document share.", "chunking", ge=0)

    embed_model: str = _env(
        "RAG_EMBED_MODEL", "embed_model", BUNDLED_EMBED_MODEL,
        "Embedding model: the bundled `all-MiniLM-L6-v2`, or `openai:<model>` for the embeddings of the "
        "endpoint at `OPENAI_BASE_URL`.", "embeddings")
    # The rule: the fastest backend within 0.005 nDCG@10 of torch on SciFact is the default.
    # onnx-int8 scored 0.734 against torch's 0.736 at ~2x the chunks/s (README "Embedding backends").
    embed_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = _env(
        "RAG_EMBED_BACKEND", "embed_backend", "auto",
        "How the bundled embedding model runs: `torch` (sentence-transformers), `onnx` (ONNX Runtime, the same "
        "vectors to float precision, so it shares stores with `torch`) or `onnx-int8` (int8 weights, about twice "
        "as fast; its vectors differ slightly, so its stores are its own and the others refuse them). `auto` "
        "picks `onnx-int8` for a new store and `onnx` for a store built by `torch` or `onnx`. The ONNX "
        "files are exported once from the bundled weights into `RAG_EMBED_CACHE_DIR`.", "embeddings")
    embed_cache_dir: Optional[Path] = _env(
        "RAG_EMBED_CACHE_DIR", "embed_cache_dir", None,
        "Folder of the ONNX exports of the embedding model (about 90 MB for `onnx`, 66 MB more for `onnx-int8`, "
        "made on first use); unset means `~/.cache/rag-chat/embeddings`.", "embeddings",
        example="~/.cache/rag-chat/embeddings")
    embed_batch_size: int = _env(
        "RAG_EMBED_BATCH_SIZE", "embed_batch_size", 32,
        "Chunks the bundled embedding model embeds per batch.", "embeddings", ge=1)

    top_k: int = _env(
        "RAG_TOP_K", "top_k", 5,
        "Passages given to the generator for each question (1 to 50).", "retrieval", ge=1, le=50)
    candidates: int = _env(
        "RAG_CANDIDATES", "candidates", 40,
        "Passages the dense and the BM25 search each propose before their rankings are fused.",
        "retrieval", ge=1)
    # zscore was measured best on SciFact (README "Retrieval quality")
    fusion: Literal["zscore", "rrf"] = _env(
        "RAG_FUSION", "fusion", "zscore",
        "How the dense and BM25 rankings are fused: `zscore` adds each ranking's standardised scores, "
        "`rrf` adds reciprocal ranks (reciprocal rank fusion, using `RAG_RRF_K`).", "retrieval")
    rrf_k: int = _env(
        "RAG_RRF_K", "rrf_k", 60,
        "The constant k of reciprocal rank fusion (`RAG_FUSION=rrf`): a passage at rank r scores "
        "1/(k+r).", "retrieval", ge=1)
    dense_weight: float = _env(
        "RAG_DENSE_WEIGHT", "dense_weight", 1.0,
        "Weight of the dense (embedding) ranking in the fusion.", "retrieval", ge=0)
    bm25_weight: float = _env(
        "RAG_BM25_WEIGHT", "bm25_weight", 1.0,
        "Weight of the BM25 (keyword) ranking in the fusion.", "retrieval", ge=0)
    # no cross-encoder ships offline (README "Reranking"): only a folder the user already has is read
    rerank_model: Optional[Path] = _env(
        "RAG_RERANK_MODEL", "rerank_model", None,
        "Folder of a local cross-encoder (a sentence-transformers `CrossEncoder`, e.g. a copy of "
        "`ms-marco-MiniLM-L-6-v2`) that rescores the best fused passages before the top `RAG_TOP_K` are "
        "kept; unset means no reranking. Read from that folder only, never downloaded: none ships with the "
        "app (README \"Reranking\").", "retrieval", example="/path/to/cross-encoder")
    rerank_candidates: int = _env(
        "RAG_RERANK_CANDIDATES", "rerank_candidates", 20,
        "Best fused passages the cross-encoder of `RAG_RERANK_MODEL` reads and rescores per question "
        "(its cost grows with them); ignored without it.", "retrieval", ge=1, le=200)
    min_similarity: float = _env(
        "RAG_MIN_SIMILARITY", "min_similarity", 0.25,
        "Below this cosine similarity of the best passage the question counts as not covered by the "
        "documents, and the answer says so.", "retrieval")

    min_support: float = _env(
        "RAG_MIN_SUPPORT", "min_support", 0.6,
        "Share of what an answer sentence adds beyond the question (its new words, names, numbers) that "
        "a passage must hold for the sentence to be cited to it; unsupported sentences are dropped.",
        "answers", ge=0.0, le=1.0)
    max_documents_per_answer: int = _env(
        "RAG_MAX_DOCUMENTS_PER_ANSWER", "max_documents_per_answer", 3,
        "Questions about several articles (\"what do the articles say about X?\") are answered per "
        "document, for at most this many documents.", "answers", ge=1, le=10)
    generator: Literal["auto", "openai", "local", "extractive"] = _env(
        "RAG_GENERATOR", "generator", "auto",
        "Who writes the answers: `auto` = `openai` if an endpoint or key is set, else `local` if the bundled "
        "model is installed, else `extractive` (quotes the passages).", "answers")
    openai_api_key: Optional[SecretStr] = _env(
        "OPENAI_API_KEY", "openai_api_key", None,
        "API key of the OpenAI-compatible endpoint (never printed).", "answers")
    openai_base_url: Optional[str] = _env(
        "OPENAI_BASE_URL", "openai_base_url", None,
        "Any OpenAI-compatible endpoint: OpenAI, Ollama (`http://127.0.0.1:11434/v1`), vLLM, llama.cpp "
        "server; unset with a key set means OpenAI's own.", "answers", example="http://127.0.0.1:11434/v1")
    llm_model: str = _env(
        "RAG_LLM_MODEL", "llm_model", "gpt-4o-mini",
        "Model the OpenAI-compatible endpoint is asked for.", "answers")
    llm_timeout: float = _env(
        "RAG_LLM_TIMEOUT", "llm_timeout", 60.0,
        "Seconds an LLM answer may take in all; past it the answer is quoted from the passages "
        "(extractive).", "answers", gt=0)
    max_answer_tokens: int = _env(
        "RAG_MAX_ANSWER_TOKENS", "max_answer_tokens", 256,
        "Longest answer an LLM may write, in tokens.", "answers", ge=16)
    temperature: float = _env(
        "RAG_TEMPERATURE", "temperature", 0.0,
        "Sampling temperature of the LLM; 0 gives the same answer to the same question.", "answers", ge=0)
    max_question_chars: int = _env(
        "RAG_MAX_QUESTION_CHARS", "max_question_chars", 2000,
        "Questions longer than this many characters are refused with a message.", "answers", ge=10)

    local_model_path: Optional[Path] = _env(
        "RAG_LOCAL_MODEL_PATH", "local_model_path", None,
        "Any GGUF model file to run instead of the bundled Qwen2.5-Coder-1.5B (chat template from the file).",
        "local model", example="/path/to/other.gguf")
    local_cache_dir: Optional[Path] = _env(
        "RAG_LOCAL_CACHE_DIR", "local_cache_dir", None,
        "Folder where the bundled model's slices are joined into one file (1.1 GB, once); unset means "
        "`~/.cache/rag-chat`.", "local model", example="~/.cache/rag-chat")
    # 2 measured faster than 1 on the 2-core target, and no slower beside a busy embedding loop
    # (scripts/bench_local.py; README "Local model")
    llm_threads: int = _env(
        "RAG_LLM_THREADS", "llm_threads", 2,
        "Threads llama.cpp runs the local model on; 2 measured faster than 1 on a 2-core machine.",
        "local model", ge=1)
    local_budget_chars: int = _env(
        "RAG_LOCAL_BUDGET_CHARS", "local_budget_chars", 900,
        "Characters of passage text the local model reads per question (about 4 s per 1,000 on 2 cores "
        "before the first word): the best sentences with the list lead-ins, table headers and quote "
        "speakers they need.", "local model", ge=200)
    llm_context: int = _env(
        "RAG_LLM_CONTEXT", "llm_context", 4096,
        "Context window of the local model, in tokens.", "local model", ge=512)

    auth: Optional[SecretStr] = _env(
        "RAG_AUTH", "auth", None,
        "Login for the browser UI as `user:password` (the password is never printed); set it before "
        "binding to anything but 127.0.0.1.", "server/UI")
    api_key: Optional[SecretStr] = _env(
        "RAG_API_KEY", "api_key", None,
        "Bearer token of the OpenAI-compatible API at `/v1` (`Authorization: Bearer <key>`; never printed). "
        "Unset, `/v1` answers only when the server is bound to a loopback address, and refuses requests on "
        "any other. Independent of `RAG_AUTH`.", "server/UI")
    login_attempts: int = _env(
        "RAG_LOGIN_ATTEMPTS", "login_attempts", 5,
        "Failed logins allowed per client address and per user name within `RAG_LOGIN_WINDOW`; past them "
        "logins are refused (429) for the window, twice as long at each further lockout (at most an hour). "
        "Each failure is answered a little later than the one before.", "server/UI", ge=1)
    login_window: float = _env(
        "RAG_LOGIN_WINDOW", "login_window", 60.0,
        "Seconds over which failed logins are counted, and the length of a first lockout.", "server/UI", gt=0)
    allowed_hosts: Optional[str] = _env(
        "RAG_ALLOWED_HOSTS", "allowed_hosts", None,
        "Host names the server answers to besides its bind address, `localhost`, the machine's own name and "
        "IP addresses (comma-separated; `.example.org` covers its subdomains; `*` turns the check off). "
        "Requests naming another host are refused (DNS rebinding); browser requests from another origin than "
        "the page's own, or a name listed here, are refused too.", "server/UI", example="rag.example.org")
    upload_cache_seconds: int = _env(
        "RAG_UPLOAD_CACHE_SECONDS", "upload_cache_seconds", 3600,
        "Uploads are deleted from Gradio's temporary folder (`GRADIO_TEMP_DIR`) this many seconds after they "
        "arrive, and all of them when the server stops; the documents folder keeps its own copy.",
        "server/UI", ge=1)
    keep_conversations: bool = _env(
        "RAG_KEEP_CONVERSATIONS", "keep_conversations", True,
        "The browser UI keeps each conversation (questions, checked answers with their sources, thumbs up/down "
        "and comments) in `conversations.sqlite3` in `RAG_STORE_DIR`, per logged-in user or per browser, to "
        "reopen after a reload or restart, export or delete; `false` keeps nothing and hides the list.",
        "server/UI")
    ssl_certfile: Optional[Path] = _env(
        "RAG_SSL_CERTFILE", "ssl_certfile", None,
        "Certificate (PEM) to serve the UI over HTTPS; needs `RAG_SSL_KEYFILE`.", "server/UI",
        example="/etc/rag/cert.pem")
    ssl_keyfile: Optional[Path] = _env(
        "RAG_SSL_KEYFILE", "ssl_keyfile", None,
        "Private key (PEM, unencrypted) of `RAG_SSL_CERTFILE`.", "server/UI", example="/etc/rag/key.pem")

    chroma_host: Optional[str] = _env(
        "CHROMA_HOST", "chroma_host", None,
        "Host of a Chroma server to keep the index on; unset means the on-disk store in `RAG_STORE_DIR`.",
        "Chroma server", example="127.0.0.1")
    chroma_port: int = _env(
        "CHROMA_PORT", "chroma_port", 8000, "Port of the Chroma server.", "Chroma server")
    chroma_timeout: float = _env(
        "CHROMA_TIMEOUT", "chroma_timeout", 60.0,
        "Seconds a request to the Chroma server may take before the server counts as not answering.",
        "Chroma server", gt=0)
    # long enough to ride out a slow request or a pause; short enough that a dead writer's lease clears soon
    write_lease_seconds: float = _env(
        "RAG_WRITE_LEASE_SECONDS", "write_lease_seconds", 30.0,
        "With a Chroma server, an indexing run (`rag index`, the UI's re-index, upload or delete) holds a lease "
        "kept in the store, renewed every third of this many seconds; another indexer is refused, told who "
        "holds it, until it is released. A holder that died frees it after this long.", "Chroma server", ge=1)
    store_poll_seconds: float = _env(
        "RAG_STORE_POLL_SECONDS", "store_poll_seconds", 2.0,
        "With a Chroma server, `rag serve` checks the store's version this often; when another process has "
        "indexed, it loads the new keyword index and document list in the background and then switches to "
        "them at once (questions meanwhile are answered from the previous version).", "Chroma server", gt=0)

    def openai_configured(self) -> bool:
        return bool(self.openai_base_url or self.openai_api_key)

    def describe_store(self) -> str:
        """Where the index is, fit to show: a password or token in CHROMA_HOST is masked."""
        from .safety import mask_url

        if self.chroma_host:
            host = self.chroma_host if "://" in self.chroma_host else f"http://{self.chroma_host}"
            return f"chroma server {mask_url(f'{host}:{self.chroma_port}')} (collection {self.collection})"
        return f"{self.store_dir.resolve()} (collection {self.collection})"
