"""`rag bench --scale N[,N...]`: query latency, BM25 build and memory, disk and RSS on stores of up
to a million chunks, embedded and behind a `chroma run` server.

The stores are synthetic: documents of 20-40 chunks of recombined real sentences, with the ids,
offsets, pages and catalog entries the indexer writes (synth.realistic_document), and GENERATED
vectors (synth.generated_vectors: blends of a few hundred really embedded chunk vectors plus
seeded noise), written straight into Chroma in batches of 5,000. Embedding a million chunks through
the model would take about ten hours on two cores; the questions are embedded for real.

One store is grown through the sizes (10k, then 90k more for 100k, ...): each size is measured,
then more documents are added. Every step runs in a child process of its own, so each peak RSS is
that step's: the builder's, then a fresh process that opens the store, builds BM25 and answers the
questions (what a freshly started `rag serve` holds), then a `chroma run` server on the same files
with a client process beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .metrics import percentile
from .processes import free_port, peak_rss_mb, stop_process, wait_heartbeat

TARGETS = {"query_ms_p50": 100.0, "query_ms_p95": 250.0, "peak_rss_mb": 8192.0}
VECTORS_LABEL = ("generated, not embedded: each chunk vector is a seeded random blend of two of "
                 "{anchors} really embedded chunk vectors plus Gaussian noise (sigma 0.04 per dimension)")
ANCHORS = 384  # real chunk vectors the generated ones are blended from
_ADD_BATCH = 5000  # Chroma 1.5.9 takes at most 5,461 records a call


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _size_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
    return round(total / 2**20, 1)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# ---- child process: grow the store -----------------------------------------------------------------
def grow(store_dir: Path, work: Path, first_doc: int, target: int) -> dict:
    """Add documents first_doc, first_doc+1, ... until the store holds at least target chunks."""
    from rag.api import RAG
    from rag.chunks import Chunker
    from rag.models import Chunk
    from rag.store import CatalogEntry

    from .synth import generated_vectors, realistic_document

    bot = RAG(store_dir=store_dir)
    store, s = bot.store, bot.settings
    reading = Chunker(bot.embedder.tokenize, s.chunk_size, s.chunk_overlap).reading
    pool = json.loads((work / "pool.json").read_text())
    anchors = _anchors(bot, work / "anchors.npy", pool, reading)
    store.begin_write(bot.embedder.name)
    chunks_now, doc = store.chunk_count(), first_doc
    chunks_before = chunks_now
    t0 = time.perf_counter()
    while chunks_now < target:
        entries: list[CatalogEntry] = []
        chunks: list[Chunk] = []
        while chunks_now + len(chunks) < target:
            entry, cs = realistic_document(pool, doc, reading)
            if len(chunks) + len(cs) > _ADD_BATCH:
                break
            entries.append(entry)
            chunks.extend(cs)
            doc += 1
        # seeded by the batch's first document: the same store whichever sizes it is grown through
        vecs = generated_vectors(anchors, len(chunks), np.random.default_rng([11, doc - len(entries)]))
        store.chunks.add(ids=[c.chunk_id for c in chunks], embeddings=vecs, documents=[c.text for c in chunks],
                         metadatas=[_chunk_metadata(c) for c in chunks])
        store.commit_documents(entries)  # after its chunks, as the indexer commits
        chunks_now += len(chunks)
    store.end_write(changed=True, reading=reading)
    seconds = time.perf_counter() - t0
    return {"next_doc": doc, "documents_added": doc - first_doc, "chunks": store.chunk_count(),
            "seconds": round(seconds, 1), "chunks_per_s": round((chunks_now - chunks_before) / max(seconds, 1e-9), 1),
            "peak_rss_mb": peak_rss_mb()}


def _chunk_metadata(c) -> dict:
    from rag.store import _chunk_metadata as meta

    return meta(c)


def _anchors(bot, path: Path, pool: list[str], reading: str) -> np.ndarray:
    """The real chunk vectors the generated ones blend: embedded once, by the model, and kept."""
    if path.exists():
        return np.load(path)
    from .synth import realistic_document

    texts: list[str] = []
    n = 10**8  # documents far past any store's, so none of the stored chunks is an anchor itself
    while len(texts) < ANCHORS:
        texts += [c.text for c in realistic_document(pool, n, reading)[1]]
        n += 1
    vecs = bot.embedder.embed(texts[:ANCHORS])
    np.save(path, vecs)
    return vecs


# ---- child process: open the store, build BM25, answer the questions -------------------------------
def measure(store_dir: Path, questions: list[str], n: int, host: Optional[str] = None, port: int = 0,
            server_pid: Optional[int] = None) -> dict:
    """A fresh process, as `rag serve` starts: open the store (embedded, or the server at host:port),
    build BM25 from it, then time n questions through RAG.retrieve with the stages beside."""
    from rag.api import RAG
    from rag.lexical import LexicalIndex

    from .bench import StageTimer

    base = _rss_mb()
    server: dict = {"chroma_host": host, "chroma_port": port} if host else {}
    bot = RAG(store_dir=store_dir, **server)
    bot.embedder.embed(["warm the model"])
    t0 = time.perf_counter()
    catalog = bot.store.catalog(fresh=True)
    catalog_s = time.perf_counter() - t0
    before = _rss_mb()
    t0 = time.perf_counter()
    bot.retriever.sync_lexical(force=True)  # rebuilt from the store, as after a re-index
    bm25_build_s = time.perf_counter() - t0
    bm25 = {"build_s": round(bm25_build_s, 1), "rss_held_mb": round(_rss_mb() - before, 1),
            "peak_rss_during_build_mb": peak_rss_mb(), "disk_mb": _size_mb(bot.retriever.lexical.directory)}
    t0 = time.perf_counter()
    LexicalIndex(bot.retriever.lexical.directory).load()  # what a restart pays instead of a rebuild
    bm25["load_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    bot.retrieve(questions[0])  # the first search loads the vector index (embedded) into memory
    first_ms = (time.perf_counter() - t0) * 1000
    for q in questions[1:6]:
        bot.retrieve(q)
    server_cpu = _cpu_seconds(server_pid)
    took, cpu, stages = _timed_queries(bot, questions, n, StageTimer())
    server_cpu = _cpu_seconds(server_pid) - server_cpu
    return {"catalog_documents": len(catalog), "catalog_load_s": round(catalog_s, 2), "bm25": bm25,
            "first_query_ms": round(first_ms, 1),
            "query_ms_p50": round(percentile(took, 50) * 1000, 1),
            "query_ms_p95": round(percentile(took, 95) * 1000, 1),
            "query_ms_max": round(max(took) * 1000, 1), "queries": n,
            "query_cpu_ms_p50": round(percentile(cpu, 50) * 1000, 1),
            "query_cpu_ms_p95": round(percentile(cpu, 95) * 1000, 1),
            "server_cpu_ms_mean": round(server_cpu / n * 1000, 1) if server_pid else None,
            "stage_ms_mean": {k: round(v / n * 1000, 2) for k, v in stages.items()},
            "rss_at_start_mb": base, "rss_mb": _rss_mb(), "peak_rss_mb": peak_rss_mb()}


def _timed_queries(bot, questions: list[str], n: int, timer) -> tuple[list[float], list[float], dict[str, float]]:
    """Seconds per RAG.retrieve, wall-clock and CPU (this process's, all threads: what a busy
    neighbour disturbs less), and the seconds spent in each stage over all n of them."""
    r = bot.retriever
    timer.wrap(r.embedder, "embed", "embed question")
    timer.wrap(r.store, "query", "vector search (Chroma)")
    timer.wrap(r.lexical, "search", "BM25 search")
    timer.wrap(r.store, "catalog", "catalog (cached; with a version check)")
    timer.wrap(r.store, "version", "store version check")
    timer.wrap(r.store.chunks, "get", "fetch BM25-only passages")
    took, cpu = [], []
    try:
        for i in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            bot.retrieve(questions[i % len(questions)])
            took.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    finally:
        timer.restore()
    total = sum(took)
    stages = dict(timer.seconds)
    stages["other (fusion, python)"] = max(0.0, total - sum(stages.values()))
    return took, cpu, stages


def _cpu_seconds(pid: Optional[int]) -> float:
    """CPU seconds another process (the Chroma server) has used so far; 0 when there is none."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# ---- a `chroma run` server on the same files --------------------------------------------------------
