"""Stage 3b: one writer at a time on a Chroma server. The file lock of rag/store.py keeps two
writers on one machine apart; writers on different machines share only the server, so an indexing
run also holds a lease kept there: one record (collection `<name>_lease`) naming its holder (host,
pid, a random token, since when) and when it expires, renewed by a thread while the run lasts. A
second writer is refused and told who holds it. A holder that died stops renewing; once its lease
expires the next writer takes it over (and its run finishes what the dead one left, rag/indexer.py).

Chroma has no compare-and-swap, so taking the lease is: see it free (absent, expired or a leftover
of this process), write ours, wait _SETTLE seconds, read it back. Of two writers that both saw it
free, the later write wins and the earlier one reads the other's token and gives way. What remains:
a writer whose write lands more than _SETTLE after the other's read-back (its request stalled that
long) believes it holds the lease too. So a run checks the lease again before each commit (`check`)
and stops once it is another's: such a pair overlaps until the next commit at most, and each
document's commit is whole either way. Expiry compares wall clocks: machines whose clocks disagree
see a lease expire early or late by as much (keep them in sync, as NTP does)."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from .errors import StoreLocked

log = logging.getLogger("rag.store")

LEASE_ID = "lease"
_SETTLE = 0.3  # seconds between writing the lease and reading it back
_HELD: set[str] = set()  # tokens of the leases this process holds now
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str
    since: float
    expires: float

    def describe(self, now: Optional[float] = None) -> str:
        """"host pid 42 since 2025-01-31 14:02:07 (lease expires in 25 s)"."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        left = max(0, math.ceil(self.expires - (time.time() if now is None else now)))
        return f"{self.host} pid {self.pid} since {since} (lease expires in {left} s)"

    def leftover(self) -> bool:
        """A lease of this process that no run of it holds now: one a failed run could not release."""
        with _HELD_GUARD:
            return self.host == socket.gethostname() and self.pid == os.getpid() and self.token not in _HELD


def read_holder(records: Any) -> Optional[Holder]:
    """The lease as the store holds it now (None: nobody's)."""
    got = records.get(ids=[LEASE_ID], include=["metadatas"])
    if not got["ids"]:
        return None
    m = got["metadatas"][0]
    return Holder(str(m["host"]), int(m["pid"]), str(m["token"]), float(m["since"]), float(m["expires"]))


class WriteLease:
    """The lease of one indexing run: acquire, check before each commit, release at the end."""

    def __init__(self, records: Any, seconds: float, where: str):
        """records: the lease collection (store._Collection); where: the store, as messages name it."""
        self._records, self.seconds, self.where = records, seconds, where
        self.token = uuid.uuid4().hex
        self.since = 0.0
        self.lost: Optional[Holder] = None  # who took the lease over, once it was lost
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self) -> None:
        """Take the lease or raise StoreLocked naming its holder."""
        now = time.time()
        held = read_holder(self._records)
        if held is not None and held.expires > now and not held.leftover():
            raise self._refused(held)
        self.since = now
        self._write()
        time.sleep(_SETTLE)  # a writer that saw the lease free at the same moment writes in this time
        held = read_holder(self._records)
        if held is None or held.token != self.token:
            raise self._refused(held)
        with _HELD_GUARD:
            _HELD.add(self.token)
        self._thread = threading.Thread(target=self._keep, daemon=True, name="rag-lease")
        self._thread.start()

    def check(self) -> None:
        """Before a commit: renew the lease, or raise StoreLocked when another writer has taken it
        over (this run stopped renewing it for longer than it lasts, a pause or a lost server)."""
        self.renew()
        if self.lost is not None:
            raise StoreLocked(
                f"this indexing run lost the write lease of the index on {self.where} to {self.lost.describe()}; "
                "it stopped before its next commit: run it again once that one has finished")

    def renew(self) -> None:
        if self.lost is not None:
            return
        held = read_holder(self._records)
        if held is not None and held.token != self.token:
            self.lost = held
            return
        self._write()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with _HELD_GUARD:
            _HELD.discard(self.token)
        try:
            held = read_holder(self._records)
            if held is not None and held.token == self.token:
                self._records.delete(ids=[LEASE_ID])
        except Exception as exc:  # noqa: BLE001 - the server went away: the lease expires by itself
            log.warning("the write lease could not be released (%s); it expires within %g s", exc, self.seconds)

    def _keep(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - tried again next beat; check() reports a lease lost meanwhile
                log.warning("the write lease could not be renewed: %s", exc)
            if self.lost is not None:
                return

    def _write(self) -> None:
        meta = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token, "since": self.since,
                "expires": time.time() + self.seconds}
        self._records.upsert(ids=[LEASE_ID], embeddings=[[1.0]], metadatas=[meta])

    def _refused(self, held: Optional[Holder]) -> StoreLocked:
        who = held.describe() if held is not None else "another process"
        return StoreLocked(
            f"the index on {self.where} is being written by {who}; wait for that indexing run to finish and try "
            "again (a holder that stopped frees the lease when it expires, RAG_WRITE_LEASE_SECONDS)")
