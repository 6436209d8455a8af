"""Benchmark of the browser UI: how soon `rag serve` serves the page on an indexed store, and how soon
the first answer text shows in the browser after a question is submitted.

    python -m rageval.ui_bench [--runs 3] [--generator extractive]   (or: python -m ui.bench)

Uses a copy of seeds/ in a temporary folder, Debian's /usr/bin/chromium through playwright, and the
questions of ../shared/eval/seedqa-sample.jsonl when present. Prints medians (and every run)."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .processes import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FALLBACK_QUESTIONS = ["What remains a critical barrier to China's AI self-sufficiency?",
                      "Which companies met Xi Jinping?"]


def _questions() -> list[str]:
    sample = ROOT.parent / "shared" / "eval" / "seedqa-sample.jsonl"
    if not sample.exists():
        return FALLBACK_QUESTIONS
    return [json.loads(line)["question"] for line in sample.read_text().splitlines() if line.strip()]


def _serve(docs: Path, store: Path, port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--docs", str(docs), "--store", str(store), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def _ask_all(page, questions: list[str], first_text_s: list, final_s: list) -> None:
    for n, q in enumerate(questions):
        page.fill("#question textarea", q)
        t1 = time.perf_counter()
        page.click("#ask")
        page.wait_for_function(
            f"document.querySelectorAll('#chat .answer.streaming, #chat .answer.found, "
            f"#chat .answer.notfound').length > {n}", polling="raf", timeout=60_000)
        first_text_s.append(time.perf_counter() - t1)
        page.wait_for_function(
            f"document.querySelectorAll('#chat .answer.found, #chat .answer.notfound').length > {n}",
            polling="raf", timeout=120_000)
        final_s.append(time.perf_counter() - t1)


def _one_run(browser, docs: Path, store: Path, env: dict, questions: list[str], times: dict) -> None:
    """Start `rag serve`, open the page, ask every question; times gains one entry per figure."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = _serve(docs, store, port, env)
    try:
        _wait_http(url)
        times["http"].append(time.perf_counter() - t0)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        times["page"].append(time.perf_counter() - t0)
        # wait for the startup index check and warm-up to finish, as a user reading the page would
        page.wait_for_function("document.querySelector('#top-status').innerText.includes('chunks')",
                               timeout=120_000)
        _ask_all(page, questions, times["first_text"], times["final"])
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _print(times: dict, questions: list[str], args) -> None:
    def show(name, values):
        print(f"{name:44} median {statistics.median(values):6.2f} s   runs: "
              + " ".join(f"{v:.2f}" for v in values))

    print(f"rag serve on an indexed store ({len(questions)} questions, generator {args.generator}, "
          f"{args.runs} runs, {os.cpu_count()} CPUs)")
    show("page served (HTTP 200 on /)", times["http"])
    show("page usable in chromium (question box)", times["page"])
    show("first answer text visible after submit", times["first_text"])
    show("checked answer with citations shown", times["final"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--generator", default="extractive")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from rag import RAG, offline

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    env.update(offline.OFFLINE_ENV, RAG_GENERATOR=args.generator)
    tmp = Path(tempfile.mkdtemp(prefix="rag-ui-bench-"))
    docs, store = tmp / "docs", tmp / "store"
    shutil.copytree(ROOT / "seeds", docs)
    RAG(docs_dir=docs, store_dir=store).index()  # "on an indexed store"

    times: dict[str, list[float]] = {"http": [], "page": [], "first_text": [], "final": []}
    questions = _questions()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for _ in range(args.runs):
                _one_run(browser, docs, store, env, questions, times)
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _print(times, questions, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
