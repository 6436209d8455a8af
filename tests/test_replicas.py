"""Several processes on one store (issue 15 item 3): the write lease that keeps indexers on different
machines apart, and replicas that follow the store, each new version swapped in whole. The fast
tests run in this process on an on-disk store; the slow one runs two `rag serve` replicas and
`rag index` processes against one `chroma run`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rag import RAG
from rag.citations import markers_in
from rag.errors import StoreError, StoreLocked
from rag.follow import StoreFollower
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import Store
from rag.store_lease import LEASE_ID, WriteLease, read_holder

from .conftest import ROOT, free_port, rag_cli
from .store_checks import assert_consistent, stop_process, subprocess_env, write_corpus
from .test_chroma_server import chroma_port  # noqa: F401 - the fixture: the suite's server, else our own

FERRY = "# The night ferry\n\nThe night ferry to Korsholm is called Aurora Borealis and it leaves at 23:40.\n"
FERRY_QUESTION = "What is the night ferry to Korsholm called?"


def holder_pattern(pid: int) -> str:
    """How a refusal names the lease's holder: this machine, that pid."""
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    return rf"{re.escape(socket.gethostname())} pid {pid} since {when} \(lease expires in \d+ s\)"


# ---- the lease -------------------------------------------------------------------------------

@pytest.fixture
def leases(tmp_path):
    """The lease collection of a store (on disk here: the lease itself is the same on a server)."""
    return Store(Settings(store_dir=tmp_path / "store")).leases


def _foreign(leases, expires_in: float, host: str = "elsewhere", pid: int = 4242):
    now = time.time()
    leases.upsert(ids=[LEASE_ID], embeddings=[[1.0]], metadatas=[
        {"host": host, "pid": pid, "token": "theirs", "since": now - 60, "expires": now + expires_in}])


def test_a_second_writer_is_refused_and_told_who_holds_the_lease(leases):
    first = WriteLease(leases, 30, "test")
    first.acquire()
    try:
        expected = rf"the index on test is being written by {holder_pattern(os.getpid())}; wait for that"
        with pytest.raises(StoreLocked, match=expected):
            WriteLease(leases, 30, "test").acquire()
        _foreign(leases, 20)  # as another machine's run that took it over
        with pytest.raises(StoreLocked, match=r"lost the write lease of the index on test to elsewhere pid 4242"):
            first.check()
    finally:
        first.release()
    assert read_holder(leases).token == "theirs"  # a release takes only its own lease away
    leases.delete(ids=[LEASE_ID])
    second = WriteLease(leases, 30, "test")
    second.acquire()
    second.release()
    assert read_holder(leases) is None


def test_an_expired_lease_is_taken_over_and_a_live_one_is_renewed(leases):
    _foreign(leases, -1)  # its holder died a while ago
    mine = WriteLease(leases, 1.5, "test")
    mine.acquire()
    try:
        time.sleep(2)  # longer than the lease lasts: renewed meanwhile
        with pytest.raises(StoreLocked, match=holder_pattern(os.getpid())):
            WriteLease(leases, 1.5, "test").acquire()
        mine.check()  # still this run's
    finally:
        mine.release()
    _foreign(leases, 30, host=socket.gethostname(), pid=os.getpid())  # a run of this process failed to release
    again = WriteLease(leases, 30, "test")
    again.acquire()
    again.release()


# ---- a replica following the store --------------------------------------------------------------

@pytest.fixture
def pair(seeded_store, tmp_path):
    """A writer and a replica on one store, the replica polling it every 0.1 s."""
    docs, store = tmp_path / "docs", tmp_path / "store"
    shutil.copytree(seeded_store.settings.docs_dir, docs)
    shutil.copytree(seeded_store.settings.store_dir, store)
    writer = RAG(seeded_store.settings, docs_dir=docs, store_dir=store)
    replica = RAG(seeded_store.settings, docs_dir=docs, store_dir=store, store_poll_seconds=0.1)
    replica.warm_up()
    follower = replica.follow_store()
    yield writer, replica
    follower.stop()


def _gate_follower(monkeypatch):
    """Hold the follower's rebuilds until the returned gate is set; `building` says one is waiting."""
    gate, building = threading.Event(), threading.Event()
    real = Retriever._make_view

    def slow(self, version, force):
        if threading.current_thread().name == "rag-follow":
            building.set()
            assert gate.wait(60)
        return real(self, version, force)

    monkeypatch.setattr(Retriever, "_make_view", slow)
    return gate, building


def _wait_version(bot: RAG, version: int):
    deadline = time.monotonic() + 20
    while bot.served_version() != version:
        assert time.monotonic() < deadline, f"still serving {bot.served_version()}, not {version}"
        time.sleep(0.05)


