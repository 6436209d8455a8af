"""`rag serve` / `python -m ui`: index the documents folder and serve the chat UI until Ctrl+C.

rag/cli.py finds `command` through the `rag_chat.commands` entry point (pyproject.toml), so the
engine never imports the UI; `python -m ui` parses the same options with `main`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from rag import RAG, RagError

from . import openai_api
from .app import _is_loopback, launch
from .jobs import IndexJob


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m ui [--docs DIR] [--store DIR] [--host 127.0.0.1] [--port 7860]`, as `rag serve`."""
    parser = argparse.ArgumentParser(prog="python -m ui", description="start the chat UI in the browser")
    parser.add_argument("--docs", help="documents folder (RAG_DOCS_DIR, default seeds/)")
    parser.add_argument("--store", help="index folder (RAG_STORE_DIR, default index_store/)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    try:
        return command(args)
    except (RagError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def command(args: argparse.Namespace) -> int:
    """The `serve` subcommand, given rag/cli.py's parsed arguments (docs, store, host, port)."""
    return serve(docs=args.docs, store=args.store, host=args.host, port=args.port)


def serve(docs: Optional[str] = None, store: Optional[str] = None, host: str = "127.0.0.1",
          port: int = 7860) -> int:
    overrides: dict[str, Any] = {}
    if docs:
        overrides["docs_dir"] = Path(docs)
    if store:
        overrides["store_dir"] = Path(store)
    bot = RAG(**overrides)
    if not bot.settings.docs_dir.is_dir():
        raise FileNotFoundError(f"documents folder not found: {bot.settings.docs_dir}")
    print(f"Documents: {bot.settings.docs_dir.resolve()}\nIndex:     {bot.settings.describe_store()}", flush=True)
    try:
        demo, job, url = launch(bot, host, port)
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port} ({exc}); choose another port with --port", file=sys.stderr)
        return 1
    print(f"rag-chat is running at {url}  (Ctrl+C to stop)", flush=True)
    if bot.settings.watch:  # from now: a change made while the first run indexes is taken in after it
        job.watch(echo=True)
        print("Watching the documents folder: changes there are indexed within seconds (RAG_WATCH=false "
              "turns this off)", flush=True)
    print(openai_api.describe(bot, url, _is_loopback(host)), flush=True)
    threading.Thread(target=_announce_ready, args=(job,), daemon=True).start()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def _announce_ready(job: IndexJob) -> None:
    while job.running:
        time.sleep(0.2)
    if job.error:
        print(f"\nindexing failed: {job.error}", file=sys.stderr, flush=True)
    elif job.result is not None:
        r = job.result
        print(f"\nindex ready: {r.added} added, {r.updated} updated, {r.removed} removed, {r.unchanged} "
              f"unchanged; {r.chunks} chunks ({r.seconds:.1f} s)", flush=True)
        for k in r.skipped:
            print(f"skipped {k.file}: {k.reason}", file=sys.stderr, flush=True)
