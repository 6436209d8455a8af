"""`rag eval beir`: a BEIR corpus written as files into a docs folder inside the eval store and
indexed by the normal incremental indexer, so what is measured is what users get."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Optional

from rag.api import RAG
from rag.retrieval import MODES, Mode

from .data import BeirData, load_beir
from .metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def doc_file_name(corpus_id: str) -> str:
    """A file name per corpus id that maps back to it (ids with odd characters get escaped)."""
    safe = _SAFE.sub(lambda m: f"~{ord(m.group(0)):04x}", corpus_id)
    return f"{safe}.txt"


def corpus_id_of(doc_id: str) -> str:
    stem = doc_id[:-4] if doc_id.endswith(".txt") else doc_id
    return re.sub(r"~([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), stem)


def write_corpus(data: BeirData, docs_dir: Path,
                 progress: Optional[Callable[[int, int], None]] = None) -> dict[str, str]:
    """One text file per corpus document (title as the first line); files already holding the
    same text are left alone so the incremental indexer sees them unchanged. Returns file -> id."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    total = len(data.corpus)
    for n, (cid, (title, text)) in enumerate(data.corpus.items(), start=1):
        name = doc_file_name(cid)
        wanted[name] = cid
        body = f"{title.strip()}\n\n{text.strip()}\n" if title.strip() else f"{text.strip()}\n"
        path = docs_dir / name
        data_bytes = body.encode("utf-8")
        try:
            if path.read_bytes() == data_bytes:
                continue
        except FileNotFoundError:
            pass
        path.write_bytes(data_bytes)
        if progress and n % 500 == 0:
            progress(n, total)
    for stale in docs_dir.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    return wanted


def default_eval_store(settings_store_dir: Path, data: BeirData) -> Path:
    return settings_store_dir / f"eval-{data.name}"


def retrieval_figures(runs: dict[str, list[str]], latencies: list[float], qrels: dict[str, dict[str, int]]) -> dict:
    """The metrics averaged over queries; runs: query id -> ranked corpus ids."""
    n = len(runs)

    def mean(fn) -> float:
        return round(sum(fn(runs[q], qrels[q]) for q in runs) / n, 4) if n else 0.0

    return {
        "ndcg@10": mean(lambda r, rel: ndcg_at_k(r, rel, 10)),
        "recall@10": mean(lambda r, rel: recall_at_k(r, rel, 10)),
        "recall@100": mean(lambda r, rel: recall_at_k(r, rel, 100)),
        "mrr@10": mean(lambda r, rel: mrr_at_k(r, rel, 10)),
        "latency_ms_p50": round(percentile(latencies, 50) * 1000, 2),
        "latency_ms_p95": round(percentile(latencies, 95) * 1000, 2),
        "queries": n,
    }


def _score_mode(bot: RAG, data: BeirData, mode: Mode, bar: Callable) -> dict:
    qids = sorted(data.qrels)
    runs, latencies = {}, []
    bot.retriever.rank_documents(data.queries[qids[0]], 100, mode)  # warm caches: not timed
    for qid in bar(qids, f"eval {mode}", len(qids)):
        t0 = time.perf_counter()
        ranked = bot.retriever.rank_documents(data.queries[qid], 100, mode)
        latencies.append(time.perf_counter() - t0)
        runs[qid] = [corpus_id_of(doc_id) for doc_id, _ in ranked]
    return retrieval_figures(runs, latencies, data.qrels)


def eval_beir(data_dir: Path, split: str = "test", store_dir: Optional[Path] = None,
              modes: tuple[Mode, ...] = MODES, bot_factory: Callable[..., RAG] = RAG,
              bar: Optional[Callable] = None, index_progress=None) -> dict:
    """Index the corpus (incrementally; reused when unchanged) and score every mode on the split.
    bar(iterable, desc, total) wraps long loops with a progress bar."""
    bar = bar or (lambda it, desc, total: it)
    data = load_beir(data_dir, split)
    probe = bot_factory()
    store_dir = Path(store_dir) if store_dir else default_eval_store(probe.settings.store_dir, data)
    docs_dir = store_dir / "docs"
    write_corpus(data, docs_dir)
    bot = bot_factory(docs_dir=docs_dir, store_dir=store_dir)
    report = bot.index(progress=index_progress)
    bot.store.check_model(bot.embedder.name)
    per_mode = {mode: _score_mode(bot, data, mode, bar) for mode in modes}
    default = "hybrid" if "hybrid" in per_mode else modes[0]
    return {
        **per_mode[default],
        "mode": default,
        "by_mode": per_mode,
        "dataset": data.name,
        "split": split,
        "documents": len(bot.store.catalog()),
        "chunks": bot.store.chunk_count(),
        "index": {"added": report.added, "unchanged": report.unchanged, "embedded": report.embedded,
                  "skipped": len(report.skipped), "seconds": round(report.seconds, 1)},
        "store": str(store_dir),
        "settings": {k: getattr(bot.settings, k) for k in
                     ("chunk_size", "chunk_overlap", "fusion", "rrf_k", "dense_weight", "bm25_weight", "candidates")},
    }
