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
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from .api import RAG
from .chunks import Chunker
from .documents import load_document
from .evaluate import percentile
from .models import Chunk
from .sentences import split_sentences
from .store import CatalogEntry

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
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


# ---- real text, recombined ------------------------------------------------------------------------
def sentence_pool(scifact_dir: Optional[Path], limit_docs: int = 2000) -> list[str]:
    """Sentences of the seeds and (when present) of SciFact abstracts."""
    pool: list[str] = []
    for path in sorted(SEEDS.glob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            pool.extend(text[s:e] for s, e in split_sentences(text))
    corpus = scifact_dir / "corpus.jsonl" if scifact_dir else None
    if corpus and corpus.is_file():
        with corpus.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if n >= limit_docs:
                    break
                text = json.loads(line).get("text", "")
                pool.extend(text[s:e] for s, e in split_sentences(text))
    pool = [" ".join(s.split()) for s in pool]
    return [s for s in pool if 30 <= len(s) <= 600]


class TextMaker:
    """Documents of recombined real sentences, deterministic for a given seed."""

    def __init__(self, pool: list[str], seed: int = 7):
        self.pool, self.rng = pool, random.Random(seed)

    def title(self) -> str:
        words = self.rng.choice(self.pool).split()
        return " ".join(words[: self.rng.randint(4, 10)]).rstrip(".,;:")

    def body(self, words: int) -> str:
        out, n = [], 0
        while n < words:
            s = self.rng.choice(self.pool)
            out.append(s)
            n += len(s.split())
        return " ".join(out)

    def document(self, words: int) -> str:
        # two paragraphs: the chunker splits at paragraph and sentence ends, as in real files
        half = words // 2
        return f"{self.title()}\n\n{self.body(half)}\n\n{self.body(words - half)}\n"


def write_docs(folder: Path, maker: TextMaker, n: int, words: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"doc{i:06d}.txt"
        p.write_text(maker.document(words), encoding="utf-8")
        paths.append(p)
    return paths


def perturbed(pool: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """Unit vectors near real ones: a real chunk vector plus Gaussian noise, normalised."""
    base = pool[rng.integers(0, len(pool), n)]
    vecs = base + rng.normal(0, noise, base.shape).astype(np.float32)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


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


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


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
    }, vectors


class GeneratedStore:
    """A store filled with real chunk texts and generated vectors, grown in steps."""

    def __init__(self, bot: RAG, vector_pool: np.ndarray):
        self.bot, self.pool = bot, vector_pool
        self.rng = np.random.default_rng(11)
        self.chunks = 0
        bot.store.begin_write(bot.embedder.name)
        bot.store.end_write(changed=False)

    def add(self, entries: list[CatalogEntry], chunks: list[Chunk]):
        store = self.bot.store
        store.begin_write(self.bot.embedder.name)
        for i in range(0, len(chunks), 5000):
            part = chunks[i : i + 5000]
            store.add_chunks(part, perturbed(self.pool, len(part), self.rng))
        store.commit_documents(entries)
        store.end_write(changed=True)
        self.chunks += len(chunks)

    def sync(self):
        self.bot.retriever.sync_lexical(force=True)


def chunk_files(bot: RAG, docs: Path, paths: list[Path]) -> Iterator[tuple[CatalogEntry, list[Chunk]]]:
    """What the indexer does to each file, minus the embedding."""
    s = bot.settings
    chunker = Chunker(bot.embedder.tokenize, s.chunk_size, s.chunk_overlap)
    for p in paths:
        doc = load_document(p, docs, 10**9)
        chunks = chunker.chunk(doc)
        yield CatalogEntry(doc.doc_id, doc.sha256, doc.title, doc.file_name, len(chunks), time.time()), chunks


# Longer documents past the file corpus: 8 chunks each keeps the catalog under ~20,000 documents at
# 100,000 chunks (Chroma 1.5.9 fails to list more than ~32,000 catalog records in one get).
SYNTH_CHUNKS_PER_DOC = 8


def synthetic_chunks(maker: TextMaker, start: int, n_docs: int, per_doc: int = SYNTH_CHUNKS_PER_DOC):
    """Documents that never touch the disk, for the sizes past the re-index corpus."""
    entries, chunks = [], []
    for i in range(start, start + n_docs):
        doc_id = f"gen/{i:07d}.txt"
        title = maker.title()
        sha = f"{i:064x}"
        cs = []
        for j in range(per_doc):
            text = maker.body(110)
            cs.append(Chunk(f"gen-{i}-{j}", doc_id, title, f"{i:07d}.txt", text, 0, len(text), sha))
        entries.append(CatalogEntry(doc_id, sha, title, f"{i:07d}.txt", per_doc, time.time()))
        chunks.extend(cs)
    return entries, chunks


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
            qs += [json.loads(l)["text"] for l in fh if l.strip()][:500]
    random.Random(3).shuffle(qs)
    return qs


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
                # every file is in: the real re-index path on unchanged files, a fresh RAG each time
                gen.sync()
                took = []
                for _ in range(3):
                    fresh = RAG(docs_dir=docs, store_dir=work / "scale_store")
                    t0 = time.perf_counter()
                    r = fresh.index()
                    took.append(time.perf_counter() - t0)
                    if r.embedded or r.unchanged != len(paths):
                        raise RuntimeError(f"re-index of unchanged files did work: {r.to_dict()}")
                reindex = {"documents": len(paths), "chunks": gen.chunks,
                           "reindex_unchanged_s": round(float(np.median(took)), 3),
                           "runs_s": [round(t, 3) for t in took]}
        else:
            n_docs = max(1, min(1000, -(-(target - gen.chunks) // SYNTH_CHUNKS_PER_DOC)))
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


# ---- plots --------------------------------------------------------------------------------------
def plot(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    sizes = result["by_size"]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["chunks"] for r in sizes]
    ax.plot(xs, [r["query_ms_p50"] for r in sizes], "o-", label="p50")
    ax.plot(xs, [r["query_ms_p95"] for r in sizes], "s--", label="p95")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the store")
    ax.set_ylabel("retrieval latency (ms, warm)")
    ax.set_title("Hybrid retrieval latency against corpus size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "latency_vs_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))

    breakdown = {k: v for k, v in result["index_breakdown_s"].items() if k != "total"}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(breakdown)
    ax.barh(names, [breakdown[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(breakdown[n], i, f" {breakdown[n]:.2f} s", va="center")
    ax.set_xlabel("seconds")
    ax.set_title(f"Index time breakdown ({result['throughput_chunks']} chunks, "
                 f"{result['index_breakdown_s']['total']:.1f} s)")
    ax.set_xlim(0, max(breakdown.values()) * 1.3 or 1)
    fig.tight_layout()
    path = out / "index_breakdown.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))
    return files


# ---- the run ------------------------------------------------------------------------------------
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
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    i10k = min(range(len(scale["by_size"])), key=lambda i: abs(scale["by_size"][i]["chunks"] - 10_000))
    near_10k = scale["by_size"][i10k]
    result = {
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
        "sentence_pool": len(pool),
        "quick": plan == Plan.quick(),
        "seconds": round(time.perf_counter() - t_start, 1),
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        # the machine's 1-minute load average before and after: figures from a busy machine are slower
        "load_avg": [load_start, round(os.getloadavg()[0], 2)],
    }
    result["plots"] = plot(result, out)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    return result


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
