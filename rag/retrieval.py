"""Stage 4: question -> passages. Dense (Chroma) and BM25 candidates, fused by standardised score
(or by reciprocal rank)."""

from __future__ import annotations

import threading
from typing import Collection, Literal, Optional, get_args

import numpy as np

from .embeddings import Embedder
from .lexical import LexicalIndex
from .models import Source
from .settings import Settings
from .store import Store

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


class Retriever:
    def __init__(self, settings: Settings, store: Store, lexical: LexicalIndex, embedder: Embedder):
        self.settings, self.store, self.lexical, self.embedder = settings, store, lexical, embedder
        self._sync_lock = threading.Lock()  # questions at once after a re-index: one rebuild

    def sync_lexical(self, force: bool = False, version: Optional[int] = None):
        """Bring the BM25 index up to the store's version (as just read, or read here): load it from
        disk, else rebuild it."""
        with self._sync_lock:
            self._sync_lexical(force, self.store.version() if version is None else version)

    def _sync_lexical(self, force: bool, version: int):
        if not force and self.lexical.version == version:
            return
        if not force and self.lexical.load() and self.lexical.version == version:
            return
        cat = self.store.catalog(fresh=True)
        # a generator: BM25 reads the store's pages as it indexes them, never all texts at once
        rows = (
            (cid, meta["doc_id"], meta["doc_sha256"], f"{meta.get('title', '')}\n{text}")
            for cid, meta, text in self.store.iter_chunk_metadata(include_text=True)
            if meta["doc_id"] in cat and cat[meta["doc_id"]].sha256 == meta["doc_sha256"]
        )
        self.lexical.build(version, rows)

    def _committed(self, version: Optional[int] = None):
        catalog = self.store.catalog(version=version)

        def committed(doc_id: str, sha: str) -> bool:
            # Chunks of a version that is not (or no longer) in the catalog are mid-update.
            entry = catalog.get(doc_id)
            return entry is not None and entry.sha256 == sha

        return catalog, committed

    def _search(self, question: str, n: int, mode: Mode, qvec: np.ndarray | None,
                only: Optional[Collection[str]] = None, version: Optional[int] = None):
        """Candidates of each ranking, best first, committed only: dense as chunk id -> (meta, text,
        cosine), BM25 as chunk id -> (doc id, score); and the fused score of every candidate.
        only: the documents searched (None: all); both rankings pick their n among those alone.
        version: the store's version as the caller read it (None: read it here)."""
        catalog, committed = self._committed(version)
        if only is not None:
            catalog = {d: e for d, e in catalog.items() if d in only}
        if not catalog:
            return {}, {}, {}, {}
        self.sync_lexical(version=version)
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
        if mode in ("hybrid", "bm25"):
            limit = None if only is None else list(catalog)
            bm25 = {cid: (doc_id, score) for cid, doc_id, sha, score in self.lexical.search(question, n, limit)
                    if committed(doc_id, sha)}
        s = self.settings
        if s.fusion == "rrf":
            fused = rrf_fuse([(list(dense), s.dense_weight), (list(bm25), s.bm25_weight)], s.rrf_k)
        else:
            fused = zscore_fuse([({cid: d[2] for cid, d in dense.items()}, s.dense_weight),
                                 ({cid: b[1] for cid, b in bm25.items()}, s.bm25_weight)])
        return catalog, dense, bm25, fused

    def retrieve(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
                 query_vector: np.ndarray | None = None, doc_ids: Optional[Collection[str]] = None) -> list[Source]:
        """The top_k passages; doc_ids: from these documents only (None: from all)."""
        only = None if doc_ids is None else frozenset(doc_ids)
        version = self.store.version()
        sources = self._retrieve(question, top_k, mode, query_vector, only, version)
        now = self.store.version()
        if now != version:
            # A re-index published while we searched and may have deleted the old versions our
            # catalog named: search again, against the new catalog.
            sources = self._retrieve(question, top_k, mode, query_vector, only, now)
        return sources

    def _retrieve(self, question: str, top_k: int | None, mode: Mode,
                  query_vector: np.ndarray | None, only: Optional[frozenset[str]] = None,
                  version: Optional[int] = None) -> list[Source]:
        top_k = top_k or self.settings.top_k
        n = max(self.settings.candidates, top_k)
        qvec = query_vector if query_vector is not None else self.embedder.embed([question])[0]
        catalog, dense, _, fused = self._search(question, n, mode, qvec, only, version)
        if not catalog:
            return []
        found = dict(dense)
        best = sorted(fused, key=lambda cid: -fused[cid])[:top_k]
        missing = [cid for cid in best if cid not in found]
        if missing:
            got = self.store.chunks.get(ids=missing, include=["metadatas", "documents", "embeddings"])
            for cid, meta, text, emb in zip(got["ids"], got["metadatas"], got["documents"], got["embeddings"]):
                if meta is not None and emb is not None:
                    found[cid] = (meta, text, float(np.dot(np.asarray(emb, dtype=np.float32), qvec)))
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
                score=round(fused[cid], 6), similarity=round(sim, 4), chunk_id=cid,
                page=_page(meta), location=str(meta.get("location") or ""),
            ))
        return sources

    def rank_documents(self, question: str, n: int = 100, mode: Mode = "hybrid") -> list[tuple[str, float]]:
        """The n best documents (doc id, score), a document scoring as its best chunk. For
        evaluation: ranks whole documents deep enough for recall@100."""
        qvec = self.embedder.embed([question])[0] if mode != "bm25" else None
        # documents have a few chunks each: ask for enough chunks that n documents survive
        catalog, dense, bm25, fused = self._search(question, max(3 * n, self.settings.candidates), mode, qvec)
        doc_of = {cid: meta["doc_id"] for cid, (meta, _, _) in dense.items()}
        doc_of.update((cid, doc_id) for cid, (doc_id, _) in bm25.items())
        best: dict[str, float] = {}
        for cid, score in fused.items():
            doc = doc_of[cid]
            if score > best.get(doc, -1.0):
                best[doc] = score
        return sorted(best.items(), key=lambda kv: -kv[1])[:n]
