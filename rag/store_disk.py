"""The on-disk store's folder (issue 12 item 6): a path that cannot be a store says so in one line;
a damaged Chroma file says so in one line and `rag index --rebuild` moves it aside; a store that
cannot be written still answers questions, from a temporary copy, and refuses indexing.

Chroma writes to its SQLite file even to open it (1.5.9 fails with "attempt to write a readonly
database" on a read-only folder), so a read-only store is copied to a temporary folder (Chroma's
files and the BM25 index) and opened there; the copy goes when the process ends."""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .errors import StoreBroken, StoreError, StoreReadOnly

log = logging.getLogger("rag")
_CLIENT_LOCK = threading.Lock()
# Messages of SQLite and Chroma that mean the files are damaged or not Chroma's, not a passing fault.
_DAMAGE = ("file is not a database", "malformed", "no such table", "no such column", "corrupt",
           "disk i/o error", "unable to open database")
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_READ_ONLY: dict[Path, str] = {}  # store folder -> why it cannot be written, for write_lock
_READ_ONLY_GUARD = threading.Lock()


def prepare(store_dir: Path) -> None:
    """The store folder exists (made if need be) and is a folder, or a StoreError says why not."""
    if store_dir.exists() and not store_dir.is_dir():
        raise StoreError(f"the store path {store_dir} is a file, not a folder; choose a folder with --store "
                         "or RAG_STORE_DIR (the file is left as it is)")
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store folder {store_dir} ({exc.strerror or exc}); choose another "
                         "with --store or RAG_STORE_DIR") from None


def unwritable(store_dir: Path) -> Optional[str]:
    """Why the store folder cannot be written (a read-only mount, no permission), or None. Tried by
    writing, since os.access says yes to root on a folder without write bits, where root can write."""
    probe = store_dir / f".write-test-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:  # read-only, no permission, no space: whatever stops a write
        return (exc.strerror or str(exc)).lower()
    chroma = store_dir / "chroma"
    if chroma.is_dir() and not os.access(chroma, os.W_OK):
        return f"its folder {chroma.name}/ is not writable"
    return None


def damaged(exc: BaseException) -> bool:
    return any(marker in str(exc).lower() for marker in _DAMAGE)


def broken(store_dir: Path, exc: BaseException) -> StoreBroken:
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return StoreBroken(f"the index in {store_dir} cannot be opened ({why}); rebuild it with `rag index "
                       "--rebuild`, which moves the damaged copy aside and indexes the documents again")


def open_client(store_dir: Path, chroma_settings: Any, reason: Optional[str]) -> tuple[Any, Path, Optional[str]]:
    """(Chroma client, folder holding the data, why it is read-only or None) for the store;
    reason: what unwritable() said."""
    if reason is None:
        try:
            return _persistent(store_dir / "chroma", chroma_settings), store_dir, None
        except Exception as exc:  # noqa: BLE001 - Chroma raises its own types, from Rust
            if "readonly" not in str(exc).lower().replace("read-only", "readonly"):
                raise broken(store_dir, exc) from None
            reason = "its database file is read-only"
    copy = _copy(store_dir)
    try:
        client = _persistent(copy / "chroma", chroma_settings)
    except Exception as exc:  # noqa: BLE001
        raise broken(store_dir, exc) from None
    with _READ_ONLY_GUARD:
        _READ_ONLY[store_dir.resolve()] = reason
    log.warning("the store %s cannot be written (%s): questions are answered from a copy of it; "
                "indexing is refused", store_dir, reason)
    return client, copy, reason


def _persistent(path: Path, chroma_settings: Any):
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    path.mkdir(parents=True, exist_ok=True)
    with _CLIENT_LOCK:  # chromadb's shared system per path breaks if two threads open it at once
        try:
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except Exception:
            # chromadb caches a system per path before starting it: a failed start would stay cached
            SharedSystemClient._identifier_to_system.pop(str(path), None)
            raise


def _copy(store_dir: Path) -> Path:
    """Chroma's files and the BM25 indexes copied to a temporary folder, removed at exit."""
    copy = Path(tempfile.mkdtemp(prefix="rag-readonly-store-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    try:
        for part in [store_dir / "chroma", *sorted(store_dir.glob("bm25_*"))]:
            if part.is_dir():
                shutil.copytree(part, copy / part.name)
    except OSError as exc:
        raise StoreError(f"the store {store_dir} cannot be written and cannot be copied to read it "
                         f"({exc.strerror or exc}); make it writable") from None
    return copy


def check_writable(store_dir: Path) -> None:
    """Before any write: a store opened read-only refuses, saying why."""
    reason = _READ_ONLY.get(store_dir.resolve())
    if reason is not None:
        raise read_only(store_dir, reason)


def read_only(store_dir: Path, reason: str) -> StoreReadOnly:
    return StoreReadOnly(f"the store {store_dir} cannot be written ({reason}): questions are answered from a "
                         "copy of it, but indexing needs write access; make it writable, or index into "
                         "another folder with --store")


def set_aside(store_dir: Path) -> Path:
    """Move a damaged Chroma folder to chroma.broken-<time> inside the store (the caller holds the
    write lock) and drop the BM25 indexes built from it; returns where it went."""
    target = store_dir / f"chroma.broken-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{target.name.split('~')[0]}~{n}")
    (store_dir / "chroma").rename(target)
    for bm25 in store_dir.glob("bm25_*"):
        shutil.rmtree(bm25, ignore_errors=True)
    return target
