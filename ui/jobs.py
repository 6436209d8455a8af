"""One indexing run at a time (first index, re-index, upload, delete), in a background thread so
the page stays live; handlers poll its progress."""

import logging
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional

from rag import RAG, FolderWatcher, IndexReport, describe_changes

from . import render

log = logging.getLogger("rag.ui")


class Run:
    """One indexing run: its result or error once `done` is set. Another run (the folder watcher's)
    may follow it at once, so whoever started a run reads its outcome here, not from the job."""

    def __init__(self, label: str):
        self.label = label
        self.result: Any = None
        self.error: Optional[Exception] = None
        self.done = threading.Event()


class IndexJob:
    """The indexing run under way, if any: its label, progress, and result or error once done."""

    def __init__(self, bot: RAG):
        self.bot = bot
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.label, self.stage, self.done, self.total = "", "", 0, 0
        self.result = None
        self.error: Optional[Exception] = None
        self._echo: Optional[Callable] = None
        self.finished = 0  # runs completed: a page that has shown fewer refreshes its lists
        self.last_change: Optional[tuple[float, str, IndexReport]] = None  # (when, what, report): the watcher's
        self.watcher: Optional[FolderWatcher] = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, label: str, task: Callable, echo: bool = False) -> Optional[Run]:
        """Run task(progress) unless a run is under way (then None: wait and try again)."""
        with self._lock:
            if self.running:
                return None
            self.label, self.stage, self.done, self.total = label, "", 0, 0
            self.result, self.error = None, None
            self._echo = _console_progress(label) if echo else None
            run = Run(label)
            self._thread = threading.Thread(target=self._run, args=(task, run), daemon=True, name="rag-index")
            self._thread.start()
            return run

    def _run(self, task: Callable, run: Run):
        try:
            self.result = run.result = task(self._progress)
        except Exception as exc:  # shown to the user; the thread must not die silently
            log.exception("indexing failed")
            self.error = run.error = exc
        finally:
            self.finished += 1
            run.done.set()

    def watch(self, echo: bool = False) -> FolderWatcher:
        """Index again, as this job's runs, whenever files in the documents folder change (RAG_WATCH).
        A change that arrives while a run is under way waits for it."""
        s = self.bot.settings
        self.watcher = FolderWatcher(s.docs_dir, lambda changes: self._folder_changed(changes, echo),
                                     ignore=[s.store_dir]).start()
        return self.watcher

    def _folder_changed(self, changes, echo: bool) -> bool:
        what = describe_changes(changes)

        def task(progress):
            report = self.bot.index(progress=progress)
            if report.added or report.updated or report.removed:  # not an upload this process indexed already
                self.last_change = (time.time(), what, report)
                if echo:
                    print(f"folder changed ({what}): {report.added} added, {report.updated} updated, "
                          f"{report.removed} removed", file=sys.stderr, flush=True)
            return report

        return self.start(f"Folder changed: {what}", task) is not None

    def _progress(self, stage: str, done: int, total: int):
        self.stage, self.done, self.total = stage, done, total
        if self._echo:
            self._echo(stage, done, total)

    def progress_html(self) -> str:
        return render.progress_html(self.label, self.stage, self.done, self.total)

    def follow(self, every: float = 0.3) -> Iterator[str]:
        """Progress HTML while a run is under way."""
        while self.running:
            yield self.progress_html()
            time.sleep(every)


def _console_progress(label: str) -> Callable:
    """A progress callback that prints to the console: one updating line on a terminal, else a
    line per change (at most two a second)."""
    tty = sys.stderr.isatty()
    last: dict[str, Any] = {"t": 0.0, "line": ""}

    def report(stage: str, done: int, total: int):
        line = f"{label}: {render.progress_text(stage, done, total)}"
        now = time.monotonic()
        if line == last["line"] or (now - last["t"] < 0.5 and done < total):
            return
        last.update(t=now, line=line)
        print(("\r" if tty else "") + line + ("\033[K" if tty else ""), end="" if tty else "\n",
              file=sys.stderr, flush=True)

    return report