class ChromaServer:
    """`chroma run` on the store's Chroma folder, for as long as the with-block lasts."""

    def __init__(self, path: Path, log: Path, port: int = 0):
        self.path, self.log, self.port = path, log, port or free_port()
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "ChromaServer":
        exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([exe, "run", "--path", str(self.path), "--host", "127.0.0.1",
                                          "--port", str(self.port)], stdout=fh, stderr=subprocess.STDOUT)
        wait_heartbeat(self.port, timeout=300, proc=self.proc, every=0.5, log=self.log)
        return self

    def memory(self) -> dict:
        """The server's resident memory now and at its peak (VmHWM), in MB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        kb = lambda k: int(fields[k].split()[0]) / 1024  # noqa: E731
        return {"server_rss_mb": round(kb("VmRSS"), 1), "server_peak_rss_mb": round(kb("VmHWM"), 1)}

    def __exit__(self, *exc):
        if self.proc is not None:
            stop_process(self.proc, 60)


# ---- the run ------------------------------------------------------------------------------------------
def _child(step: str, **args) -> dict:
    """Run one step in a fresh Python process; its JSON answer is the last line it prints."""
    cmd = [sys.executable, "-m", "rageval.scale", step, json.dumps(args, default=str)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench step {step} failed (exit {done.returncode}); its error is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_size(work: Path, store: Path, questions: list[str], queries: int, server: bool) -> dict:
    row: dict = {"load_avg_start": _load()}
    row["embedded"] = _child("measure", store_dir=store, questions=questions, n=queries)
    row["load_avg_embedded_end"] = _load()
    if server:
        with ChromaServer(store / "chroma", work / "chroma_server.log") as srv:
            got = _child("measure", store_dir=work / "server_client", questions=questions, n=queries,
                         host="127.0.0.1", port=srv.port, server_pid=srv.proc.pid if srv.proc else None)
            row["server"] = {**got, **srv.memory()}
        shutil.rmtree(work / "server_client", ignore_errors=True)
        row["load_avg_end"] = _load()
    return row


def run_scale(out: Path, sizes: list[int], queries: int = 200, server: bool = True,
              work: Optional[Path] = None, keep: bool = False, scifact_dir: Optional[Path] = None,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict:
    """Grow one store through sizes (ascending), measuring each; results to out/scale.json + a plot."""
    from .bench import SCIFACT, query_texts
    from .plots import plot_scale
    from .synth import sentence_pool

    scifact_dir = SCIFACT if scifact_dir is None else scifact_dir
    out.mkdir(parents=True, exist_ok=True)
    work = work or out / "scale_work"
    store = work / "store"
    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if keep and state_file.exists() else None
    if state is None:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        state = {"next_doc": 0, "chunks": 0}
        (work / "pool.json").write_text(json.dumps(sentence_pool(scifact_dir)))
    questions = query_texts(scifact_dir)
    t_start, load_start = time.perf_counter(), _load()
    rows = []
    try:
        for i, size in enumerate(sorted(sizes)):
            nxt = sorted(sizes)[i + 1] if i + 1 < len(sizes) else None
            build = None
            if state["chunks"] < size:
                log(f"bench --scale: growing the store from {state['chunks']:,} to {size:,} chunks")
                build = _child("grow", store_dir=store, work=work, first_doc=state["next_doc"], target=size)
                state = {"next_doc": build["next_doc"], "chunks": build["chunks"]}
                state_file.write_text(json.dumps(state))
            elif nxt is not None and state["chunks"] >= nxt:
                continue  # a kept store already past this size: measured at the next one
            log(f"bench --scale: measuring at {state['chunks']:,} chunks")
            row = {"chunks": state["chunks"], "documents": state["next_doc"], "build": build,
                   "chroma_disk_mb": _size_mb(store / "chroma")}
            row.update(_measure_size(work, store, questions, queries, server))
            rows.append(row)
            (out / "scale.json").write_text(json.dumps({"by_size": rows}, indent=2))  # partial results survive
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return _scale_summary(out, rows, queries, t_start, load_start, plot_scale)


def _scale_summary(out: Path, rows: list[dict], queries: int, t_start: float, load_start: float,
                   plot_scale: Callable) -> dict:
    largest = rows[-1]["embedded"] if rows else {}
    result = {
        "kind": "scale",
        "vectors": VECTORS_LABEL.format(anchors=ANCHORS),
        "documents": "synthetic, 20-40 chunks each of recombined real sentences (seeds + SciFact abstracts)",
        "queries_per_size": queries,
        "by_size": rows,
        "targets": TARGETS,
        "targets_at_chunks": rows[-1]["chunks"] if rows else None,
        "targets_met": {k: largest.get(k, float("inf")) <= v for k, v in TARGETS.items()},
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_avg": [load_start, _load()],
    }
    result["plots"] = plot_scale(result, out)
    (out / "scale.json").write_text(json.dumps(result, indent=2))
    return result


def format_scale(r: dict) -> str:
    lines = [f"vectors: {r['vectors']}", f"documents: {r['documents']}",
             f"{'chunks':>10} {'mode':>8} {'p50 ms':>8} {'p95 ms':>8} {'BM25 s':>7} {'BM25 MB':>8} "
             f"{'peak RSS MB':>12} {'server RSS MB':>14} {'disk MB':>8} {'build s':>8} {'load avg':>12}"]
    for row in r["by_size"]:
        build = row["build"]["seconds"] if row["build"] else "-"
        for mode in ("embedded", "server"):
            m = row.get(mode)
            if not m:
                continue
            srv = m.get("server_peak_rss_mb", "-")
            load = f"{row['load_avg_start']}->{row.get('load_avg_end', row['load_avg_embedded_end'])}"
            lines.append(f"{row['chunks']:>10,} {mode:>8} {m['query_ms_p50']:>8} {m['query_ms_p95']:>8} "
                         f"{m['bm25']['build_s']:>7} {m['bm25']['rss_held_mb']:>8} {m['peak_rss_mb']:>12} "
                         f"{srv:>14} {row['chroma_disk_mb']:>8} {build:>8} {load:>12}")
    met = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["targets_met"].items())
    lines.append(f"targets at {r['targets_at_chunks']:,} chunks (embedded): {met}")
    lines += [f"plot: {p}" for p in r["plots"]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    step, args = argv[0], json.loads(argv[1])
    if step == "grow":
        got = grow(Path(args["store_dir"]), Path(args["work"]), args["first_doc"], args["target"])
    else:
        got = measure(Path(args["store_dir"]), args["questions"], args["n"], args.get("host"), args.get("port", 0),
                      args.get("server_pid"))
    print(json.dumps(got))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
