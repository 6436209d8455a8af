"""Stage 4, on a replica: answering from a store that other processes write. Several `rag serve`
processes on one Chroma server each keep their own BM25 index (bm25s; Chroma's own sparse index
exists only in Chroma Cloud). A follower polls the store record every RAG_STORE_POLL_SECONDS; when
another process has published a new version, it makes the new view (document list and BM25 index,
rag/retrieval.py View) in its own thread and swaps it in at once. Questions never wait for a
rebuild: until the swap they are answered from the previous view, whole. Retrieval cites only
chunks committed in the view it uses, so a document deleted in the new version is never cited once
the swap is made; before it, the deletion already removed its chunks from the server, so only a
passage fetched in the very moment of the deletion can still show it."""

from __future__ import annotations

import logging
import threading
from typing import Optional

from .errors import StoreError
from .retrieval import Retriever

log = logging.getLogger("rag.follow")


class StoreFollower:
    """The thread that keeps a retriever's view at the store's latest version."""

    def __init__(self, retriever: Retriever, every: float):
        self.retriever, self.every = retriever, every
        self.error: Optional[str] = None  # why the last check failed (a server away); None when it worked
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "StoreFollower":
        self.retriever.following = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="rag-follow")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.retriever.following = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> bool:
        """Swap in the store's latest version if it moved; True if a new view was swapped in."""
        try:
            swapped = self.retriever.sync_lexical()
        except StoreError as exc:  # the server is away: keep serving the view we have, check again
            if str(exc) != self.error:
                log.warning("cannot follow the store: %s", exc)
            self.error = str(exc)
            return False
        if self.error is not None:
            log.warning("following the store again at version %s", self.retriever.version)
        self.error = None
        if swapped:
            log.info("now answering from store version %s", self.retriever.version)
        return swapped

    def _run(self) -> None:
        while True:  # the first check at once: the first view is made now, not at the first question
            try:
                self.check()
            except Exception:  # noqa: BLE001 - an unexpected failure must not end following for good
                log.exception("following the store failed; trying again in %g s", self.every)
            if self._stop.wait(self.every):
                return