def test_a_replica_answers_from_the_old_version_whole_until_the_new_one_is_swapped_in(pair, monkeypatch):
    writer, replica = pair
    gate, building = _gate_follower(monkeypatch)
    before = replica.served_version()
    (writer.settings.docs_dir / "ferry.md").write_text(FERRY)
    assert writer.index().added == 1
    assert building.wait(20)  # the replica noticed the new version and is making its view
    with ThreadPoolExecutor(1) as pool:  # answered now, not after the rebuild
        sources = pool.submit(replica.retrieve, FERRY_QUESTION, 10).result(timeout=20)
    assert sources and "ferry.md" not in {s.doc_id for s in sources}
    assert replica.served_version() == before == replica.status()["index_version"]
    assert "ferry.md" not in {e.doc_id for e in replica.documents()}
    gate.set()
    _wait_version(replica, writer.store.version())
    answer = replica.ask(FERRY_QUESTION, generator="extractive")
    assert "ferry.md" in {s.doc_id for s in answer.sources if s.marker in markers_in(answer.answer)}
    assert "ferry.md" in {e.doc_id for e in replica.documents()}


def test_a_deleted_document_is_never_cited_by_a_replica_before_or_after_its_swap(pair, monkeypatch):
    writer, replica = pair
    (writer.settings.docs_dir / "ferry.md").write_text(FERRY)
    writer.index()
    _wait_version(replica, writer.store.version())
    assert replica.retrieve(FERRY_QUESTION)[0].doc_id == "ferry.md"
    gate, building = _gate_follower(monkeypatch)
    (writer.settings.docs_dir / "ferry.md").unlink()
    assert writer.index().removed == 1
    assert building.wait(20)
    # Its version still names the document, but its chunks are gone from the store: never shown.
    assert "ferry.md" in {e.doc_id for e in replica.documents()}
    assert "ferry.md" not in {s.doc_id for s in replica.retrieve(FERRY_QUESTION, top_k=20)}
    gate.set()
    _wait_version(replica, writer.store.version())
    for _ in range(3):
        answer = replica.ask(FERRY_QUESTION, generator="extractive")
        assert "ferry.md" not in {s.doc_id for s in answer.sources}
    assert "ferry.md" not in {e.doc_id for e in replica.documents()}
    assert_consistent(replica)


def test_a_rebuilt_store_is_a_new_version_to_its_replicas(pair):
    writer, replica = pair
    before = replica.served_version()
    writer.index(rebuild=True)  # the count goes on: version 1 of a new store would look like the old one's
    assert writer.store.version() > before
    _wait_version(replica, writer.store.version())
    assert_consistent(replica)


def test_a_follower_keeps_the_view_it_has_while_the_store_cannot_be_reached():
    class Unreachable:
        following, version = False, 3

        def sync_lexical(self):
            raise StoreError("cannot reach the Chroma server")

    follower = StoreFollower(Unreachable(), 60)  # type: ignore[arg-type]
    assert follower.check() is False and follower.error == "cannot reach the Chroma server"


# ---- for real: one `chroma run`, two `rag serve` replicas, `rag index` processes ----------------

class Replica:
    """A `python -m rag serve` process on a loopback port, asked through its HTTP API."""

    def __init__(self, store: Path, env: dict):
        self.port, self.log = free_port(), store.with_suffix(".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--port", str(self.port), "--store", str(store)],
            env=env, cwd=ROOT, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=30)

    def health(self) -> dict:
        try:
            return self.get("/health").json()
        except httpx.HTTPError:
            return {"status": "down"}

    def sources(self, question: str) -> tuple[set[str], set[str]]:
        """(documents of the sources, documents of the sources the answer cites)."""
        r = httpx.post(f"http://127.0.0.1:{self.port}/v1/chat/completions", timeout=60,
                       json={"messages": [{"role": "user", "content": question}]})
        assert r.status_code == 200, r.text
        body = r.json()
        cited = set(markers_in(body["choices"][0]["message"]["content"]))
        return {s["doc_id"] for s in body["sources"]}, {s["doc_id"] for s in body["sources"] if s["marker"] in cited}

    def stop(self):
        stop_process(self.proc, 20)


