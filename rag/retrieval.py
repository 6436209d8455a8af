"""Stage 4: question -> passages. Dense (Chroma) and BM25 candidates, fused by standardised score
(or by reciprocal rank); optionally rescored by a local cross-encoder (rerank.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Collection, Literal, Optional, get_args

import numpy as np

from .embeddings import Embedder
from .lexical import LexicalIndex
from .models import Source
from .rerank import Reranker
from .settings import Settings
from .store import CatalogEntry, Store

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = get_args(Mode)


def rrf_fuse(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion: each ranking adds weight / (k + rank)."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, id_ in enumerate(ids, start=1):
            fused[id_] = fused.get(id_, 0.0) + weight / (k + rank)
    return fused


def zscore_fuse(rankings: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Weighted sum of standardised scores. Cosine similarities and BM25 scores live on unrelated
    scales; as distances from their list's mean in standard deviations they can be added, and unlike
    reciprocal ranks they keep how far ahead a candidate is. A candidate missing from a list counts
    as that list's weakest."""
    fused: dict[str, float] = {}
    for scores, _ in rankings:
        fused.update(dict.fromkeys(scores, 0.0))
    for scores, weight in rankings:
        if not scores or not weight:
            continue
        vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        mean, std = float(vals.mean()), float(vals.std())
        std = std if std > 1e-9 else 1.0
        floor = (float(vals.min()) - mean) / std
        for id_ in fused:
            s = scores.get(id_)
            fused[id_] += weight * (floor if s is None else (s - mean) / std)
    return fused


def _page(meta: dict) -> int | None:
    """The chunk's page (PDF page or slide); None for other files and for stores built before pages."""
    page = meta.get("page")
    return int(page) if isinstance(page, (int, float)) and not isinstance(page, bool) else None


@dataclass(frozen=True)
class View:
    """What questions are answered from: one store version, its committed documents and the BM25
    index of their chunks. Made together off to the side, replaced together in one assignment and
    never changed once made, so a question sees one whole view, never half of a rebuild."""

    version: int
    catalog: dict[str, CatalogEntry]
    lexical: LexicalIndex

    def committed(self, doc_id: str, sha: str) -> bool:
        # Chunks of a version that is not (or no longer) in the catalog are mid-update.
        entry = self.catalog.get(doc_id)
        return entry is not None and entry.sha256 == sha


