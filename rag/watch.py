"""A documents folder that indexes itself: changes are noticed (watchfiles: inotify, FSEvents or
polling), and once the folder has been quiet for a moment and every changed file has stopped
growing, one indexing run takes them all in. The run is the ordinary incremental, crash-safe
one (rag/indexer.py), so a burst of saves, a copy in progress or an editor's temporary files cost
one run, and a file is indexed once, complete.

    watcher = FolderWatcher(docs_dir, on_change)      # on_change(changes) -> bool: run started?
    watcher.start()  ...  watcher.stop()              # in a thread (rag serve)
    watcher.run()                                     # or in this one until stop() (rag index --watch)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

log = logging.getLogger("rag.watch")

QUIET_SECONDS = 1.5  # no change for this long before a run starts: a burst of saves is one run
CHECK_SECONDS = 0.5  # how often sizes are compared: a file is stable when two checks agree


@dataclass(frozen=True)
class Change:
    kind: str  # "added", "modified" or "deleted"
    path: str  # relative to the documents folder, with forward slashes


def describe(changes: Iterable[Change], limit: int = 5) -> str:
    """"a.txt added, notes/b.md modified and 3 more": what changed, for a log line or the UI."""
    changes = sorted(set(changes), key=lambda c: c.path)
    text = ", ".join(f"{c.path} {c.kind}" for c in changes[:limit])
    more = len(changes) - limit
    return text + (f" and {more} more" if more > 0 else "")


class FolderWatcher:
    """Calls on_change(changes) when files in docs_dir changed and have settled. on_change returns
    False when it cannot run now (an indexing run is under way): the changes are offered again at
    the next check. Hidden files and folders (".x.part", ".git") and files of types that are not
    indexed are not watched; nor is `ignore` (the index folder, should it lie inside docs_dir)."""

    def __init__(self, docs_dir: Path, on_change: Callable[[list[Change]], bool], quiet: float = QUIET_SECONDS,
                 check_every: float = CHECK_SECONDS, ignore: Iterable[Path] = (),
                 suffixes: Optional[Callable[[], Iterable[str]]] = None):
        self.docs_dir = Path(docs_dir)
        self.root = self.docs_dir.resolve()
        self.on_change = on_change
        self.quiet, self.check_every = quiet, check_every
        self.ignore = [Path(p).resolve() for p in ignore]
        self._suffixes = suffixes or _supported_suffixes
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.ready = threading.Event()  # set once the folder is being watched
        self.pending: dict[str, str] = {}  # path -> kind, waiting to settle
        self._last_event = 0.0
        self._sizes: dict[str, tuple[int, int]] = {}

    # ---- running ----------------------------------------------------------------------------
    def start(self) -> "FolderWatcher":
        self._thread = threading.Thread(target=self.run, name="rag-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Watch until stop(); at each batch of events, or each check_every without one, the
        changes seen so far start a run once the folder is quiet and their files are stable."""
        from watchfiles import watch

        batches = watch(self.root, watch_filter=self._wanted, stop_event=self._stop,
                        rust_timeout=int(self.check_every * 1000), yield_on_timeout=True,
                        debounce=int(self.quiet * 1000), raise_interrupt=False)
        for batch in batches:
            self.ready.set()  # the first batch comes once the folder is being watched
            now = time.monotonic()
            for kind, path in batch:
                self._note(kind.name, path, now)
            if self.pending and self._settled() and now - self._last_event >= self.quiet:
                self._offer()

    # ---- changes ----------------------------------------------------------------------------
    def _wanted(self, _kind, path: str) -> bool:
        rel = Path(self._relative(path))
        if rel == Path(".") or rel.is_absolute() or any(part.startswith(".") for part in rel.parts):
            return False
        p = self.root / rel
        if any(p == i or p.is_relative_to(i) for i in self.ignore):
            return False
        if p.is_dir():
            return True  # a folder moved in brings files that no event names one by one
        suffix = p.suffix.lower()
        return suffix in set(self._suffixes()) or (not suffix and not p.exists())  # maybe a deleted folder

    def _note(self, kind: str, path: str, now: float) -> None:
        rel = self._relative(path)
        before = self.pending.get(rel)
        kind = kind if kind in ("added", "deleted") else "modified"
        if before == "added" and kind == "modified":
            kind = "added"  # written after it appeared: still new
        elif before == "deleted" and kind == "added":
            kind = "modified"  # an editor's save: a new file renamed over the old one
        elif before == "added" and kind == "deleted":
            self.pending.pop(rel)  # came and went before anyone saw it: nothing to say
            self._last_event = now
            return
        self.pending[rel] = kind
        self._last_event = now

    def _relative(self, path: str) -> str:
        try:
            return Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return os.path.abspath(path)  # not under the folder (absolute): never wanted

    def _settled(self) -> bool:
        """Every changed file that exists has the same size and mtime as at the previous check
        (a copy that pauses longer than the quiet period is still caught growing)."""
        sizes = {}
        for rel in self.pending:
            try:
                st = (self.root / rel).stat()
            except OSError:
                continue  # gone: nothing to wait for
            sizes[rel] = (st.st_size, st.st_mtime_ns)
        settled = sizes == self._sizes
        self._sizes = sizes
        return settled

    def _offer(self) -> None:
        changes = [Change(kind, path) for path, kind in sorted(self.pending.items())]
        try:
            started = self.on_change(changes)
        except Exception:  # noqa: BLE001 - one failed run must not end the watching
            log.exception("indexing after a folder change failed")
            started = True
        if started is not False:
            self.pending.clear()
            self._sizes = {}


def _supported_suffixes() -> Iterable[str]:
    from . import documents

    return documents.SUPPORTED_SUFFIXES
