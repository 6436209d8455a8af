"""`rag bench`: how fast each stage is, on the seeds and on a synthetic corpus scaled up from real
sentences (the seeds, plus SciFact abstracts when the eval data is there).

Real parts where the figure depends on them: embedding throughput is the bundled model on real
chunks; indexing throughput is RAG.index() on real files; the unchanged re-index is RAG.index() on
5,000 real files. Only the large stores for query latency get their vectors generated (real vectors
perturbed), because embedding 100,000 chunks for real would take an hour on two cores.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from rag.api import RAG
from rag.chunks import Chunker
from rag.documents import load_document

from .metrics import percentile
from .plots import plot
from .processes import peak_rss_mb
from .synth import (
    SEEDS,
    SYNTH_CHUNKS_PER_DOC,
    GeneratedStore,
    TextMaker,
    chunk_files,
    sentence_pool,
    synthetic_chunks,
    write_docs,
)

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"

SEED_QUESTIONS = [
    "Whose founders met with President Xi Jinping together with a leading robotics startup?",
    "What remains a critical barrier to China's AI self-sufficiency?",
    "Where is the data used to train Chinese LLMs predominantly sourced from?",
    "What are Chinese universities doing to train more AI specialists?",
    "In which area have US companies long held sway?",
    "What was Nvidia's closing share price last Friday?",
]


@dataclass
class Plan:
    """How big each part is; `quick` shrinks everything for tests."""

    index_docs: int = 120          # ~400 chunks, embedded for real per round (embed alone, then RAG.index)
    rounds: int = 3                # interleaved rounds: a busy neighbour disturbs both measures alike
    reindex_docs: int = 5000       # files on disk for the unchanged re-index (~10,000 chunks)
    sizes: tuple[int, ...] = (1_000, 3_000, 10_000, 30_000, 100_000)
    queries: int = 100             # timed queries per size
    answer_rounds: int = 5         # timed rounds over the seed questions

    @classmethod
    def quick(cls) -> "Plan":
        return cls(index_docs=12, rounds=2, reindex_docs=150, sizes=(100, 300), queries=10, answer_rounds=1)


# ---- timing helpers -------------------------------------------------------------------------------
class StageTimer:
    """Adds up the time spent in named methods of objects the bench owns, while active."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._patched: list[tuple[object, str]] = []

    def wrap(self, obj, method: str, stage: str):
        real = getattr(obj, method)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

        setattr(obj, method, timed)  # an instance attribute shadows the class method
        self._patched.append((obj, method))

    def restore(self):
        for obj, method in self._patched:
            try:
                delattr(obj, method)
            except AttributeError:
                pass
        self._patched.clear()


def _ms(values: list[float]) -> tuple[float, float]:
    return round(percentile(values, 50) * 1000, 2), round(percentile(values, 95) * 1000, 2)


# ---- the parts ------------------------------------------------------------------------------------
def bench_seeds(work: Path, plan: Plan) -> dict:
    """The shipped corpus, indexed for real: query and extractive-answer latency, warm."""
    docs = work / "seeds"
    shutil.copytree(SEEDS, docs)
    bot = RAG(docs_dir=docs, store_dir=work / "seeds_store")
    report = bot.index()
    for q in SEED_QUESTIONS:  # warm: model, catalog, BM25 loaded
        bot.ask(q, generator="extractive")
    query_s, answer_s = [], []
    for _ in range(plan.answer_rounds):
        for q in SEED_QUESTIONS:
            t0 = time.perf_counter()
            bot.retrieve(q)
            query_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bot.ask(q, generator="extractive")
            answer_s.append(time.perf_counter() - t0)
    q50, q95 = _ms(query_s)
    a50, a95 = _ms(answer_s)
    return {"documents": report.added, "chunks": report.chunks, "index_s": round(report.seconds, 2),
            "query_ms_p50": q50, "query_ms_p95": q95,
            "extractive_answer_ms_p50": a50, "extractive_answer_ms_p95": a95}


