"""Load held: questions per second with N users asking at once (extractive generator), through the
Python API (threads sharing one RAG) and through the UI's queue (gradio_client, one client per user).

    .venv/bin/python scripts/load_test.py [--users 20] [--per-user 5] [--rounds 3] [--json]
    .venv/bin/python -m rageval.load_test ...   (the same)

Indexes the seeds into a temporary store first. Prints the median of the rounds; timings on a
shared machine vary, so compare runs taken on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rag import RAG, offline

offline.apply()

ROOT = Path(__file__).resolve().parent.parent

QUESTIONS = [
    "Whose founders met with President Xi Jinping together with a leading robotics startup?",
    "What remains a critical barrier to China's AI self-sufficiency?",
    "Where is the data used to train Chinese LLMs predominantly sourced from?",
    "Which companies met Xi Jinping?",
    "What did the government say about semiconductors?",
    "Which universities produce AI specialists?",
    "Who trains Chinese large language models?",
    "What is Huawei leading?",
]


def run_users(users: int, per_user: int, ask_one) -> dict:
    """Every user asks per_user questions one after another; all users start together."""
    start = threading.Barrier(users + 1)
    latencies: list[float] = []

    def user(u: int):
        session = ask_one.session() if hasattr(ask_one, "session") else None
        start.wait()
        for i in range(per_user):
            q = QUESTIONS[(u + i) % len(QUESTIONS)]
            t0 = time.perf_counter()
            answer = ask_one(q, session)
            latencies.append(time.perf_counter() - t0)
            assert answer, "no answer"

    with ThreadPoolExecutor(users) as pool:
        futures = [pool.submit(user, u) for u in range(users)]
        start.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"questions": len(latencies), "seconds": round(wall, 2), "qps": round(len(latencies) / wall, 2),
            "p50_s": round(latencies[len(latencies) // 2], 3),
            "p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 3)}


class ApiAsk:
    def __init__(self, bot: RAG):
        self.bot = bot

    def __call__(self, question, session):
        return self.bot.ask(question, generator="extractive").answer


class UiAsk:
    def __init__(self, url: str):
        self.url = url

    def session(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def __call__(self, question, client):
        return client.predict(question, 0, "extractive", [], api_name="/ask")["answer"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--per-user", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="rag-load-"))
    try:
        shutil.copytree(ROOT / "seeds", base / "docs")
        bot = RAG(docs_dir=base / "docs", store_dir=base / "store", generator="extractive")
        bot.index()
        bot.ask(QUESTIONS[0])  # warm: model, BM25

        from ui.app import launch

        demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)
        while job.running:
            time.sleep(0.1)
        results: dict[str, list[dict]] = {"api": [], "ui": []}
        for _ in range(args.rounds):
            results["api"].append(run_users(args.users, args.per_user, ApiAsk(bot)))
            results["ui"].append(run_users(args.users, args.per_user, UiAsk(url)))
        demo.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    summary = {
        "users": args.users, "per_user": args.per_user, "rounds": args.rounds, "cpus": os.cpu_count(),
        **{f"{k}_qps_median": statistics.median(r["qps"] for r in v) for k, v in results.items()},
        **{f"{k}_p95_s_median": statistics.median(r["p95_s"] for r in v) for k, v in results.items()},
        "runs": results,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for k in ("api", "ui"):
            print(f"{k:4} {args.users} users: {summary[f'{k}_qps_median']} questions/s (median of "
                  f"{args.rounds}; p95 latency {summary[f'{k}_p95_s_median']} s); rounds: "
                  + ", ".join(str(r["qps"]) for r in results[k]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
