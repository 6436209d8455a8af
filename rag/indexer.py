"""Stage 3: the indexing run. Incremental by content hash: new files added, changed files
replaced, deleted files removed, unchanged files not touched. Safe to interrupt at any point.
One run at a time per store: this machine's write lock, and on a Chroma server the lease kept in
the store (rag/store_lease.py), checked again before each commit."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .chunks import Chunker
from .documents import UnreadableFile, load_document, scan
from .embeddings import Embedder
from .models import Chunk, Document, IndexReport, Skipped
from .readers import ReadLimits
from .retrieval import Retriever
from .store import CatalogEntry, Store, write_lock
from .text import planted_instructions

Progress = Callable[[str, int, int], None]  # (stage, done, total)
_FLUSH_AT = 256  # chunks embedded per batch: big batches keep the model busy


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, chunker: Chunker, retriever: Retriever,
                 docs_dir: Path, store_dir: Path, max_bytes: int, limits: Optional[ReadLimits] = None,
                 parsed: Optional[dict[str, Document]] = None):
        """limits: what reading one file may cost (characters, pages, OCR); parsed: documents already
        read (an upload, checked before it was saved), used when the file still has the same bytes."""
        self.store, self.embedder, self.chunker, self.retriever = store, embedder, chunker, retriever
        self.docs_dir, self.store_dir, self.max_bytes = docs_dir, store_dir, max_bytes
        self.limits = limits or ReadLimits()
        self.parsed = parsed or {}
        self._catalog_sha: dict[str, str] = {}  # doc id -> sha256 indexed before this run
        self._reread: dict[str, set[str]] = {}  # unchanged files read anew -> their new chunk ids
        self._still_writer: Callable[[], None] = lambda: None  # raises once another process took over

    def run(self, rebuild: bool = False, progress: Optional[Progress] = None) -> IndexReport:
        t0 = time.perf_counter()
        progress = progress or (lambda stage, done, total: None)
        report = IndexReport()
        if not self.docs_dir.is_dir():
            raise FileNotFoundError(f"documents folder not found: {self.docs_dir}")
        with write_lock(self.store_dir), self.store.write_lease() as still_writer:
            self._still_writer = still_writer
            if rebuild:
                self.store.reset()
            self.store.check_model(self.embedder.name)
            interrupted = self.store.begin_write(self.embedder.name)
            catalog = self.store.catalog(fresh=True)

            current: dict[str, tuple[Path, str]] = {}
            for item in scan(self.docs_dir, self.max_bytes, exclude=self.store_dir):
                if isinstance(item, Skipped):
                    report.skipped.append(item)
                else:
                    current[item[0]] = (item[1], item[2])

            removed = [d for d in catalog if d not in current and not _kept_despite_error(d, report)]
            self._still_writer()
            self.store.uncommit_documents(removed)
            if removed:
                self.store.delete_chunks(dict.fromkeys(removed))  # paged, batches of documents
            report.removed = len(removed)

            reread = self.store.store_record().get("reading") != self.chunker.reading
            self._catalog_sha, self._reread = {d: e.sha256 for d, e in catalog.items()}, {}
            todo = [(d, p, sha) for d, (p, sha) in current.items()
                    if reread or d not in catalog or catalog[d].sha256 != sha]
            report.unchanged = len(current) - len(todo)
            replaced = self._index_files(todo, catalog, report, progress)

            changed = bool(removed or report.added or report.updated or interrupted)
            if changed:
                self._still_writer()
                self.store.publish()
            progress("bm25", 0, 1)
            self.retriever.sync_lexical(force=changed)
            progress("bm25", 1, 1)
            # Old versions go only now: until the version moved, readers' catalogs still named them.
            if replaced:
                self.store.delete_chunks(dict(replaced))
            for doc_id, ids in self._reread.items():  # same file, read anew: only the new chunks stay
                self.store.delete_chunks_except(doc_id, ids)
            if interrupted:
                self.store.sweep_orphans()
            self.store.end_write(reading=self.chunker.reading)
        report.chunks = self.store.chunk_count()
        report.seconds = time.perf_counter() - t0
        return report

    def _index_files(self, todo, catalog, report: IndexReport, progress: Progress) -> list[tuple[str, str]]:
        """Index the files; (doc_id, new sha256) of the documents that replaced an older version."""
        pending: list[tuple[CatalogEntry, list[Chunk], bool]] = []
        replaced: list[tuple[str, str]] = []
        limits = replace(self.limits, progress=progress)  # OCR reports its pages
        for n, (doc_id, path, sha) in enumerate(todo, start=1):
            try:
                doc = self.parsed.get(doc_id)
                if doc is None or doc.sha256 != sha:
                    doc = load_document(path, self.docs_dir, self.max_bytes, limits=limits)
            except UnreadableFile as exc:
                # A previously indexed version stays searchable: nothing already indexed is lost.
                report.skipped.append(Skipped(doc_id, str(exc)))
                continue
            except OSError as exc:
                report.skipped.append(Skipped(doc_id, f"cannot read file: {exc.strerror or exc}"))
                continue
            chunks = self.chunker.chunk(doc)
            if not chunks:
                report.skipped.append(Skipped(doc_id, "no text in file"))
                continue
            planted = len(planted_instructions(doc.text))
            if planted:
                report.instructions[doc_id] = planted
            entry = CatalogEntry(doc_id, doc.sha256, doc.title, doc.file_name, len(chunks), time.time(), planted)
            pending.append((entry, chunks, doc_id in catalog))
            if sum(len(c) for _, c, _ in pending) >= _FLUSH_AT:
                replaced += self._flush(pending, report)
                pending = []
            progress("embed", n, len(todo))
        replaced += self._flush(pending, report)
        progress("embed", len(todo), len(todo))
        return replaced

    def _flush(self, pending, report: IndexReport) -> list[tuple[str, str]]:
        if not pending:
            return []
        chunks = [c for _, cs, _ in pending for c in cs]
        reused = self._reusable_vectors([e.doc_id for e, _, replacing in pending if replacing])
        to_embed = [i for i, c in enumerate(chunks) if c.text not in reused]
        fresh = iter(self.embedder.embed([chunks[i].text for i in to_embed]))
        vectors = np.stack([reused[c.text] if c.text in reused else next(fresh) for c in chunks])
        report.embedded += len(to_embed)
        self.store.add_chunks(chunks, vectors)
        self._still_writer()
        # Commit point: from here queries see the new versions.
        self.store.commit_documents([e for e, _, _ in pending])
        replaced = []
        for entry, doc_chunks, replacing in pending:
            if replacing and self._catalog_sha.get(entry.doc_id) == entry.sha256:
                self._reread[entry.doc_id] = {c.chunk_id for c in doc_chunks}
            if replacing:
                replaced.append((entry.doc_id, entry.sha256))
                report.updated += 1
            else:
                report.added += 1
        return replaced

    def _reusable_vectors(self, doc_ids: list[str]) -> dict[str, np.ndarray]:
        """Vectors of unchanged chunk texts in documents being replaced: no need to embed them again."""
        return dict(self.store.chunk_texts_and_vectors(doc_ids)) if doc_ids else {}


def _kept_despite_error(doc_id: str, report: IndexReport) -> bool:
    # A file that still exists but is now unreadable keeps its last good version in the index.
    return any(s.file == doc_id for s in report.skipped)
