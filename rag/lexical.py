"""Stage 3c: the BM25 index (bm25s), saved next to the store and rebuilt only when the store changes."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Collection, Optional

import numpy as np

from .text import INDEX_TOKEN, stemmer


class LexicalIndex:
    """BM25 over chunk texts; rows map to chunk ids plus the document version they belong to."""

    def __init__(self, directory: Path, k1: float = 1.2, b: float = 0.75):
        self.directory = directory
        self.k1, self.b = k1, b
        self.version: Optional[int] = None
        self.ids: list[str] = []
        self.doc_ids: list[str] = []
        self.shas: list[str] = []
        self._codes = np.zeros(0, dtype=np.int64)  # per row: its document's number in _numbers
        self._numbers: dict[str, int] = {}
        self.retriever = None
        self._stem = stemmer()
        self._lock = threading.Lock()

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=False,
                              show_progress=False, token_pattern=INDEX_TOKEN.pattern)

    def build(self, version: int, rows: list[tuple[str, str, str, str]]):
        """rows: (chunk_id, doc_id, doc_sha256, text)."""
        import bm25s

        retriever = None
        if rows:
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            retriever.index(self.tokenize([r[3] for r in rows]), show_progress=False)
        with self._lock:
            self.retriever = retriever
            self.ids = [r[0] for r in rows]
            self._set_doc_ids([r[1] for r in rows])
            self.shas = [r[2] for r in rows]
            self.version = version
        self._save()

    def _save(self):
        # Names of our own: another thread or process may be saving this index at the same moment.
        tag = f"{os.getpid()}-{threading.get_ident()}"
        tmp = self.directory.with_name(f"{self.directory.name}.tmp-{tag}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.retriever is not None:
            self.retriever.save(str(tmp / "bm25"))
        (tmp / "rows.json").write_text(
            json.dumps({"version": self.version, "ids": self.ids, "doc_ids": self.doc_ids, "shas": self.shas})
        )
        old = self.directory.with_name(f"{self.directory.name}.old-{tag}")
        try:
            self.directory.rename(old)
        except FileNotFoundError:
            pass  # first save, or another saver moved it first
        try:
            tmp.rename(self.directory)  # readers see the old or the new index, never half of one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another saver put its index there first
        shutil.rmtree(old, ignore_errors=True)

    def load(self) -> bool:
        import bm25s

        rows_file = self.directory / "rows.json"
        if not rows_file.exists():
            return False
        try:
            rows = json.loads(rows_file.read_text())
            retriever = None
            if (self.directory / "bm25").exists():
                retriever = bm25s.BM25.load(str(self.directory / "bm25"), mmap=False)
        except Exception:
            return False  # unreadable: the caller rebuilds it
        with self._lock:
            self.retriever = retriever
            self.ids, self.shas = rows["ids"], rows["shas"]
            self._set_doc_ids(rows["doc_ids"])
            self.version = rows["version"]
        return True

    def _set_doc_ids(self, doc_ids: list[str]):
        """Rows' documents as numbers too, so a search limited to documents masks rows in one step."""
        numbers: dict[str, int] = {}
        self._codes = np.fromiter((numbers.setdefault(d, len(numbers)) for d in doc_ids), dtype=np.int64,
                                  count=len(doc_ids))
        self._numbers = numbers
        self.doc_ids = doc_ids

    def idf(self, term: str) -> float:
        """BM25 idf of a stemmed term over all chunks (unknown terms weigh as the rarest)."""
        retriever = self.retriever
        n_docs = max(len(self.ids), 1)
        df = 0
        if retriever is not None:
            tid = retriever.vocab_dict.get(term)
            if tid is not None:
                indptr = retriever.scores["indptr"]
                df = int(indptr[tid + 1] - indptr[tid])
        return float(np.log(1 + (n_docs - df + 0.5) / (df + 0.5)))

    def search(self, query: str, n: int, only: Optional[Collection[str]] = None) -> list[tuple[str, str, str, float]]:
        """(chunk_id, doc_id, doc_sha256, score) best first; empty when no query term is known.
        only: the documents to search (None: all); the n best are chosen among their chunks alone."""
        with self._lock:
            retriever, ids, doc_ids, shas = self.retriever, self.ids, self.doc_ids, self.shas
            codes, numbers = self._codes, self._numbers
        if retriever is None or not ids:
            return []
        rows = None
        if only is not None:
            rows = np.flatnonzero(np.isin(codes, [numbers[d] for d in only if d in numbers]))
            if not len(rows):
                return []
        tokens = self.tokenize([query])
        if not tokens or not tokens[0]:
            return []
        vocab = retriever.vocab_dict
        known = [t for t in tokens[0] if t in vocab]
        if not known:
            return []
        scores = retriever.get_scores(known)
        if rows is None:  # all rows: no index array and copy of a million scores per question
            n = min(n, len(scores))
            top = np.argpartition(scores, len(scores) - n)[len(scores) - n :]
        else:
            n = min(n, len(rows))
            top = rows[np.argpartition(-scores[rows], n - 1)[:n]]
        top = top[np.argsort(-scores[top])]
        return [(ids[i], doc_ids[i], shas[i], float(scores[i])) for i in top if scores[i] > 0]
