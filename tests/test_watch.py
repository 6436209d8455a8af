"""The folder that indexes itself (rag/watch.py): a real store, a real watcher thread, real files
written, rewritten, deleted and copied in slowly; answers follow within the 10 s the issue asks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag import RAG, Change, FolderWatcher
from rag.models import IndexReport

from . import test_ui_browser as ui_browser
from .conftest import ROOT, SEEDS

# The browser test uses tests/test_ui_browser.py's fixtures: a server (of this module's own) and chromium.
app, browser, page = ui_browser.app, ui_browser.browser, ui_browser.page

DEADLINE = 10.0  # seconds from a write to the answer that reflects it
SEED = "000_50d618d39dec71f2.txt"


def wait_for(check, what: str, deadline: float = DEADLINE) -> float:
    """Poll check() until it is true; the seconds it took (the test fails past the deadline)."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < deadline, f"not within {deadline:g} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - t0


class Recorder:
    """The watcher's on_change: index, and keep what each run was given and reported."""

    def __init__(self, bot: RAG):
        self.bot = bot
        self.runs: list[tuple[list[Change], IndexReport]] = []
        self.lock = threading.Lock()

    def __call__(self, changes: list[Change]) -> bool:
        report = self.bot.index()
        with self.lock:
            self.runs.append((changes, report))
        return True

    def runs_touching(self, path: str) -> list[tuple[list[Change], IndexReport]]:
        with self.lock:
            return [(c, r) for c, r in self.runs if any(x.path == path for x in c)]


@pytest.fixture
def watched(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED).write_bytes((SEEDS / SEED).read_bytes())
    bot = RAG(docs_dir=docs, store_dir=tmp_path / "store", generator="extractive")
    bot.index()
    recorder = Recorder(bot)
    watcher = FolderWatcher(docs, recorder, ignore=[bot.settings.store_dir]).start()
    assert watcher.ready.wait(10), "the watcher did not start"
    yield bot, docs, recorder
    watcher.stop()
    assert not watcher.running


def _cites(bot: RAG, question: str, doc_id: str, words: str) -> bool:
    answer = bot.ask(question)
    return answer.answered and words in answer.answer and any(s.doc_id == doc_id for s in answer.sources)


@pytest.mark.slow
def test_a_written_then_changed_then_deleted_file_is_reflected_in_answers(watched):
    bot, docs, recorder = watched
    question = "When did the Zephyrine bridge open?"
    path = docs / "bridge.txt"
    path.write_text("Zephyrine bridge\n\nThe Zephyrine bridge over the Varna river opened in 1931.\n",
                    encoding="utf-8")
    added = wait_for(lambda: _cites(bot, question, "bridge.txt", "1931"), "the new file answers")

    path.write_text("Zephyrine bridge\n\nThe Zephyrine bridge over the Varna river opened in 1947.\n",
                    encoding="utf-8")
    changed = wait_for(lambda: _cites(bot, question, "bridge.txt", "1947"), "the edit changes the answer")
    assert "1931" not in " ".join(s.text for s in bot.retrieve(question, top_k=10))

    path.unlink()
    deleted = wait_for(lambda: all(s.doc_id != "bridge.txt" for s in bot.retrieve(question, top_k=10)),
                       "the deleted file no longer answers")
    assert "1947" not in bot.ask(question).answer
    kinds = [sorted(c.kind for c in changes) for changes, _ in recorder.runs_touching("bridge.txt")]
    assert kinds == [["added"], ["modified"], ["deleted"]]
    reports = [r for _, r in recorder.runs_touching("bridge.txt")]
    assert [(r.added, r.updated, r.removed) for r in reports] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    print(f"\nwatch latency, write to answer: added {added:.1f} s, changed {changed:.1f} s, deleted {deleted:.1f} s")


@pytest.mark.slow
def test_a_file_written_slowly_is_indexed_once_with_all_its_content(watched):
    bot, docs, recorder = watched
    pieces = [f"Part {n}: the Quillmoor archive holds {n * 100} letters from the harbour masters.\n"
              for n in range(1, 7)]
    with open(docs / "slow.txt", "w", encoding="utf-8") as f:  # a copy in progress: pauses under the quiet time
        f.write("Quillmoor archive\n\n")
        for piece in pieces:
            f.flush()
            os.fsync(f.fileno())
            time.sleep(0.4)
            f.write(piece)
    wait_for(lambda: recorder.runs_touching("slow.txt"), "the finished file is indexed")
    time.sleep(2.5)  # time enough for a second run, were the file taken in twice
    runs = recorder.runs_touching("slow.txt")
    assert len(runs) == 1 and (runs[0][1].added, runs[0][1].updated) == (1, 0)
    text = " ".join(s.text for s in bot.retrieve("Quillmoor archive letters harbour masters", top_k=10))
    assert "600 letters" in text and "100 letters" in text  # the last piece and the first, in one version


