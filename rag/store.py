"""Stage 3b: the Chroma store. Chunks and their vectors in one collection; a catalog of documents
in another. A document's catalog record is written only after all its chunks are, so the catalog
is the commit point: chunks whose document version is not in the catalog are invisible to queries
and swept up by the next index run. Readers keep the catalog they read until a run publishes (moves
the store's version on); a replaced version's chunks are deleted only after that, so a question
asked during a run sees each document whole, old or new."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Optional

import numpy as np

from . import store_disk
from .errors import StoreBroken, StoreError, StoreLocked  # noqa: F401 - re-exported where it used to live
from .settings import Settings
from .store_lease import Holder, WriteLease, read_holder

STORE_RECORD = "__store__"
# No call may depend on the store fitting one request: Chroma 1.5.9 fails any `get` of more than
# 32,766 records ("too many SQL variables"). Writes and reads by id go _BATCH ids at a time; whole
# collections (and everything matching a filter) are read _PAGE records at a time.
_BATCH = 1000
_PAGE = 5000
_MAX_RESTARTS = 20  # a paged read that keeps losing its place to deletes stops starting over


def _settings_for(model_name: str) -> str:
    """The settings that give a recorded model name (rag/embeddings.py recorded_name): a name with
    a `+backend` suffix is the bundled model on that backend."""
    model, _, backend = model_name.partition("+")
    if backend:
        return f"RAG_EMBED_MODEL={model} and RAG_EMBED_BACKEND={backend}"
    if not model.startswith("openai:"):
        return f"RAG_EMBED_MODEL={model} and RAG_EMBED_BACKEND=torch (or onnx)"
    return f"RAG_EMBED_MODEL={model}"


@dataclass
class CatalogEntry:
    doc_id: str
    sha256: str
    title: str
    file_name: str
    chunks: int
    indexed_at: float
    # sentences addressing the assistant found in it: kept out of prompts and evidence, reported
    instructions: int = 0


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def _server_client(settings: Settings):
    import chromadb
    import httpx

    try:
        client = chromadb.HttpClient(host=settings.chroma_host or "", port=settings.chroma_port,
                                     settings=_chroma_settings())
    except Exception as exc:
        raise StoreError(_server_down(settings, exc)) from None
    # chromadb waits forever by default: a server that hangs would hang every question
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:
        session.timeout = httpx.Timeout(settings.chroma_timeout, connect=min(5.0, settings.chroma_timeout))
    return client


def _server_down(settings: Settings, exc: BaseException) -> str:
    import httpx

    why = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        why = f"no answer within {settings.chroma_timeout:g} s, CHROMA_TIMEOUT"
    return (
        f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({why}); "
        f"check that it runs (`chroma run --path <data dir> --host {settings.chroma_host} --port "
        f"{settings.chroma_port}`) or unset CHROMA_HOST for the on-disk store; nothing needs "
        "restarting here: the next request reconnects"
    )


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (httpx.TransportError, ConnectionError))


class _Collection:
    """A Chroma collection whose failures say what to do. A server that went away gives a
    StoreError; a collection the server no longer knows (it came back empty, or another process
    rebuilt the store) is opened again and the call retried once."""

    def __init__(self, store: "Store", name: str):
        self._store, self.name = store, name

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            from chromadb.errors import NotFoundError

            for attempt in (1, 2):
                coll = self._store._collection(self.name)
                try:
                    return getattr(coll, method)(*args, **kwargs)
                except NotFoundError:
                    self._store._forget_collections()
                    if attempt == 2:
                        raise StoreError(
                            f"the Chroma collection {self.name} disappeared; run `rag index` to rebuild it"
                        ) from None
                except Exception as exc:
                    embedded = not self._store.settings.chroma_host
                    if embedded and store_disk.damaged(exc):
                        raise store_disk.broken(self._store.settings.store_dir, exc) from None
                    if not _is_connection_error(exc):
                        raise
                    self._store._forget_collections()
                    raise StoreError(_server_down(self._store.settings, exc)) from None

        return call


class Store:
    def __init__(self, settings: Settings):
        self.settings = settings
        store_disk.prepare(settings.store_dir)
        # data_dir holds Chroma's files and the BM25 index: the store folder, or a read-only one's copy
        self.data_dir, self.read_only = settings.store_dir, None
        self._open_lock = threading.RLock()
        self._collections: dict[str, object] = {}
        if settings.chroma_host:
            self.client = _server_client(settings)
        else:
            reason = store_disk.unwritable(settings.store_dir)
            if reason is None:
                _hold_open(settings.store_dir)
            self.client, self.data_dir, self.read_only = store_disk.open_client(
                settings.store_dir, _chroma_settings(), reason)
        name = settings.collection
        self.chunks = _Collection(self, f"{name}_chunks")
        self.docs = _Collection(self, f"{name}_docs")
        self.leases = _Collection(self, f"{name}_lease")  # on a server only, made on first use
        self._open_collections()
        self._catalog: Optional[dict[str, CatalogEntry]] = None
        self._catalog_version: Optional[int] = None
        self._catalog_lock = threading.Lock()

    def _open_collections(self):
        for coll in (self.chunks, self.docs):
            self._collection(coll.name)

    def _collection(self, name: str):
        with self._open_lock:
            coll = self._collections.get(name)
            if coll is None:
                try:
                    coll = self.client.get_or_create_collection(
                        name, metadata={"hnsw:space": "cosine"}, embedding_function=None
                    )
                except StoreError:
                    raise
                except Exception as exc:
                    if not self.settings.chroma_host and store_disk.damaged(exc):
                        raise store_disk.broken(self.settings.store_dir, exc) from None
                    if not (self.settings.chroma_host and _is_connection_error(exc)):
                        raise
                    raise StoreError(_server_down(self.settings, exc)) from None
                self._collections[name] = coll
            return coll

    def _forget_collections(self):
        """After a failure: the next call opens the collections again (and so reconnects)."""
        with self._open_lock:
            self._collections.clear()

    # ---- store record: which model built it, a version counter, a dirty flag -----------------
    def store_record(self) -> dict:
        got = self.docs.get(ids=[STORE_RECORD], include=["metadatas"])
        return dict(got["metadatas"][0]) if got["ids"] else {}

    def _write_store_record(self, **fields):
        meta = self.store_record()
        meta.update(fields)
        self.docs.upsert(ids=[STORE_RECORD], embeddings=[[1.0]], metadatas=[meta])

    def version(self) -> int:
        return int(self.store_record().get("version", 0))

    def check_model(self, embed_model: str):
        built_with = self.store_record().get("embed_model")
        if built_with and built_with != embed_model:
            raise StoreError(
                f"this store was built with the embedding model {built_with!r} but {embed_model!r} "
                f"is configured; vectors from different models cannot be mixed. Rebuild it with "
                f"`rag index --rebuild`, or set {_settings_for(built_with)}"
            )

    def begin_write(self, embed_model: str) -> bool:
        """Mark the store dirty; True if an earlier run was interrupted (so a sweep is due)."""
        rec = self.store_record()
        was_dirty = bool(rec.get("dirty"))
        self._write_store_record(embed_model=embed_model, dirty=True, created=rec.get("created", time.time()))
        return was_dirty

    def publish(self):
        """Move the version on: readers switch to the catalog as it is now (and rebuild BM25)."""
        self._write_store_record(version=self.version() + 1)

    def end_write(self, changed: bool = False, reading: Optional[str] = None):
        """The run is complete and nothing is left to sweep; changed: publish in the same step;
        reading: how the documents now in the store were read and chunked (chunks.READING_VERSION)."""
        version = self.version() + (1 if changed else 0)
        fields = {"dirty": False, "version": version} | ({"reading": reading} if reading else {})
        self._write_store_record(**fields)

    # ---- who writes: on a server, the lease (rag/store_lease.py) -----------------------------
    @contextmanager
    def write_lease(self) -> Iterator[Callable[[], None]]:
        """On a Chroma server, hold the lease that keeps every other process from writing for as long
        as this block lasts, or raise StoreLocked naming its holder. Yields the check a run makes
        before each commit. An on-disk store needs none: write_lock keeps other processes out."""
        if not self.settings.chroma_host:
            yield lambda: None
            return
        s = self.settings
        lease = WriteLease(self.leases, s.write_lease_seconds, s.describe_store())
        lease.acquire()
        try:
            yield lease.check
        finally:
            lease.release()

    def lease_holder(self) -> Optional[Holder]:
        """Who writes the store on a server now (None: nobody, or an on-disk store)."""
        if not self.settings.chroma_host:
            return None
        held = read_holder(self.leases)
        return held if held is not None and held.expires > time.time() else None

    # ---- catalog ---------------------------------------------------------------------------
    def catalog(self, fresh: bool = False, version: Optional[int] = None) -> dict[str, CatalogEntry]:
        """Committed documents; cached until the store version moves. version: the store's version
        as the caller just read it (a question reads it once for all its steps; each read is a
        Chroma call, and on a busy machine each call waits its turn for a CPU)."""
        with self._catalog_lock:
            version = self.version() if version is None else version
            if fresh or self._catalog is None or version != self._catalog_version:
                cat = {}
                for id_, meta, _, _ in self._pages(self.docs, ["metadatas"]):
                    if id_ == STORE_RECORD:
                        continue
                    cat[id_] = CatalogEntry(
                        id_, meta["sha256"], meta.get("title", ""), meta.get("file_name", ""),
                        int(meta.get("chunks", 0)), float(meta.get("indexed_at", 0)),
                        int(meta.get("instructions", 0)),
                    )
                self._catalog, self._catalog_version = cat, version
            return self._catalog

    def commit_documents(self, entries: list[CatalogEntry]):
        for i in range(0, len(entries), _BATCH):
            part = entries[i : i + _BATCH]
            self.docs.upsert(
                ids=[e.doc_id for e in part],
                embeddings=[[1.0]] * len(part),
                metadatas=[
                    {"sha256": e.sha256, "title": e.title, "file_name": e.file_name,
                     "chunks": e.chunks, "indexed_at": e.indexed_at, "instructions": e.instructions}
                    for e in part
                ],
            )

    def uncommit_documents(self, doc_ids: list[str]):
        self._delete_ids(self.docs, doc_ids)

    # ---- chunks ----------------------------------------------------------------------------
    def add_chunks(self, chunks, vectors: np.ndarray):
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i : i + _BATCH]
            self.chunks.upsert(
                ids=[c.chunk_id for c in part],
                embeddings=vectors[i : i + _BATCH],
                documents=[c.text for c in part],
                metadatas=[_chunk_metadata(c) for c in part],
            )

    def delete_chunks(self, doc_id: str | Mapping[str, Optional[str]], keep_sha: Optional[str] = None):
        """Delete a document's chunks: all of them, or all but those of version keep_sha. Given a
        mapping doc_id -> sha to keep (None: keep nothing), those of many documents at once. The
        chunks to delete are found a page at a time and deleted by id in batches."""
        keep: dict[str, Optional[str]] = {doc_id: keep_sha} if isinstance(doc_id, str) else dict(doc_id)
        items = list(keep.items())
        for i in range(0, len(items), _BATCH):
            part = dict(items[i : i + _BATCH])
            stale = [
                cid for cid, meta, _, _ in self._pages(self.chunks, ["metadatas"], {"doc_id": {"$in": list(part)}})
                if part[meta["doc_id"]] is None or meta["doc_sha256"] != part[meta["doc_id"]]
            ]
            self._delete_ids(self.chunks, stale)

    def delete_chunks_except(self, doc_id: str, keep_ids: set[str]):
        """Delete the chunks of a document that are not among keep_ids (its file read anew)."""
        stale = [cid for cid, _, _, _ in self._pages(self.chunks, ["metadatas"], {"doc_id": doc_id})
                 if cid not in keep_ids]
        self._delete_ids(self.chunks, stale)

    def chunk_count(self) -> int:
        return self.chunks.count()

    def iter_chunk_metadata(self, include_text: bool = False) -> Iterator[tuple[str, dict, Optional[str]]]:
        include = ["metadatas", "documents"] if include_text else ["metadatas"]
        for cid, meta, text, _ in self._pages(self.chunks, include):
            yield cid, meta, text

    def chunk_texts_and_vectors(self, doc_ids: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        """(text, vector) of every chunk stored for these documents, whatever their version."""
        for i in range(0, len(doc_ids), _BATCH):
            where = {"doc_id": {"$in": doc_ids[i : i + _BATCH]}}
            for _, _, text, emb in self._pages(self.chunks, ["documents", "embeddings"], where):
                yield text, np.asarray(emb, dtype=np.float32)

    def sweep_orphans(self) -> int:
        """Delete chunks whose document version is not committed (left by an interrupted run)."""
        cat = self.catalog(fresh=True)
        stale = [
            cid for cid, meta, _ in self.iter_chunk_metadata()
            if cat.get(meta["doc_id"]) is None or cat[meta["doc_id"]].sha256 != meta["doc_sha256"]
        ]
        self._delete_ids(self.chunks, stale)
        return len(stale)

    # ---- paging: no request grows with the store --------------------------------------------
    def _pages(self, coll: _Collection, include: list[str],
               where: Optional[dict] = None) -> Iterator[tuple[str, Any, Any, Any]]:
        """(id, metadata, document, embedding) of every record of coll (matching where), read _PAGE
        records at a time; what include leaves out is None. Chroma returns records in insertion
        order (an update keeps its place), so a record deleted before the current page by another
        thread or process would shift the rest and one would be skipped: pages therefore overlap by
        one record, and when the overlap no longer matches, the read starts over, yielding only
        records not yielded yet."""
        seen: set[str] = set()
        offset, last, restarts = 0, None, 0
        while True:
            overlap = 0 if last is None else 1
            got = coll.get(include=include, where=where, limit=_PAGE + overlap, offset=offset - overlap)
            ids = got["ids"]
            if overlap and (not ids or ids[0] != last) and restarts < _MAX_RESTARTS:
                restarts += 1
                offset, last = 0, None
                continue
            metas, docs, embs = got.get("metadatas"), got.get("documents"), got.get("embeddings")
            for j, id_ in enumerate(ids):
                if id_ in seen:
                    continue
                seen.add(id_)
                yield (id_, None if metas is None else metas[j], None if docs is None else docs[j],
                       None if embs is None else embs[j])
            if len(ids) < _PAGE + overlap:
                return
            offset += _PAGE
            last = ids[-1]

    @staticmethod
    def _delete_ids(coll: _Collection, ids: list[str]):
        for i in range(0, len(ids), _BATCH):
            coll.delete(ids=ids[i : i + _BATCH])

    def query(self, vector: np.ndarray, n: int, doc_ids: Optional[list[str]] = None) -> dict:
        """The n chunks nearest vector, as Chroma's query answers; doc_ids: among those documents'
        chunks only (a `where` filter, so the n nearest are chosen inside them)."""
        # No clamp to the collection's size: Chroma 1.5.9 answers fewer than n (or none) without
        # complaint, and count() scans the whole collection (60 ms at a million chunks, per question).
        n = max(1, n)
        include = ["metadatas", "documents", "distances"]
        if doc_ids is None:
            return self.chunks.query(query_embeddings=[vector], n_results=n, include=include)
        # Many documents: a filter of _BATCH ids per query (as for `get`), the nearest n of them all kept.
        rows: list[tuple[float, str, Any, Any]] = []
        for i in range(0, len(doc_ids), _BATCH):
            got = self.chunks.query(query_embeddings=[vector], n_results=n, include=include,
                                    where={"doc_id": {"$in": doc_ids[i : i + _BATCH]}})
            rows += zip(got["distances"][0], got["ids"][0], got["metadatas"][0], got["documents"][0])
        rows = sorted(rows, key=lambda r: r[0])[:n]
        return {"ids": [[r[1] for r in rows]], "distances": [[r[0] for r in rows]],
                "metadatas": [[r[2] for r in rows]], "documents": [[r[3] for r in rows]]}

    def openings(self, doc_ids: list[str], within: int = 400) -> dict[str, str]:
        """The text each document opens with (its chunk starting first, within `within` characters of
        the start): what an article is about, when a question names it by that rather than its title."""
        best: dict[str, tuple[int, str]] = {}
        for i in range(0, len(doc_ids), _BATCH):
            got = self.chunks.get(where={"$and": [{"doc_id": {"$in": doc_ids[i : i + _BATCH]}},
                                                  {"start": {"$lt": within}}]}, include=["metadatas", "documents"])
            for meta, text in zip(got["metadatas"], got["documents"]):
                doc, start = str(meta["doc_id"]), int(meta["start"])
                if doc not in best or start < best[doc][0]:
                    best[doc] = (start, text or "")
        return {doc: text for doc, (_, text) in best.items()}

    def get_chunks(self, ids: list[str]) -> dict:
        got: dict[str, list] = {"ids": [], "metadatas": [], "documents": []}
        for i in range(0, len(ids), _BATCH):
            part = self.chunks.get(ids=ids[i : i + _BATCH], include=["metadatas", "documents"])
            for key in got:
                got[key].extend(part[key])
        return got

    def reset(self):
        """Drop every chunk and document. The version counter goes on from the old store's, so no
        process takes the rebuilt store for a version it knew (a replica's view, a saved BM25 index)."""
        try:
            version = self.version()
        except Exception:  # noqa: BLE001 - a store too damaged to read starts its count again
            version = 0
        for coll in (self.chunks, self.docs):
            try:
                self.client.delete_collection(coll.name)
            except Exception as exc:
                if self.settings.chroma_host and _is_connection_error(exc):
                    raise StoreError(_server_down(self.settings, exc)) from None
                # otherwise: not there yet
        self._forget_collections()
        self._open_collections()
        self._catalog = None
        if version:
            self._write_store_record(version=version)


def _chunk_metadata(c) -> dict:
    meta = {"doc_id": c.doc_id, "title": c.title, "file_name": c.file_name, "start": c.start, "end": c.end,
            "doc_sha256": c.doc_sha256, "location": c.location}
    if c.page is not None:  # Chroma keeps no None; an absent page reads back as None (older stores too)
        meta["page"] = c.page
    return meta


def _being_written(store_dir: Path) -> StoreLocked:
    try:
        holder = (store_dir / "write.lock").read_text().strip() or "another process"
    except OSError:
        holder = "another process"
    return StoreLocked(
        f"the store {store_dir} is being written by {holder}; wait for that indexing run to "
        "finish and try again"
    )


# The embedded store is open in this process until it exits (chromadb keeps it open, with its
# vectors in memory): a shared lock on open.lock says so to other processes. A process that writes
# takes it exclusively, so no process reads an index another process is changing under it (it
# would not see the change) and none opens one while it is being written.
_OPEN_LOCKS: dict[Path, IO[str]] = {}
_OPEN_LOCKS_GUARD = threading.Lock()


def _hold_open(store_dir: Path):
    key = store_dir.resolve()
    with _OPEN_LOCKS_GUARD:
        if key in _OPEN_LOCKS:
            return
        fh = open(key / "open.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise _being_written(store_dir) from None
        _OPEN_LOCKS[key] = fh


@contextmanager
def _only_process(store_dir: Path, wait: float = 5.0):
    fh = _OPEN_LOCKS.get(store_dir.resolve())
    if fh is None:  # not opened here as an embedded store (a Chroma server holds the data)
        yield
        return
    deadline = time.monotonic() + wait  # a `rag ask` elsewhere holds it for a moment only
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                fcntl.flock(fh, fcntl.LOCK_SH)  # as before: open here too
                raise StoreLocked(
                    f"the store {store_dir} is open in another process (a running `rag serve`, "
                    "or a script); index from that process (the UI's re-index), or stop it first. "
                    "For several processes on one index, run a Chroma server (CHROMA_HOST)."
                ) from None
            time.sleep(0.1)
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_SH)


@contextmanager
def write_lock(store_dir: Path):
    """One writer per store: a second indexer gets a clear message instead of corrupting it."""
    store_disk.check_writable(store_dir)
    store_disk.prepare(store_dir)
    path = store_dir / "write.lock"
    try:
        fh = open(path, "a+")
    except OSError as exc:
        if exc.errno not in store_disk.NOT_WRITABLE:
            raise
        raise store_disk.read_only(store_dir, exc.strerror or str(exc)) from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise _being_written(store_dir) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    try:
        with _only_process(store_dir):
            yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def open_for_rebuild(settings: Settings) -> tuple[Store, Optional[Path]]:
    """The store, for `index --rebuild`: an on-disk one too damaged to open is first moved aside
    (to chroma.broken-<time>, returned) so a new one can be built."""
    try:
        return Store(settings), None
    except StoreBroken:
        if settings.chroma_host:
            raise
        with write_lock(settings.store_dir):  # no other process has it open while it moves
            moved = store_disk.set_aside(settings.store_dir)
        return Store(settings), moved