def _until(what: str, check, seconds: float, every: float = 0.2):
    """Wait for check() to be true (it returns the value then); fail naming what did not happen."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(every)


@pytest.mark.slow
def test_two_replicas_follow_what_a_third_process_indexes_on_one_chroma_server(chroma_port, tmp_path):  # noqa: F811
    collection = f"r{uuid.uuid4().hex[:12]}"  # the server may be shared by other tests
    docs = tmp_path / "docs"
    write_corpus(docs, 3)
    (docs / "ferry.md").write_text(FERRY)
    shared = {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma_port), "RAG_COLLECTION": collection,
              "RAG_DOCS_DIR": str(docs), "RAG_GENERATOR": "extractive", "RAG_WATCH": "false",
              "RAG_KEEP_CONVERSATIONS": "false"}
    here = RAG(docs_dir=docs, store_dir=tmp_path / "here", chroma_host="127.0.0.1", chroma_port=chroma_port,
               collection=collection, write_lease_seconds=5)
    replicas: list[Replica] = []
    try:
        # 1. An indexer holds the lease while the replicas start: both are refused at start (and
        # follow instead), and so is another `rag index`, each told who holds it.
        # Loaded first: this process indexes in step 4, and loading the model (an ONNX export on a
        # fresh machine) holds the GIL for seconds, long enough to starve the renewal of a 5 s lease.
        here.embedder.embed(["warm-up"])
        with here.store.write_lease():
            replicas = [Replica(tmp_path / f"replica{i}", subprocess_env(**shared)) for i in range(2)]
            other = rag_cli("index", env={**shared, "RAG_STORE_DIR": str(tmp_path / "other")})
            assert other.returncode == 1, other.stderr
            assert re.match(rf"error: the index on chroma server http://127.0.0.1:{chroma_port} \(collection "
                            rf"{collection}\) is being written by {holder_pattern(os.getpid())}", other.stderr)
            for r in replicas:
                _until("the replicas started", lambda r=r: r.health() == {"status": "ok", "version": 0,
                                                                      "indexing": False}, 180, 0.5)
                # its start-up run may come a moment after /health answers: wait for its refusal
                _until("the replica's start-up run was refused",
                       lambda r=r: "note: not indexing at start: the index on chroma server" in r.log.read_text(), 60)

        # 2. `rag index` in a third process adds the documents: both replicas answer from the new
        # one, citing it, within 10 s of the run's end.
        added = rag_cli("index", env={**shared, "RAG_STORE_DIR": str(tmp_path / "indexer")})
        assert added.returncode == 0, added.stderr
        done, version = time.monotonic(), here.store.version()
        for r in replicas:
            _until("a replica cites the new document", lambda r=r: "ferry.md" in r.sources(FERRY_QUESTION)[1],
                   10 - (time.monotonic() - done))
            assert r.health()["version"] == version

        # 3. Deleted: once a replica reports the version without it, never cited nor shown again.
        (docs / "ferry.md").unlink()
        removed = rag_cli("index", env={**shared, "RAG_STORE_DIR": str(tmp_path / "indexer")})
        assert removed.returncode == 0, removed.stderr
        version = here.store.version()
        for r in replicas:
            _until("a replica reports the new version", lambda r=r: r.health()["version"] == version, 10)
            for _ in range(3):
                assert "ferry.md" not in r.sources(FERRY_QUESTION)[0]

        # 4. An indexer killed while it holds the lease: refused while the lease lasts, then taken over.
        write_corpus(docs / "batch", 40, tag="b")
        killed = subprocess.Popen([sys.executable, "-m", "rag", "index"], cwd=ROOT, env=subprocess_env(
            **shared, RAG_STORE_DIR=str(tmp_path / "killed"), RAG_WRITE_LEASE_SECONDS="6"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until("the indexer holds the lease", lambda: _held_by(here, killed), 120, 0.02)
        killed.kill()
        killed.wait()
        with pytest.raises(StoreLocked, match=holder_pattern(killed.pid)):
            here.index()
        _until("the lease expires", lambda: here.store.lease_holder() is None, 10)
        here.index()  # finishes what the killed run left: it had added chunks, perhaps committed some
        assert len(here.documents()) == 43 and here.store.lease_holder() is None
        assert_consistent(here)
        version = here.store.version()
        for r in replicas:
            _until("a replica follows the run that took over", lambda r=r: r.health()["version"] == version, 10)
    finally:
        for r in replicas:
            r.stop()


def _held_by(bot: RAG, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, "the indexer finished before it was seen holding the lease"
    holder = bot.store.lease_holder()
    return holder is not None and holder.pid == proc.pid


def test_health_says_which_version_is_answered_from_and_when_the_store_is_away():
    from ui import status

    class Job:
        running = False

    class Bot:
        follower, version = None, 7

        def served_version(self):
            return self.version

    bot = Bot()
    assert status.health(bot, Job()) == (200, {"status": "ok", "version": 7, "indexing": False})  # type: ignore[arg-type]
    bot.version = None  # a replica whose first view is not made yet
    assert status.health(bot, Job())[0] == 503  # type: ignore[arg-type]
    bot.version, bot.follower = 7, type("Follower", (), {"error": "cannot reach the Chroma server"})
    assert status.health(bot, Job()) == (503, {"status": "store unreachable", "version": None,  # type: ignore[arg-type]
                                               "indexing": False})
