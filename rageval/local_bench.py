"""Benchmark of the bundled local model on the seed questions: model load time, time to first token,
full answer time, answer correctness and citations; optionally for several thread counts, with and
without another busy process (an embedding loop) beside it.

    .venv/bin/python scripts/bench_local.py                        # default settings
    .venv/bin/python scripts/bench_local.py --threads 1,2 --load none,embed --repeats 3
    .venv/bin/python scripts/bench_local.py --cold                 # also time the first join
    .venv/bin/python -m rageval.local_bench ...                    # the same

Questions: ../shared/eval/seedqa-sample.jsonl (read from there, never copied). Each repeat loads
the model afresh and asks every question once, in order, right after the load (so the first
question also waits for the system prompt's warm-up); timings are medians over --repeats. The load
average at the start of each run is printed: on a shared machine other processes change every
figure."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rag import RAG
from rag.local_llm import LocalGenerator
from rag.settings import Settings
from rag.text import markers_in

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_QUESTIONS = ROOT.parent / "shared" / "eval" / "seedqa-sample.jsonl"


def busy_embedding_loop(stop) -> None:
    """Another process keeping one core busy: MiniLM embedding batches, as an indexer would."""
    import torch

    torch.set_num_threads(1)
    from rag.embeddings import get_embedder

    emb = get_embedder(Settings())
    texts = [f"Passage {i} about chips, models and the data used to train them." * 8 for i in range(32)]
    while not stop.is_set():
        emb.embed(texts)


def correct(answer, q) -> bool:
    if not q["answer"]:
        return not answer.answered
    text = answer.answer.lower()
    groups_ok = all(any(s.lower() in text for s in group) for group in q["answer"])
    valid = {s.marker for s in answer.sources}
    cites = markers_in(answer.answer)
    return answer.answered and groups_ok and bool(cites) and set(cites) <= valid


def run(bot: RAG, questions: list[dict], repeats: int) -> tuple[list[dict], list[float]]:
    """Each repeat loads the model afresh and asks every question once: llama.cpp caches prompts
    (in the slot and in RAM), so a question asked twice to one model would measure that cache."""
    times: dict[str, list] = {q["id"]: [] for q in questions}
    loads, last = [], {}
    for _ in range(repeats):
        LocalGenerator.unload()
        t0 = time.perf_counter()
        LocalGenerator.shared(bot.settings)
        loads.append(time.perf_counter() - t0)
        for q in questions:
            t0 = time.perf_counter()
            first = None
            stream = bot.ask_stream(q["question"], generator="local")
            for _delta in stream:
                if first is None:
                    first = time.perf_counter() - t0
            total = time.perf_counter() - t0
            times[q["id"]].append((first if first is not None else total, total, correct(stream.answer, q)))
            last[q["id"]] = stream.answer
    rows = []
    for q in questions:
        ttfts, totals, oks = zip(*times[q["id"]])
        a = last[q["id"]]
        assert a is not None  # the stream was read to its end
        rows.append({
            "id": q["id"], "type": q.get("type"), "ttft_s": round(statistics.median(ttfts), 2),
            "total_s": round(statistics.median(totals), 2), "correct": all(oks),
            "answered": a.answered, "generator": a.generator, "answer": a.answer,
        })
    return rows, loads


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    ap.add_argument("--docs", type=Path, default=ROOT / "seeds")
    ap.add_argument("--threads", default="", help="comma-separated thread counts (default: RAG_LLM_THREADS)")
    ap.add_argument("--load", default="none", help="comma-separated: none, embed (a busy embedding loop beside)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also time joining the slices into an empty cache")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    return ap


def _summary(bot: RAG, threads: int, load: str, loadavg: float, rows: list[dict], loads: list[float]) -> dict:
    gen = LocalGenerator.shared(bot.settings)
    answerable = [r for r in rows if r["type"] != "unanswerable"]
    return {
        "threads": threads, "load": load, "loadavg_1min": round(loadavg, 2),
        "model_load_s": round(statistics.median(loads), 2), "model": str(gen.model_path),
        "ttft_median_s": round(statistics.median(r["ttft_s"] for r in answerable), 2),
        "ttft_max_s": max(r["ttft_s"] for r in answerable),
        "total_median_s": round(statistics.median(r["total_s"] for r in answerable), 2),
        "total_max_s": max(r["total_s"] for r in answerable),
        "correct": f"{sum(r['correct'] for r in rows)}/{len(rows)}",
        "questions": rows,
    }


def _print_run(summary: dict, repeats: int) -> None:
    print(f"\nthreads={summary['threads']} beside={summary['load']} loadavg={summary['loadavg_1min']:.2f} "
          f"model load {summary['model_load_s']:.2f} s (repeats {repeats}, medians)")
    for r in summary["questions"]:
        print(f"  {r['id']:<4} ttft {r['ttft_s']:5.2f} s  total {r['total_s']:5.2f} s  "
              f"{'ok ' if r['correct'] else 'BAD'} {r['answer'][:90]}")
    print(f"  answerable: ttft median {summary['ttft_median_s']} s, max {summary['ttft_max_s']} s; "
          f"total median {summary['total_median_s']} s, max {summary['total_max_s']} s; "
          f"correct {summary['correct']}")


def _runs_beside(load: str, thread_counts: list[int], args, store: Path, questions: list[dict]) -> list[dict]:
    """Every thread count, with (load="embed") or without a busy embedding process beside."""
    spawn = mp.get_context("spawn")  # a fresh interpreter: no copy of this process's model
    stop = spawn.Event()
    loader = None
    if load == "embed":
        loader = spawn.Process(target=busy_embedding_loop, args=(stop,), daemon=True)
        loader.start()
        time.sleep(8)  # let it load its model and get busy
    out = []
    try:
        for threads in thread_counts:
            bot = RAG(docs_dir=args.docs, store_dir=store, llm_threads=threads)
            bot.ensure_indexed()
            bot.retrieve("warm up the embedder and the BM25 index")
            loadavg = os.getloadavg()[0]
            rows, loads = run(bot, questions, args.repeats)
            out.append(_summary(bot, threads, load, loadavg, rows, loads))
            _print_run(out[-1], args.repeats)
    finally:
        if loader is not None:
            stop.set()
            loader.join(timeout=30)
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    results: dict = {"cpus": os.cpu_count(), "runs": []}
    if args.cold:
        from rag.local_weights import ensure_bundled

        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            ensure_bundled(Path(cache))
            results["first_join_s"] = round(time.perf_counter() - t0, 2)
        print(f"first join + verify (1.1 GB): {results['first_join_s']} s")
    store = Path(tempfile.mkdtemp(prefix="bench_local_"))
    thread_counts = [int(t) for t in args.threads.split(",") if t] or [Settings().llm_threads]
    for load in args.load.split(","):
        results["runs"] += _runs_beside(load, thread_counts, args, store, questions)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0 if all(r["correct"] == f"{len(questions)}/{len(questions)}" for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
