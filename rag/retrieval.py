"""Stage 4: question -> passages. Dense (Chroma) and BM25 candidates fused by reciprocal rank."""

from __future__ import annotations

import threading
from typing import Literal

import numpy as np

from .embeddings import Embedder
from .lexical import LexicalIndex
from .models import Source
from .settings import Settings
from .store import Store

Mode = Literal["hybrid", "dense", "bm25"]


def rrf_fuse(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion: each ranking adds weight / (k + rank)."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, id_ in enumerate(ids, start=1):
            fused[id_] = fused.get(id_, 0.0) + weight / (k + rank)
    return fused


class Retriever:
    def __init__(self, settings: Settings, store: Store, lexical: LexicalIndex, embedder: Embedder):
        self.settings, self.store, self.lexical, self.embedder = settings, store, lexical, embedder
        self._sync_lock = threading.Lock()  # questions at once after a re-index: one rebuild

    def sync_lexical(self, force: bool = False):
        """Bring the BM25 index up to the store's version: load it from disk, else rebuild it."""
        with self._sync_lock:
            self._sync_lexical(force)

    def _sync_lexical(self, force: bool):
        version = self.store.version()
        if not force and self.lexical.version == version:
            return
        if not force and self.lexical.load() and self.lexical.version == version:
            return
        cat = self.store.catalog(fresh=True)
        rows = [
            (cid, meta["doc_id"], meta["doc_sha256"], f"{meta.get('title', '')}\n{text}")
            for cid, meta, text in self.store.iter_chunk_metadata(include_text=True)
            if meta["doc_id"] in cat and cat[meta["doc_id"]].sha256 == meta["doc_sha256"]
        ]
        self.lexical.build(version, rows)

    def retrieve(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
                 query_vector: np.ndarray | None = None) -> list[Source]:
        version = self.store.version()
        sources = self._retrieve(question, top_k, mode, query_vector)
        if self.store.version() != version:
            # A re-index published while we searched and may have deleted the old versions our
            # catalog named: search again, against the new catalog.
            sources = self._retrieve(question, top_k, mode, query_vector)
        return sources

    def _retrieve(self, question: str, top_k: int | None, mode: Mode,
                  query_vector: np.ndarray | None) -> list[Source]:
        top_k = top_k or self.settings.top_k
        n = max(self.settings.candidates, top_k)
        catalog = self.store.catalog()
        if not catalog:
            return []
        self.sync_lexical()

        def committed(doc_id: str, sha: str) -> bool:
            # Chunks of a version that is not (or no longer) in the catalog are mid-update.
            entry = catalog.get(doc_id)
            return entry is not None and entry.sha256 == sha

        qvec = query_vector if query_vector is not None else self.embedder.embed([question])[0]
        found: dict[str, tuple[dict, str, float]] = {}
        dense_ids: list[str] = []
        if mode in ("hybrid", "dense"):
            res = self.store.query(qvec, n)
            for cid, meta, text, dist in zip(res["ids"][0], res["metadatas"][0], res["documents"][0], res["distances"][0]):
                if committed(meta["doc_id"], meta["doc_sha256"]):
                    dense_ids.append(cid)
                    found[cid] = (meta, text, 1.0 - float(dist))
        bm25_ids: list[str] = []
        if mode in ("hybrid", "bm25"):
            bm25_ids = [cid for cid, doc_id, sha, _ in self.lexical.search(question, n) if committed(doc_id, sha)]

        fused = rrf_fuse(
            [(dense_ids, self.settings.dense_weight), (bm25_ids, self.settings.bm25_weight)], self.settings.rrf_k
        )
        best = sorted(fused, key=lambda cid: -fused[cid])[:top_k]
        missing = [cid for cid in best if cid not in found]
        if missing:
            got = self.store.chunks.get(ids=missing, include=["metadatas", "documents", "embeddings"])
            for cid, meta, text, emb in zip(got["ids"], got["metadatas"], got["documents"], got["embeddings"]):
                found[cid] = (meta, text, float(np.dot(np.asarray(emb, dtype=np.float32), qvec)))
        sources = []
        for cid in best:
            if cid not in found:  # deleted between the search and the fetch
                continue
            meta, text, sim = found[cid]
            sources.append(Source(
                marker=len(sources) + 1, doc_id=meta["doc_id"], file_name=meta["file_name"],
                title=meta.get("title", ""), text=text, start=int(meta["start"]), end=int(meta["end"]),
                score=round(fused[cid], 6), similarity=round(sim, 4), chunk_id=cid,
            ))
        return sources
