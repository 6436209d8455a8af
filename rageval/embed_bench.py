"""The embedding backends side by side (RAG_EMBED_BACKEND = torch | onnx | onnx-int8): indexing
throughput with RAG.index() on the seeds and on a larger sample of real news articles, the query
embedding latency, the one-off ONNX export, and each backend's cosine to torch. Rounds are
interleaved (the backend order rotates) so that a busy neighbour slows every backend alike; the load
average is recorded beside each figure.

    PYTHONPATH=. .venv/bin/python scripts/bench_embed.py [--chunks 2000] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from rag.api import RAG
from rag.chunks import Chunker
from rag.documents import load_document
from rag.embeddings import get_embedder
from rag.settings import Settings

from .data import load_beir
from .metrics import percentile
from .synth import SEEDS

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT.parent / "shared" / "eval" / "realtimeqa-dev" / "docs"
SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"
Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def news_sample(dest: Path, chunks: int, cache: Path, source: Path = NEWS) -> int:
    """Copies news articles into dest until they make at least `chunks` chunks; returns the count."""
    dest.mkdir(parents=True, exist_ok=True)
    s = Settings(embed_backend="onnx", embed_cache_dir=cache)
    chunker = Chunker(get_embedder(s).tokenize, s.chunk_size, s.chunk_overlap)
    total = 0
    for path in sorted(source.glob("*.txt")):
        total += len(chunker.chunk(load_document(path, source, 10**9)))
        shutil.copy(path, dest / path.name)
        if total >= chunks:
            break
    return total


def index_round(docs: Path, store: Path, backend: Backend, cache: Path) -> dict:
    """One RAG.index() of docs into a new store; the model is loaded before the clock starts."""
    shutil.rmtree(store, ignore_errors=True)
    bot = RAG(docs_dir=docs, store_dir=store, embed_backend=backend, embed_cache_dir=cache)
    bot.embedder.embed(["warm up"])
    load, c0, t0 = _load(), time.process_time(), time.perf_counter()
    report = bot.index()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"chunks": report.embedded, "chunks_per_s": round(report.embedded / wall, 2),
            "chunks_per_cpu_s": round(report.embedded / cpu, 2), "load": load}


def bench_indexing(docs: Path, work: Path, cache: Path, rounds: int) -> dict:
    runs: dict[str, list[dict]] = {b: [] for b in BACKENDS}
    for r in range(rounds):
        for backend in BACKENDS[r % 3:] + BACKENDS[: r % 3]:
            runs[backend].append(index_round(docs, work / f"store-{backend}", backend, cache))
    return {b: {"chunks_per_s": float(np.median([x["chunks_per_s"] for x in rs])), "rounds": rs}
            for b, rs in runs.items()}


def bench_queries(cache: Path, queries: list[str]) -> dict:
    """Each query embedded alone (as a question is), the backends taking turns query by query."""
    embedders = {b: get_embedder(Settings(embed_backend=b, embed_cache_dir=cache)) for b in BACKENDS}
    took: dict[str, list[float]] = {b: [] for b in BACKENDS}
    load = _load()
    for q in queries:
        for b, emb in embedders.items():
            t0 = time.perf_counter()
            emb.embed([q])
            took[b].append(time.perf_counter() - t0)
    return {b: {"ms_p50": round(percentile(t, 50) * 1000, 2), "ms_p95": round(percentile(t, 95) * 1000, 2),
                "load": load} for b, t in took.items()}


def cosines(cache: Path, texts: list[str]) -> dict:
    ref = get_embedder(Settings(embed_backend="torch")).embed(texts)
    out = {}
    for b in BACKENDS[1:]:
        cos = (get_embedder(Settings(embed_backend=b, embed_cache_dir=cache)).embed(texts) * ref).sum(axis=1)
        out[b] = {"min": round(float(cos.min()), 4), "mean": round(float(cos.mean()), 5)}
    return out


def export_seconds(cache: Path) -> dict:
    """First use in an empty cache folder: export (and quantise), then load."""
    out = {}
    for b in BACKENDS[1:]:
        t0 = time.perf_counter()
        get_embedder(Settings(embed_backend=b, embed_cache_dir=cache))
        out[b] = round(time.perf_counter() - t0, 1)
    return out


def run(chunks: int, rounds: int, work: Path) -> dict:
    cache = work / "cache"
    result: dict = {"load_start": _load(), "cpus": os.cpu_count(), "export_s": export_seconds(cache)}
    seeds = work / "seeds"
    shutil.copytree(SEEDS, seeds)
    news = work / "news"
    result["news_chunks"] = news_sample(news, chunks, cache)
    result["seeds"] = bench_indexing(seeds, work, cache, max(rounds, 3))
    result["news"] = bench_indexing(news, work, cache, rounds)
    queries = list(load_beir(SCIFACT, "train").queries.values())[:200] if SCIFACT.is_dir() else []
    result["query_embed"] = bench_queries(cache, queries or ["What was Nvidia's closing share price?"] * 50)
    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(news.glob("*.txt"))[:64]]
    result["cosine_to_torch"] = {"passages": cosines(cache, texts), "queries": cosines(cache, queries[:200])}
    result["load_end"] = _load()
    return result


def format_result(r: dict) -> str:
    lines = [f"load average {r['load_start']} -> {r['load_end']}, {r['cpus']} CPUs; "
             f"export on first use: {r['export_s']}",
             f"{'backend':10} {'seeds chunks/s':>15} {'news chunks/s':>14} {'query ms p50/p95':>17} "
             f"{'cos passages min':>17} {'cos queries min':>16}"]
    for b in BACKENDS:
        q = r["query_embed"][b]
        cp = r["cosine_to_torch"]["passages"].get(b, {"min": 1.0})["min"]
        cq = r["cosine_to_torch"]["queries"].get(b, {"min": 1.0})["min"]
        lines.append(f"{b:10} {r['seeds'][b]['chunks_per_s']:15.1f} {r['news'][b]['chunks_per_s']:14.1f} "
                     f"{q['ms_p50']:8.1f} / {q['ms_p95']:6.1f} {cp:17.4f} {cq:16.4f}")
    lines.append(f"(news sample: {r['news_chunks']} chunks; medians of interleaved rounds)")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=2000, help="chunks of news articles to index per round")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds on the news sample")
    ap.add_argument("--json", help="write the full result here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        result = run(args.chunks, args.rounds, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