def test_only_document_files_in_the_folder_are_watched(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    store = docs / "index_store"
    store.mkdir()
    w = FolderWatcher(docs, lambda changes: True, ignore=[store])
    root = str(docs.resolve())
    wanted = {name: w._wanted(None, os.path.join(root, name)) for name in (
        "a.txt", "b.PDF", "sub/c.md", ".d.txt.part", ".git/config", "sub/.hidden.txt", "notes.tmp", "e.txt~",
        "index_store/chroma.sqlite3", "sub", "gone-folder")}
    assert wanted == {"a.txt": True, "b.PDF": True, "sub/c.md": True, ".d.txt.part": False, ".git/config": False,
                      "sub/.hidden.txt": False, "notes.tmp": False, "e.txt~": False,
                      "index_store/chroma.sqlite3": False, "sub": True, "gone-folder": True}
    assert w._wanted(None, str(tmp_path / "elsewhere.txt")) is False


def test_changes_are_merged_until_a_run_takes_them():
    w = FolderWatcher(Path("."), lambda changes: False)
    root = str(w.root)
    w._note("added", os.path.join(root, "a.txt"), 1.0)
    w._note("modified", os.path.join(root, "a.txt"), 1.1)  # still new
    w._note("deleted", os.path.join(root, "b.txt"), 1.2)
    w._note("added", os.path.join(root, "b.txt"), 1.3)  # an editor's save: changed, not new
    w._note("added", os.path.join(root, "c.txt"), 1.4)
    w._note("deleted", os.path.join(root, "c.txt"), 1.5)  # came and went
    assert w.pending == {"a.txt": "added", "b.txt": "modified"}
    w._offer()  # on_change says it cannot run now: the changes wait for the next check
    assert w.pending == {"a.txt": "added", "b.txt": "modified"}


@pytest.mark.slow
def test_ui_job_indexes_folder_changes_and_the_top_line_says_what_changed(tmp_path):
    from ui import status
    from ui.documents import Documents
    from ui.jobs import IndexJob

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED).write_bytes((SEEDS / SEED).read_bytes())
    bot = RAG(docs_dir=docs, store_dir=tmp_path / "store", generator="extractive")
    bot.index()
    job = IndexJob(bot)
    watcher = job.watch()
    try:
        assert watcher.ready.wait(10)
        seen = job.finished
        (docs / "ferry.txt").write_text("Ferry timetable\n\nThe Ostrava ferry leaves at 7:15 every morning.\n",
                                        encoding="utf-8")
        wait_for(lambda: job.last_change is not None, "the job takes in the new file")
        assert "ferry.txt added (1 added)" in status.top_status(bot, job)
        # an open page's timer tick shows the new document in the Documents tab
        tick = Documents(bot, job).refresh(seen)
        assert "ferry.txt" in tick[1] and "ferry.txt added" in tick[4] and tick[5] == job.finished > seen
    finally:
        watcher.stop()


@pytest.mark.slow
def test_rag_index_watch_prints_each_change_until_interrupted(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED).write_bytes((SEEDS / SEED).read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "rag", "index", "--watch", "--json", "--docs", str(docs),
                             "--store", str(tmp_path / "store")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # A suite started in the background (`cmd &` without job control) ignores
                            # SIGINT, and children inherit that: Ctrl+C is what this test is about.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()  # the first run's report
        assert '"added": 1' in first
        time.sleep(1.0)  # the watcher starts after the report is printed
        (docs / "note.md").write_text("# Note\n\nThe Kestrel lighthouse was painted red in 2019.\n", encoding="utf-8")
        line = proc.stdout.readline()
        assert '"path": "note.md"' in line and '"change": "added"' in line and '"added": 1' in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "watching" in err



@pytest.mark.slow
def test_a_watched_change_shows_in_an_open_page_without_a_reload(page, app):
    watcher = app.job.watch()
    try:
        assert watcher.ready.wait(10)
        ui_browser.open_tab(page, "documents")
        page.wait_for_function("document.querySelector('#docs-table').innerText.includes('5 documents')")
        (app.docs / "tide.txt").write_text("Tide tables for Brest\n\nHigh tide at Brest is at 06:42 on Monday.\n",
                                           encoding="utf-8")
        page.wait_for_function("document.querySelector('#top-status').innerText.includes('folder change')",
                               timeout=15_000)
        assert "tide.txt added (1 added)" in page.locator("#top-status").inner_text()
        page.wait_for_function("document.querySelector('#docs-table').innerText.includes('Tide tables for Brest')",
                               timeout=5_000)
        assert "6 documents" in page.locator("#docs-table").inner_text()
    finally:
        watcher.stop()
        (app.docs / "tide.txt").unlink(missing_ok=True)
