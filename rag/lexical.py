"""Stage 3c: the BM25 index (bm25s), saved next to the store and rebuilt only when the store changes."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Collection, Iterable, Optional

import numpy as np

from .text import INDEX_TOKEN, stemmer

_BUILD_PAGE = 5000  # rows tokenized at a time while building


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

    def tokenize(self, texts: list[str], as_ids: bool = False):
        """Texts as lists of stemmed terms, or as_ids: as term ids in a vocabulary of their own
        (bm25s.Tokenized), the same terms."""
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=as_ids,
                              show_progress=False, token_pattern=INDEX_TOKEN.pattern)

    def build(self, version: int, rows: Iterable[tuple[str, str, str, str]]):
        """rows: (chunk_id, doc_id, doc_sha256, text), any iterable: read _BUILD_PAGE rows at a time,
        so no list of all texts or of all their tokens is ever held (a million chunks' tokens as
        Python lists would take several GB)."""
        terms = _TermCounts()
        ids: list[str] = []
        doc_ids: list[str] = []
        shas: list[str] = []
        it = iter(rows)
        while page := list(itertools.islice(it, _BUILD_PAGE)):
            terms.add(self.tokenize([r[3] for r in page], as_ids=True))
            for cid, doc_id, sha, _ in page:
                ids.append(cid)
                doc_ids.append(doc_id)
                shas.append(sha)
        retriever = terms.bm25(self.k1, self.b) if ids else None
        with self._lock:
            self.retriever = retriever
            self._set_rows(ids, doc_ids, shas)
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
        with (tmp / "rows.json").open("w") as fh:  # written as it is encoded: no second copy in memory
            json.dump({"version": self.version, "ids": self.ids, "doc_ids": self.doc_ids, "shas": self.shas}, fh)
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
            self._set_rows(rows["ids"], rows["doc_ids"], rows["shas"])
            self.version = rows["version"]
        return True

    def _set_rows(self, ids: list[str], doc_ids: list[str], shas: list[str]):
        """Rows' documents as numbers too, so a search limited to documents masks rows in one step;
        one string object per document id and version, not one per row (a million rows)."""
        numbers: dict[str, int] = {}
        self._codes = np.fromiter((numbers.setdefault(d, len(numbers)) for d in doc_ids), dtype=np.int64,
                                  count=len(doc_ids))
        self._numbers = numbers
        same: dict[str, str] = {}
        self.ids = ids
        self.doc_ids = [same.setdefault(d, d) for d in doc_ids]
        self.shas = [same.setdefault(h, h) for h in shas]

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


class _TermCounts:
    """Term counts of the rows added so far, kept per page as flat numpy arrays (each row's distinct
    terms and how often each occurs), and the bm25s index they make: the scores bm25s.BM25.index
    computes (its default Lucene variant), without its Python lists of every row's tokens."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int64)  # rows holding each term
        self.pages: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (terms, counts, distinct per row)
        self.lengths: list[np.ndarray] = []  # per page: tokens of each row, repeats counted

    def add(self, tokenized):
        local = np.empty(len(tokenized.vocab), dtype=np.int64)
        for term, i in tokenized.vocab.items():
            local[i] = self.vocab.setdefault(term, len(self.vocab))
        lengths = np.fromiter(map(len, tokenized.ids), dtype=np.int64, count=len(tokenized.ids))
        flat = np.fromiter(itertools.chain.from_iterable(tokenized.ids), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        keys, counts = np.unique(rows << 32 | local[flat], return_counts=True)  # sorted: row, then term
        terms = (keys & 0xFFFFFFFF).astype(np.int32)
        self.df = np.pad(self.df, (0, len(self.vocab) - len(self.df)))
        self.df += np.bincount(terms, minlength=len(self.vocab))
        distinct = np.bincount(keys >> 32, minlength=len(lengths)).astype(np.int64)
        # a chunk holds a few hundred tokens: a count never nears the uint16 cap (kept as a guard)
        self.pages.append((terms, np.minimum(counts, 65535).astype(np.uint16), distinct))
        self.lengths.append(lengths)

    def bm25(self, k1: float, b: float):
        import bm25s
        import scipy.sparse as sp

        lengths = np.concatenate(self.lengths)
        n_rows, n_terms, avg = len(lengths), len(self.vocab), lengths.mean()
        idf = np.log(1 + (n_rows - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
        nnz = sum(len(t) for t, _, _ in self.pages)
        terms, data = np.empty(nnz, dtype=np.int32), np.empty(nnz, dtype=np.float32)
        distinct = np.concatenate([d for _, _, d in self.pages])
        at, row = 0, 0
        self.pages.reverse()
        while self.pages:  # page by page into the flat arrays, each page let go once copied
            t, c, d = self.pages.pop()
            norm = np.repeat(k1 * ((1 - b) + b * lengths[row : row + len(d)] / avg), d)
            tf = c.astype(np.float64)
            terms[at : at + len(t)] = t
            data[at : at + len(t)] = idf[t] * (tf / (norm + tf))
            at, row = at + len(t), row + len(d)
        indptr = np.concatenate([[0], np.cumsum(distinct)])
        matrix = sp.csr_matrix((data, terms, indptr), shape=(n_rows, n_terms))
        del terms, data
        matrix = matrix.tocsc()
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.scores = {"data": matrix.data, "indices": matrix.indices.astype(np.int32, copy=False),
                            "indptr": matrix.indptr, "num_docs": n_rows}
        vocab = dict(self.vocab)
        vocab[""] = n_terms  # as bm25s.BM25.index adds it (create_empty_token)
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.nonoccurrence_array = None  # the Lucene variant has none
        return retriever