class Retriever:
    def __init__(self, settings: Settings, store: Store, lexical: LexicalIndex, embedder: Embedder):
        self.settings, self.store, self.embedder = settings, store, embedder
        self._first = lexical  # filled in place by the first build: no question reads it before that
        self.view: Optional[View] = None
        self._sync_lock = threading.Lock()  # questions at once after a re-index: one rebuild
        self.reranker = Reranker(settings.rerank_model) if settings.rerank_model else None
        # Set by rag/follow.py: a thread keeps the view up to date, so questions never rebuild it.
        self.following = False

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index questions are answered from."""
        view = self.view
        return view.lexical if view is not None else self._first

    @property
    def version(self) -> Optional[int]:
        """The store version questions are answered from (None: nothing loaded yet)."""
        view = self.view
        return view.version if view is not None else None

    def sync_lexical(self, force: bool = False) -> bool:
        """Bring the view up to the store's version: the saved BM25 index when it is of that
        version, else one built from the store. True if a new view was swapped in."""
        with self._sync_lock:
            version = self.store.version()
            if not force and self.view is not None and self.view.version == version:
                return False
            self.view = self._make_view(version, force)
            return True

    def _make_view(self, version: int, force: bool) -> View:
        # A new index each time: the one being replaced may be in use by a question right now.
        first = self._first
        lexical = first if self.view is None else LexicalIndex(first.directory, first.k1, first.b)
        if not force and lexical.load() and lexical.version == version:
            return View(version, self.store.catalog(), lexical)
        cat = self.store.catalog(fresh=True)
        # a generator: BM25 reads the store's pages as it indexes them, never all texts at once
        rows = (
            (cid, meta["doc_id"], meta["doc_sha256"], f"{meta.get('title', '')}\n{text}")
            for cid, meta, text in self.store.iter_chunk_metadata(include_text=True)
            if meta["doc_id"] in cat and cat[meta["doc_id"]].sha256 == meta["doc_sha256"]
        )
        lexical.build(version, rows)
        return View(version, cat, lexical)

    def current(self) -> View:
        """The view a question uses from start to end. Following the store (rag/follow.py), the one
        the follower last swapped in; otherwise the store's version now, rebuilt here if it moved.
        An empty store needs no BM25 index."""
        view = self.view
        if self.following and view is not None:
            return view
        if not self.store.catalog():
            return View(self.store.version(), {}, self.lexical)
        self.sync_lexical()
        assert self.view is not None
        return self.view

    def _search(self, view: View, question: str, n: int, mode: Mode, qvec: np.ndarray | None,
                only: Optional[Collection[str]] = None):
        """Candidates of each ranking, best first, committed in the view only: dense as chunk id ->
        (meta, text, cosine), BM25 as chunk id -> (doc id, score); and the fused score of every
        candidate. only: the documents searched (None: all); both rankings pick their n among those alone."""
        catalog, committed = view.catalog, view.committed
        if only is not None:
            catalog = {d: e for d, e in catalog.items() if d in only}
        if not catalog:
            return {}, {}, {}, {}
        dense: dict[str, tuple[dict, str, float]] = {}
        if mode in ("hybrid", "dense"):
            assert qvec is not None  # callers embed the question for every mode but bm25
            res = self.store.query(qvec, n, None if only is None else sorted(catalog))
            for cid, meta, text, dist in zip(res["ids"][0], res["metadatas"][0], res["documents"][0],
                                             res["distances"][0]):
                # A chunk deleted while Chroma searched comes back without its metadata: skip it.
                if meta is not None and committed(meta["doc_id"], meta["doc_sha256"]):
                    dense[cid] = (meta, text, 1.0 - float(dist))
        bm25: dict[str, tuple[str, float]] = {}
        every_match = False
        if mode in ("hybrid", "bm25"):
            limit = None if only is None else list(catalog)
            hits = view.lexical.search(question, n, limit)
            every_match = len(hits) < n
            bm25 = {cid: (doc_id, score) for cid, doc_id, sha, score in hits if committed(doc_id, sha)}
        s = self.settings
        if s.fusion == "rrf":
            fused = rrf_fuse([(list(dense), s.dense_weight), (list(bm25), s.bm25_weight)], s.rrf_k)
        else:
            lexical = {cid: b[1] for cid, b in bm25.items()}
            if every_match:
                # Every chunk holding a question word is listed, so the others score 0, a known score:
                # one rare-word hit among 40,000 look-alikes then stands out instead of standardising
                # to nothing against itself.
                lexical = {**dict.fromkeys(dense, 0.0), **lexical}
            fused = zscore_fuse([({cid: d[2] for cid, d in dense.items()}, s.dense_weight), (lexical, s.bm25_weight)])
        return catalog, dense, bm25, fused

    def retrieve(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
                 query_vector: np.ndarray | None = None, doc_ids: Optional[Collection[str]] = None) -> list[Source]:
        """The top_k passages; doc_ids: from these documents only (None: from all)."""
        only = None if doc_ids is None else frozenset(doc_ids)
        view = self.current()
        sources = self._retrieve(view, question, top_k, mode, query_vector, only)
        if not self.following and self.store.version() != view.version:
            # A re-index published while we searched and may have deleted the old versions our
            # catalog named: search again, against the new catalog. (Following the store, the
            # view stays until the follower swaps it; chunks deleted meanwhile are left out below.)
            sources = self._retrieve(self.current(), question, top_k, mode, query_vector, only)
        return sources

    def _retrieve(self, view: View, question: str, top_k: int | None, mode: Mode,
                  query_vector: np.ndarray | None, only: Optional[frozenset[str]] = None) -> list[Source]:
        top_k = top_k or self.settings.top_k
        n = max(self.settings.candidates, top_k)
        qvec = query_vector if query_vector is not None else self.embedder.embed([question])[0]
        catalog, dense, _, fused = self._search(view, question, n, mode, qvec, only)
        if not catalog:
            return []
        order = sorted(fused, key=lambda cid: -fused[cid])
        if self.reranker is None:
            scores, best = fused, order[:top_k]
            found = self._fetch(view, best, dense, qvec)
        else:
            scores, found = self._rerank(view, question, order, dense, qvec, top_k, only)
            best = sorted(scores, key=lambda cid: -scores[cid])[:top_k]
        sources: list[Source] = []
        for cid in best:
            if cid not in found:  # deleted between the search and the fetch
                continue
            meta, text, sim = found[cid]
            if only is not None and meta["doc_id"] not in only:
                continue  # both searches were limited already; a passage from elsewhere is never shown
            sources.append(Source(
                marker=len(sources) + 1, doc_id=meta["doc_id"], file_name=meta["file_name"],
                title=meta.get("title", ""), text=text, start=int(meta["start"]), end=int(meta["end"]),
                score=round(scores[cid], 6), similarity=round(sim, 4), chunk_id=cid,
                page=_page(meta), location=str(meta.get("location") or ""),
            ))
        return sources

    def _rerank(self, view: View, question: str, order: list[str], dense: dict[str, tuple[dict, str, float]],
                qvec: np.ndarray, top_k: int, only: Optional[frozenset[str]]):
        """The cross-encoder's score of each of the best fused candidates, and their (meta, text, cosine).
        It reads every passage it scores, so the fused ranking picks which; only passages that can be
        shown are scored, so that top_k of them survive the cut."""
        assert self.reranker is not None
        pool = order[: max(self.settings.rerank_candidates, top_k)]
        found = self._fetch(view, pool, dense, qvec)
        pool = [cid for cid in pool if cid in found and (only is None or found[cid][0]["doc_id"] in only)]
        scores = dict(zip(pool, self.reranker.scores(question, [found[cid][1] for cid in pool])))
        return scores, found

    def _fetch(self, view: View, ids: list[str], dense: dict[str, tuple[dict, str, float]],
               qvec: np.ndarray) -> dict[str, tuple[dict, str, float]]:
        """(meta, text, cosine) of these candidates: the dense search's own, and the BM25-only ones
        from the store (absent when deleted since the search, or of a document version the view
        served does not hold)."""
        found = {cid: dense[cid] for cid in ids if cid in dense}
        missing = [cid for cid in ids if cid not in found]
        if missing:
            got = self.store.chunks.get(ids=missing, include=["metadatas", "documents", "embeddings"])
            for cid, meta, text, emb in zip(got["ids"], got["metadatas"], got["documents"], got["embeddings"]):
                if meta is not None and emb is not None and view.committed(meta["doc_id"], meta["doc_sha256"]):
                    found[cid] = (meta, text, float(np.dot(np.asarray(emb, dtype=np.float32), qvec)))
        return found

    def rank_documents(self, question: str, n: int = 100, mode: Mode = "hybrid") -> list[tuple[str, float]]:
        """The n best documents (doc id, score), a document scoring as its best chunk. For
        evaluation: ranks whole documents deep enough for recall@100."""
        qvec = self.embedder.embed([question])[0] if mode != "bm25" else None
        # documents have a few chunks each: ask for enough chunks that n documents survive
        catalog, dense, bm25, fused = self._search(self.current(), question, max(3 * n, self.settings.candidates),
                                                   mode, qvec)
        doc_of = {cid: meta["doc_id"] for cid, (meta, _, _) in dense.items()}
        doc_of.update((cid, doc_id) for cid, (doc_id, _) in bm25.items())
        best: dict[str, float] = {}
        for cid, score in fused.items():
            doc = doc_of[cid]
            if score > best.get(doc, -1.0):
                best[doc] = score
        return sorted(best.items(), key=lambda kv: -kv[1])[:n]
