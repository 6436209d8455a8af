"""Watch latency: seconds from a file written into a watched documents folder to the answer that
reflects it (README "Watching the documents folder").

    .venv/bin/python scripts/watch_latency.py [--rounds 5]

A copy of one seed in a temporary folder, a real store and the folder watcher (rag/watch.py) in a
thread, as `rag serve` runs it; each round adds a file, edits it, deletes it, and polls `RAG.ask`
(extractive) every 0.1 s until the answer changes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rag import RAG, FolderWatcher

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_50d618d39dec71f2.txt"


def until(check) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > 30:
            raise TimeoutError("no change within 30 s")
        time.sleep(0.1)
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        shutil.copy(SEED, docs / SEED.name)
        bot = RAG(docs_dir=docs, store_dir=Path(tmp) / "store", generator="extractive")
        bot.index()
        watcher = FolderWatcher(docs, lambda changes: bool(bot.index()), ignore=[bot.settings.store_dir]).start()
        watcher.ready.wait(10)
        question = "When did the Zephyrine bridge open?"
        times: dict[str, list[float]] = {"added": [], "changed": [], "deleted": []}
        def says(year: int, present: bool = True):
            return lambda: (str(year) in bot.ask(question).answer) == present

        for n in range(rounds):
            path = docs / f"bridge{n}.txt"
            path.write_text(f"The Zephyrine bridge opened in {1900 + n}.\n", encoding="utf-8")
            times["added"].append(until(says(1900 + n)))
            path.write_text(f"The Zephyrine bridge opened in {1950 + n}.\n", encoding="utf-8")
            times["changed"].append(until(says(1950 + n)))
            path.unlink()
            times["deleted"].append(until(says(1950 + n, present=False)))
        watcher.stop()
    for kind, values in times.items():
        print(f"{kind:8} median {statistics.median(values):.1f} s, slowest {max(values):.1f} s ({len(values)} rounds)")


if __name__ == "__main__":
    main()