def bench_throughput(work: Path, maker: TextMaker, plan: Plan) -> tuple[dict, np.ndarray]:
    """Raw model throughput on the very chunks the indexer will make, against RAG.index() on the
    files; interleaved rounds so a busy neighbour disturbs both alike. Returns the chunk vectors."""
    docs = work / "throughput_docs"
    write_docs(docs, maker, plan.index_docs, words=300)
    probe = RAG(docs_dir=docs, store_dir=work / "throughput_probe")
    s, embedder = probe.settings, probe.embedder
    chunker = Chunker(embedder.tokenize, s.chunk_size, s.chunk_overlap)
    texts = [c.text for p in sorted(docs.glob("*.txt"))
             for c in chunker.chunk(load_document(p, docs, 10**9))]
    embedder.embed(texts[:8])  # load and warm the model
    embed_rates, index_rates, embed_cpu, index_cpu, stages = [], [], [], [], []
    vectors = None
    for r in range(plan.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        vectors = embedder.embed(texts)
        embed_rates.append(len(texts) / (time.perf_counter() - t0))
        embed_cpu.append(len(texts) / (time.process_time() - c0))

        bot = RAG(docs_dir=docs, store_dir=work / f"throughput_store{r}")
        timer = StageTimer()
        timer.wrap(bot.embedder, "embed", "embed")
        timer.wrap(bot.store, "add_chunks", "store writes")
        timer.wrap(bot.store, "commit_documents", "store writes")
        timer.wrap(bot.retriever, "sync_lexical", "bm25 build")
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            report = bot.index()
            total = time.perf_counter() - t0
            index_cpu.append(report.embedded / (time.process_time() - c0))
        finally:
            timer.restore()
        index_rates.append(report.embedded / total)
        other = total - sum(timer.seconds.values())
        stages.append({**{k: v for k, v in timer.seconds.items()}, "read + chunk + catalog": other, "total": total})
    embed_rate, index_rate = float(np.median(embed_rates)), float(np.median(index_rates))
    breakdown = {k: round(float(np.mean([st.get(k, 0.0) for st in stages])), 3) for k in stages[0]}
    return {
        "chunks": len(texts),
        "embed_chunks_per_s": round(embed_rate, 2),
        "index_chunks_per_s": round(index_rate, 2),
        "index_vs_embed": round(index_rate / embed_rate, 3),
        # per CPU second of this process: less disturbed by other processes than wall-clock rates
        "index_vs_embed_cpu": round(float(np.median(index_cpu) / np.median(embed_cpu)), 3),
        "rounds": {"embed_chunks_per_s": [round(x, 2) for x in embed_rates],
                   "index_chunks_per_s": [round(x, 2) for x in index_rates]},
        "index_breakdown_s": breakdown,
    }, np.asarray(vectors)


def time_queries(bot: RAG, questions: list[str], n: int) -> tuple[float, float, float]:
    """p50 and p95 of the whole retrieval (RAG.retrieve, warm), and p50 of the query embedding alone
    (the part a busy machine disturbs most)."""
    for q in questions[:5]:
        bot.retrieve(q)  # warm
    took, embed = [], []
    for i in range(n):
        q = questions[i % len(questions)]
        t0 = time.perf_counter()
        bot.retrieve(q)
        took.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bot.embedder.embed([q])
        embed.append(time.perf_counter() - t0)
    return (*_ms(took), _ms(embed)[0])


def query_texts(scifact_dir: Optional[Path]) -> list[str]:
    qs = list(SEED_QUESTIONS)
    f = scifact_dir / "queries.jsonl" if scifact_dir else None
    if f and f.is_file():
        with f.open(encoding="utf-8") as fh:
            qs += [json.loads(line)["text"] for line in fh if line.strip()][:500]
    random.Random(3).shuffle(qs)
    return qs


def time_reindex(docs: Path, store: Path, files: int, chunks: int) -> dict:
    """Every file is in: the real re-index path on unchanged files, a fresh RAG each time."""
    took = []
    for _ in range(3):
        fresh = RAG(docs_dir=docs, store_dir=store)
        t0 = time.perf_counter()
        r = fresh.index()
        took.append(time.perf_counter() - t0)
        if r.embedded or r.unchanged != files:
            raise RuntimeError(f"re-index of unchanged files did work: {r.to_dict()}")
    return {"documents": files, "chunks": chunks, "reindex_unchanged_s": round(float(np.median(took)), 3),
            "runs_s": [round(t, 3) for t in took]}


def bench_scale(work: Path, maker: TextMaker, plan: Plan, vector_pool: np.ndarray, questions: list[str],
                bar: Callable) -> dict:
    """Re-index of unchanged files, then query latency as the store grows."""
    docs = work / "scale_docs"
    paths = write_docs(docs, maker, plan.reindex_docs, words=170)
    bot = RAG(docs_dir=docs, store_dir=work / "scale_store")
    gen = GeneratedStore(bot, vector_pool)
    by_size, embed_ms, reindex, pending_e, pending_c = [], [], None, [], []
    sizes = list(plan.sizes)
    file_items = chunk_files(bot, docs, paths)
    next_synth = 0
    progress = bar(total=max(sizes), desc="bench: build stores", unit="chunk")
    while sizes or reindex is None:
        target = sizes[0] if sizes else float("inf")
        if reindex is None:
            item = next(file_items, None)
            if item is not None:
                pending_e.append(item[0])
                pending_c.extend(item[1])
            if item is None or gen.chunks + len(pending_c) >= target:
                gen.add(pending_e, pending_c)
                progress.update(len(pending_c))
                pending_e, pending_c = [], []
            if item is None:
                gen.sync()
                reindex = time_reindex(docs, work / "scale_store", len(paths), gen.chunks)
        else:
            n_docs = int(max(1, min(1000, -(-(target - gen.chunks) // SYNTH_CHUNKS_PER_DOC))))
            entries, chunks = synthetic_chunks(maker, next_synth, n_docs)
            next_synth += n_docs
            gen.add(entries, chunks)
            progress.update(len(chunks))
        while sizes and gen.chunks >= sizes[0]:
            sizes.pop(0)
            gen.sync()
            p50, p95, embed_p50 = time_queries(bot, questions, plan.queries)
            by_size.append({"chunks": gen.chunks, "query_ms_p50": p50, "query_ms_p95": p95})
            embed_ms.append(embed_p50)
    progress.close()
    return {"reindex": reindex, "by_size": by_size, "query_embed_ms_p50": embed_ms}


# ---- the run ------------------------------------------------------------------------------------
def _phases(work: Path, plan: Plan, scifact_dir: Optional[Path], bar: Callable) -> dict:
    """The three parts in order, with the seconds each took."""
    steps = bar(total=3, desc="bench")
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    steps.set_postfix_str("seeds")
    seeds = bench_seeds(work, plan)
    steps.update()
    pool = sentence_pool(scifact_dir)
    maker = TextMaker(pool)
    phases["seeds"] = time.perf_counter() - t0
    steps.set_postfix_str("embedding vs indexing")
    throughput, vectors = bench_throughput(work, maker, plan)
    steps.update()
    phases["throughput"] = time.perf_counter() - t0 - sum(phases.values())
    steps.set_postfix_str("re-index and query latency by size")
    scale = bench_scale(work, maker, plan, vectors, query_texts(scifact_dir), bar)
    steps.update()
    phases["scale"] = time.perf_counter() - t0 - sum(phases.values())
    steps.close()
    return {"seeds": seeds, "throughput": throughput, "scale": scale, "pool": pool, "phases": phases}


def run(out: Path, plan: Plan, scifact_dir: Optional[Path] = SCIFACT, keep: bool = False,
        show_progress: bool = True) -> dict:
    from tqdm import tqdm

    def bar(**kw):
        return tqdm(file=sys.stderr, disable=None if show_progress else True, leave=False, **kw)

    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t_start = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)
    try:
        parts = _phases(work, plan, scifact_dir, bar)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result = _summary(parts, plan)
    result.update(
        seconds=round(time.perf_counter() - t_start, 1),
        # the machine's 1-minute load average before and after: figures from a busy machine are slower
        load_avg=[load_start, round(os.getloadavg()[0], 2)],
    )
    result["plots"] = plot(result, out)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    return result


def _summary(parts: dict, plan: Plan) -> dict:
    seeds, throughput, scale = parts["seeds"], parts["throughput"], parts["scale"]
    i10k = min(range(len(scale["by_size"])), key=lambda i: abs(scale["by_size"][i]["chunks"] - 10_000))
    near_10k = scale["by_size"][i10k]
    return {
        "embed_chunks_per_s": throughput["embed_chunks_per_s"],
        "index_chunks_per_s": throughput["index_chunks_per_s"],
        "index_vs_embed": throughput["index_vs_embed"],
        "index_vs_embed_cpu": throughput["index_vs_embed_cpu"],
        "throughput_chunks": throughput["chunks"],
        "throughput_rounds": throughput["rounds"],
        "index_breakdown_s": throughput["index_breakdown_s"],
        "reindex_unchanged_s": scale["reindex"]["reindex_unchanged_s"],
        "reindex_documents": scale["reindex"]["documents"],
        "reindex_chunks": scale["reindex"]["chunks"],
        "query_ms_p50": near_10k["query_ms_p50"],
        "query_ms_p95": near_10k["query_ms_p95"],
        "query_chunks": near_10k["chunks"],
        "query_embed_ms_p50": scale["query_embed_ms_p50"][i10k],
        "extractive_answer_ms_p50": seeds["extractive_answer_ms_p50"],
        "by_size": scale["by_size"],
        "seeds": seeds,
        "peak_rss_mb": peak_rss_mb(),
        "sentence_pool": len(parts["pool"]),
        "quick": plan == Plan.quick(),
        "phase_seconds": {k: round(v, 1) for k, v in parts["phases"].items()},
    }


def format_result(r: dict) -> str:
    lines = [
        f"embedding alone   {r['embed_chunks_per_s']:8.1f} chunks/s",
        f"indexing          {r['index_chunks_per_s']:8.1f} chunks/s ({r['index_vs_embed']:.2f} of embedding alone)",
        f"unchanged re-index of {r['reindex_documents']:,} documents: {r['reindex_unchanged_s']:.2f} s",
        f"query at {r['query_chunks']:,} chunks: p50 {r['query_ms_p50']:.1f} ms, p95 {r['query_ms_p95']:.1f} ms "
        f"(query embedding alone p50 {r['query_embed_ms_p50']:.1f} ms)",
        f"extractive answer (seeds): p50 {r['extractive_answer_ms_p50']:.1f} ms",
        f"peak memory {r['peak_rss_mb']:.0f} MB; {r['seconds']:.0f} s in all; load average "
        f"{r['load_avg'][0]} at the start, {r['load_avg'][1]} at the end",
        "query latency by size:",
    ]
    lines += [f"  {s['chunks']:>8,} chunks  p50 {s['query_ms_p50']:7.1f} ms  p95 {s['query_ms_p95']:7.1f} ms"
              for s in r["by_size"]]
    lines += [f"plot: {p}" for p in r["plots"]]
    return "\n".join(lines)
