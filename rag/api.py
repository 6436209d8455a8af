"""The Python API: the one implementation the CLI and the UI call.

    from rag import RAG
    bot = RAG()                 # settings from env / .env, or RAG(docs_dir=..., top_k=...)
    bot.index()                 # incremental
    a = bot.ask("...")          # a.answer, a.sources, a.answered
    for text in (s := bot.ask_stream("...")): print(text, end="")
    s.answer                    # the checked Answer once the stream is done
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from .chunks import Chunker
from .embeddings import get_embedder, resolve_backend
from .errors import DocumentError, DocumentFilterError, QuestionError  # noqa: F401 - re-exported where it used to live
from .follow import StoreFollower
from .generators import resolve_name
from .history import Conversation, ConversationSummary, History
from .indexer import Indexer, Progress
from .lexical import LexicalIndex
from .models import Answer, Document, IndexReport, Source
from .retrieval import MODES, Mode, Retriever
from .safety import mask_credentials, mask_url
from .settings import BUNDLED_EMBED_MODEL, Settings
from .store import Store, open_for_rebuild


def safe_file_name(name: str) -> str:
    """An uploaded file's name made safe to save: no folders, no '..', no leading dot, only
    letters, digits, '_', '-' and '.'; the suffix must be a supported document type."""
    from .documents import SUPPORTED_SUFFIXES

    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", str(name or "")))[-1]
    base = re.sub(r"[^\w.-]+", "_", base, flags=re.UNICODE)
    base = re.sub(r"\.{2,}", ".", re.sub(r"_{2,}", "_", base)).lstrip("._-")
    stem, dot, suffix = base.rpartition(".")
    if not dot or f".{suffix.lower()}" not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentError(f"{name!r} is not a supported document type; use {kinds}")
    return f"{stem.strip('._-')[:120] or 'document'}.{suffix.lower()}"


class AnswerStream:
    """Iterate for text as it is generated; `.answer` holds the checked Answer at the end.
    The final answer text can differ from the streamed text: citations are checked after."""

    def __init__(self, run: Iterator[str]):
        self._run = run
        self.answer: Optional[Answer] = None

    def __iter__(self) -> Iterator[str]:
        for item in self._run:
            if isinstance(item, Answer):
                self.answer = item
            else:
                yield item

    def finish(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


def _is_glob(entry: str) -> bool:
    return any(c in entry for c in "*?[")


def _not_indexed(entry: str, catalog: dict) -> str:
    known = sorted(catalog)
    listed = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
    what = f"no indexed document matches {entry!r}" if _is_glob(entry) else f"no indexed document {entry!r}"
    return f"{what}; the indexed documents are: {listed or 'none (index the documents folder first)'}"


class RAG:
    def __init__(self, settings: Optional[Settings] = None, **overrides):
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            settings = Settings(**{**settings.model_dump(), **overrides})  # validated, unlike model_copy
        self.settings = settings
        self._lock = threading.Lock()
        self._store: Optional[Store] = None
        self._retriever: Optional[Retriever] = None
        self._history: Optional[History] = None
        self._embed_resolved: Optional[Settings] = None
        self._follower: Optional[StoreFollower] = None

    # ---- components, built on first use ---------------------------------------------------
    @property
    def embedder(self):
        return get_embedder(self._embed_settings())

    def _embed_settings(self) -> Settings:
        """The settings with `auto` turned into the backend this store's vectors came from, decided
        once (an older store keeps its vectors; a new one gets the fastest backend)."""
        if self.settings.embed_backend != "auto" or self.settings.embed_model != BUNDLED_EMBED_MODEL:
            return self.settings
        if self._embed_resolved is None:
            try:
                recorded = self.store.store_record().get("embed_model")
            except Exception:  # noqa: BLE001 - a broken store is reported where it is used; a new one is int8
                return self.settings.model_copy(update={"embed_backend": resolve_backend("auto")})
            # kept: every question reaches the embedder, and a copy of the settings each time is waste
            self._embed_resolved = self.settings.model_copy(
                update={"embed_backend": resolve_backend("auto", recorded)})
        return self._embed_resolved

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(self.settings)
            return self._store

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            lexical = LexicalIndex(self.store.data_dir / f"bm25_{self.settings.collection}")
            self._retriever = Retriever(self.settings, self.store, lexical, self.embedder)
        return self._retriever

    # ---- indexing --------------------------------------------------------------------------
    def index(self, rebuild: bool = False, progress: Optional[Progress] = None,
              docs_dir: Optional[Path] = None) -> IndexReport:
        docs = Path(docs_dir) if docs_dir else self.settings.docs_dir
        moved = None
        if rebuild:
            with self._lock:  # a store too damaged to open is moved aside, and a new one built
                if self._store is None:
                    self._store, moved = open_for_rebuild(self.settings)
        report = self._indexer(docs).run(rebuild=rebuild, progress=progress)
        report.moved_aside = str(moved) if moved else None
        return report

    def _indexer(self, docs: Path, parsed: Optional[dict] = None) -> Indexer:
        s = self.settings
        return Indexer(
            self.store, self.embedder, Chunker(self.embedder.tokenize, s.chunk_size, s.chunk_overlap),
            self.retriever, docs, s.store_dir, int(s.max_file_mb * 1e6), self._read_limits(), parsed,
        )

    def _read_limits(self, progress: Optional[Progress] = None):
        """What reading one file may cost (RAG_MAX_FILE_CHARS, RAG_MAX_PAGES, RAG_OCR); table blocks
        sized in the embedding model's tokens, so each fits one chunk."""
        from .readers import ReadLimits

        return ReadLimits.from_settings(self.settings, tokenize=self.embedder.tokenize, progress=progress)

    @staticmethod
    def supported_types() -> list[str]:
        """The file suffixes that are read (README "Supported documents"); other files are skipped."""
        from .documents import SUPPORTED_SUFFIXES

        return sorted(SUPPORTED_SUFFIXES)

    def ensure_indexed(self, progress: Optional[Progress] = None) -> Optional[IndexReport]:
        """Index the docs dir when the store holds nothing yet."""
        if self.store.catalog():
            return None
        return self.index(progress=progress)

    def documents(self) -> list:
        return sorted(self._catalog().values(), key=lambda e: e.doc_id)

    def _catalog(self) -> dict:
        """The documents questions are answered from: following the store (follow_store), those of
        the version served; otherwise the store's now."""
        retriever = self._retriever
        view = retriever.view if retriever is not None and retriever.following else None
        return view.catalog if view is not None else self.store.catalog()

    def add_document(self, name: str, data: bytes, progress: Optional[Progress] = None) -> tuple[str, IndexReport]:
        """Save a file (an upload) into the docs dir under a safe name and index it: (doc_id, report).
        A file of the same name is replaced. Raises DocumentError, saving nothing, for a file of
        another type, too big, empty or unreadable."""
        from .documents import UnreadableFile, load_document

        file_name = safe_file_name(name)
        limit = int(self.settings.max_file_mb * 1e6)
        if len(data) > limit:
            raise DocumentError(f"{file_name} is {len(data) / 1e6:.1f} MB, over the "
                                f"{limit / 1e6:.1f} MB limit (RAG_MAX_FILE_MB)")
        if not data:
            raise DocumentError(f"{file_name} is empty")
        docs = self.settings.docs_dir
        try:  # read once: the index run below uses this reading (OCR and all) unless the file changes
            doc = load_document(docs / file_name, docs, limit, data=data, limits=self._read_limits(progress))
        except UnreadableFile as exc:
            raise DocumentError(f"{file_name} cannot be read: {exc}") from None
        docs.mkdir(parents=True, exist_ok=True)
        partial = docs / f".{file_name}.part"  # hidden from scans until complete
        try:
            partial.write_bytes(data)
            os.replace(partial, docs / file_name)
        finally:
            partial.unlink(missing_ok=True)
        return file_name, self._indexer(docs, {doc.doc_id: doc}).run(progress=progress)

    def delete_document(self, doc_id: str, progress: Optional[Progress] = None) -> IndexReport:
        """Remove an indexed document: its file in the docs dir, then its chunks from the index."""
        if doc_id not in self.store.catalog(fresh=True):
            raise DocumentError(f"no indexed document {doc_id!r}")
        docs = self.settings.docs_dir.resolve()
        path = docs / doc_id
        if ".." in Path(doc_id).parts or not path.parent.resolve().is_relative_to(docs):
            raise DocumentError(f"{doc_id!r} is not inside the documents folder")
        path.unlink(missing_ok=True)  # a symlink goes, not what it points at
        return self.index(progress=progress)

    def document_file(self, doc_id: str) -> Path:
        """The file of an indexed document, to open it where a citation points: only a document the
        index holds, and only inside the documents folder (no '..', no hidden part, no symlink that
        leads out). Raises DocumentError."""
        if not isinstance(doc_id, str) or doc_id not in self._catalog():
            raise DocumentError(f"no indexed document {doc_id!r}")
        docs = self.settings.docs_dir.resolve()
        parts = Path(doc_id).parts
        path = docs / doc_id
        if (Path(doc_id).is_absolute() or any(p == ".." or p.startswith(".") for p in parts)
                or not path.resolve().is_relative_to(docs)):
            raise DocumentError(f"{doc_id!r} is not inside the documents folder")
        if not path.is_file():
            raise DocumentError(f"the file of {doc_id!r} is no longer in the documents folder")
        return path.resolve()

    def document_text(self, doc_id: str) -> tuple[Document, bool]:
        """An indexed document read afresh from its file as the index reads it (citation offsets
        point into its text), and whether the file is still the version the index holds."""
        from .documents import UnreadableFile, load_document

        path = self.document_file(doc_id)
        try:
            doc = load_document(path, path.parent, int(self.settings.max_file_mb * 1e6), limits=self._read_limits())
        except (UnreadableFile, OSError) as exc:
            raise DocumentError(f"{doc_id} cannot be read now: {exc}") from None
        doc.doc_id = doc_id
        entry = self._catalog().get(doc_id)
        return doc, entry is not None and entry.sha256 == doc.sha256

    # ---- questions -------------------------------------------------------------------------
    def validate(self, question: str) -> str:
        if question is None or not str(question).strip():
            raise QuestionError("Please type a question.")
        # A lone surrogate (undecodable bytes passed through) would break every tokenizer downstream.
        question = " ".join(str(question).encode("utf-8", "replace").decode("utf-8").split())
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"The question is {len(question):,} characters long; the limit is "
                f"{self.settings.max_question_chars:,} (RAG_MAX_QUESTION_CHARS). Please shorten it."
            )
        if not re.search(r"\w", question):
            raise QuestionError("The question has no words to search for.")
        return question

    def top_k_range(self) -> tuple[int, int]:
        """The top_k values a question may ask for (RAG_TOP_K's bounds)."""
        low = high = None
        for bound in Settings.model_fields["top_k"].metadata:
            low = getattr(bound, "ge", low)
            high = getattr(bound, "le", high)
        return int(low or 1), int(high or 50)

    def validate_options(self, top_k: Optional[int] = None, generator: Optional[str] = None,
                         mode: Optional[str] = None, history: Optional[list] = None) -> None:
        """Raise QuestionError (a ValueError) naming the allowed values for a bad argument."""
        from .generators import names

        low, high = self.top_k_range()
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not low <= top_k <= high):
            raise QuestionError(f"top_k must be a whole number from {low} to {high}, not {top_k!r} "
                                "(None: the configured RAG_TOP_K)")
        if generator is not None and generator not in names():
            raise QuestionError(f"generator must be one of {', '.join(names())}, not {generator!r}")
        if mode is not None and mode not in MODES:
            raise QuestionError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if history is not None and (not isinstance(history, list) or not all(
                isinstance(t, dict) and t.get("role") in ("user", "assistant") for t in history)):
            raise QuestionError('history must be a list of {"role": "user"|"assistant", "content": text} turns')

    def select_documents(self, doc_ids: Union[str, Iterable[str], None]) -> Optional[list[str]]:
        """The indexed documents a question is limited to: doc_ids is a list of document ids (paths
        relative to the docs dir, as `documents()` lists them) and/or globs over them ("reports/*.pdf",
        "*.md"; `*` also crosses folders), or one such string. None or empty: every document (None
        is returned). An entry that is an indexed id selects that document; any other entry must be a
        glob that matches one: an unknown id, or a glob matching nothing, raises DocumentFilterError."""
        if doc_ids is None:
            return None
        entries = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids) if isinstance(doc_ids, Iterable) else None
        if entries is None or not all(isinstance(e, str) for e in entries):
            raise DocumentFilterError(f"doc_ids must be a list of document ids or globs, not {doc_ids!r}")
        entries = [e for e in entries if e.strip()]
        if not entries:
            return None
        catalog = self._catalog()
        chosen: set[str] = set()
        for entry in entries:
            found = {entry} if entry in catalog else set(fnmatch.filter(catalog, entry)) if _is_glob(entry) else set()
            if not found:
                raise DocumentFilterError(_not_indexed(entry, catalog))
            chosen |= found
        return sorted(chosen)

    def retrieve(self, question: str, top_k: Optional[int] = None, mode: Mode = "hybrid",
                 doc_ids: Union[str, Iterable[str], None] = None) -> list[Source]:
        """doc_ids: search only these documents (ids and/or globs, see select_documents)."""
        question = self.validate(question)
        self.validate_options(top_k=top_k, mode=mode)
        only = self.select_documents(doc_ids)
        self.store.check_model(self.embedder.name)
        return self.retriever.retrieve(question, top_k=top_k, mode=mode, doc_ids=only)

    def ask(self, question: str, generator: Optional[str] = None, top_k: Optional[int] = None,
            history: Optional[list[dict]] = None, doc_ids: Union[str, Iterable[str], None] = None) -> Answer:
        return self.ask_stream(question, generator=generator, top_k=top_k, history=history,
                               doc_ids=doc_ids).finish()

    def ask_stream(self, question: str, generator: Optional[str] = None, top_k: Optional[int] = None,
                   history: Optional[list[dict]] = None,
                   doc_ids: Union[str, Iterable[str], None] = None) -> AnswerStream:
        """history: earlier turns as [{"role": "user"|"assistant", "content": str}, ...].
        doc_ids: answer from these documents only (ids and/or globs, see select_documents)."""
        question = self.validate(question)  # raise now, not on first iteration
        self.validate_options(top_k=top_k, generator=generator, history=history)
        only = None
        if doc_ids is not None:
            self.ensure_indexed()  # the ids are checked against the index: a first question builds it
            only = self.select_documents(doc_ids)
        return AnswerStream(self._answer(question, generator, top_k, history or [], only))

    def _answer(self, question: str, generator: Optional[str], top_k: Optional[int], history: list[dict],
                doc_ids: Optional[list[str]] = None):
        from .answering import Pipeline

        return Pipeline(self).run(question, generator, top_k, history, doc_ids)

    def as_retriever(self, top_k: Optional[int] = None, mode: Mode = "hybrid"):
        """A LlamaIndex BaseRetriever over `retrieve` (nodes carry doc_id, file_name, title, start, end, marker)."""
        from .llamaindex import retriever

        return retriever(self, top_k=top_k, mode=mode)

    def as_query_engine(self, generator: Optional[str] = None, top_k: Optional[int] = None):
        """A LlamaIndex query engine over `ask`: a Response with the checked answer and its sources as nodes."""
        from .llamaindex import query_engine

        return query_engine(self, generator=generator, top_k=top_k)

    def generator_choices(self) -> tuple[list[str], str]:
        """(the generators that can answer here, the one used when none is named)."""
        from .generators import available

        choices = available(self.settings)
        return choices, choices[0]

    def warm_up(self) -> None:
        """Load what the first question needs (BM25 index, embedding model), so it is answered fast."""
        self.retriever.sync_lexical()
        self.embedder.embed(["warm-up"])

    # ---- several processes on one Chroma server ------------------------------------------
    def follow_store(self) -> StoreFollower:
        """Keep answering from the latest version other processes publish, without a question ever
        waiting for a rebuild: a thread polls the store every RAG_STORE_POLL_SECONDS and swaps in the
        new document list and BM25 index once made (rag/follow.py). For a process that serves
        questions from a Chroma server other processes index; `rag serve` starts it with CHROMA_HOST."""
        retriever = self.retriever
        with self._lock:
            if self._follower is None:
                self._follower = StoreFollower(retriever, self.settings.store_poll_seconds).start()
            return self._follower

    @property
    def follower(self) -> Optional[StoreFollower]:
        """The thread following the store (follow_store), if one was started: its `error` says why
        its last check failed (the server away), None when it worked."""
        return self._follower

    def served_version(self) -> Optional[int]:
        """The store version questions are answered from. Following the store, the one swapped in
        last (None until the first is made); otherwise the store's own, which each question catches
        up with."""
        retriever = self._retriever
        if retriever is not None and retriever.following:
            return retriever.version
        return self.store.version()

    # ---- kept conversations (rag/history.py) -----------------------------------------------
    # `owner` is whose conversations they are (the UI passes "user:<name>" or "browser:<id>"); a
    # conversation of another owner is answered as one that does not exist (ConversationError).
    @property
    def history(self) -> History:
        """The conversations file, `<RAG_STORE_DIR>/conversations.sqlite3`, opened on first use."""
        from .history import FILE_NAME

        with self._lock:
            if self._history is None:
                self._history = History(self.settings.store_dir / FILE_NAME)
            return self._history

    def conversations(self, owner: str) -> list[ConversationSummary]:
        """The owner's conversations (id, title, created, updated, number of turns), latest first."""
        return self.history.owned(owner)

    def conversation(self, conversation_id: str, owner: str) -> Conversation:
        """One of the owner's conversations with its turns: question, checked Answer, feedback."""
        return self.history.get(conversation_id, owner)

    def delete_conversation(self, conversation_id: str, owner: str) -> None:
        self.history.delete(conversation_id, owner)

    def record_turn(self, answer: Answer, owner: str, conversation_id: Optional[str] = None,
                    question: Optional[str] = None) -> tuple[str, int]:
        """Keep a question (default: answer.question) and its checked answer in the owner's
        conversation, a new one when conversation_id is None: (conversation id, turn index)."""
        return self.history.record(owner, answer, conversation_id, question)

    def feedback(self, conversation_id: str, turn_index: int, rating: Union[str, int, bool],
                 comment: Optional[str] = None, *, owner: str) -> int:
        """Thumbs up ("up", 1, True) or down ("down", -1, False) on a turn (-1: the latest), with an
        optional comment; replaces earlier feedback on it. Returns the turn's index."""
        return self.history.rate(conversation_id, turn_index, rating, comment, owner)

    def export_conversation(self, conversation_id: str, owner: str, fmt: str = "markdown") -> str:
        """"markdown": each question, the answer with its [n] markers and numbered references;
        "json": {"id", "title", ..., "turns": [Answer.to_dict() + {"feedback"}, ...]}."""
        from .history import export

        return export(self.history.get(conversation_id, owner), fmt)

    def feedback_records(self) -> list[dict]:
        """Every kept turn with feedback, of every owner (browsers by a digest of their id): question,
        answer, sources, rating, comment; what `rag feedback export` writes."""
        return self.history.feedback()

    # ---- status ----------------------------------------------------------------------------
    def generator_status(self) -> dict:
        name, why = resolve_name(self.settings)
        info = {"generator": name}
        if name == "openai":
            info["model"] = self.settings.llm_model
            info["endpoint"] = mask_url(self.settings.openai_base_url) or "https://api.openai.com/v1"
        if name == "local":
            from .local_weights import describe

            info.update(describe(self.settings))
        if why:
            info["note"] = mask_credentials(why)
        return info

    def status(self) -> dict:
        """What is indexed and which models answer; no password, key or token of a URL is shown."""
        catalog = self._catalog()
        record = self.store.store_record()
        retriever = self._retriever
        info = {
            "documents": len(catalog),
            # the version answered from: a replica's lags a new one until its swap (follow_store)
            "index_version": retriever.version if retriever is not None and retriever.following
            else int(record.get("version", 0)),
            "chunks": self.store.chunk_count(),
            "embedding_model": record.get("embed_model") or self.settings.embed_model,
            "store": self.settings.describe_store(),
            "store_bytes": self.store_bytes(),
            "docs_dir": str(self.settings.docs_dir.resolve()),
            **self.generator_status(),
        }
        holder = self.store.lease_holder()
        if holder is not None:
            info["writing"] = holder.describe()
        return {k: mask_credentials(v) if isinstance(v, str) else v for k, v in info.items()}

    def store_bytes(self) -> Optional[int]:
        """Size of the on-disk store; None for a Chroma server (its size is the server's)."""
        if self.settings.chroma_host:
            return None
        return sum(p.stat().st_size for p in self.settings.store_dir.rglob("*") if p.is_file())
