"""Scale-out: everything against a real `chroma run` server, and what happens when it goes away."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from rag import RAG
from rag.citations import markers_in
from rag.store import StoreError

from .conftest import rag_cli
from .store_checks import SUITE_CHROMA_PORT, ChromaServer, assert_consistent

QUESTION = "What remains a critical barrier to China's AI self-sufficiency?"


@pytest.fixture(scope="session")
def chroma_port(tmp_path_factory):
    """The suite's server (scripts/test.sh) when there is one, else one of our own."""
    if SUITE_CHROMA_PORT:
        yield int(SUITE_CHROMA_PORT)
        return
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server")).start()
    yield server.port
    server.stop()


def server_bot(docs, store_dir, port, collection):
    return RAG(docs_dir=docs, store_dir=store_dir, chroma_host="127.0.0.1", chroma_port=port,
               collection=collection)


@pytest.mark.slow
def test_index_ask_reindex_round_trip_on_a_server(chroma_port, docs_dir, tmp_path):
    collection = f"t{uuid.uuid4().hex[:12]}"  # the server may be shared by other tests
    bot = server_bot(docs_dir, tmp_path / "store", chroma_port, collection)
    first = bot.index()
    assert first.added == 5 and first.chunks > 5
    assert not (tmp_path / "store" / "chroma").exists()  # vectors live on the server only
    assert f"chroma server http://127.0.0.1:{chroma_port}" in bot.status()["store"]
    a = bot.ask(QUESTION, generator="extractive")
    assert a.answered and markers_in(a.answer) and set(markers_in(a.answer)) <= {s.marker for s in a.sources}

    (docs_dir / "new.md").write_text("# Quantum\n\nThe Hefei lab built a quantum computer called Zuchongzhi.")
    changed = docs_dir / "000_50d618d39dec71f2.txt"
    changed.write_text(changed.read_text() + "\nA new closing line about Moore Threads GPUs.")
    (docs_dir / "004_37bcc427096d2522.txt").unlink()
    r = bot.index()
    assert (r.added, r.updated, r.removed, r.unchanged) == (1, 1, 1, 3)
    assert bot.retrieve("Zuchongzhi quantum computer")[0].doc_id == "new.md"
    assert_consistent(bot)

    # Another machine: same server, its own local folder (BM25 is rebuilt from the server).
    r = rag_cli("ask", "Which lab built the Zuchongzhi quantum computer?", "--json", "--generator", "extractive",
                env={"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma_port), "RAG_COLLECTION": collection,
                     "RAG_DOCS_DIR": str(docs_dir), "RAG_STORE_DIR": str(tmp_path / "elsewhere")})
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["answered"] and answer["sources"][0]["doc_id"] == "new.md"
    assert not (tmp_path / "elsewhere" / "chroma").exists()


@pytest.mark.slow
def test_server_going_away_gives_a_clear_error_and_the_same_object_recovers(docs_dir, tmp_path):
    server = ChromaServer(tmp_path / "server-data").start()
    try:
        bot = RAG(docs_dir=docs_dir, store_dir=tmp_path / "store", chroma_host="127.0.0.1",
                  chroma_port=server.port, chroma_timeout=2)
        bot.index()
        assert bot.ask(QUESTION, generator="extractive").answered

        server.proc.send_signal(signal.SIGSTOP)  # hangs: no answer, no refusal
        t0 = time.perf_counter()
        with pytest.raises(StoreError, match=r"no answer within 2 s, CHROMA_TIMEOUT"):
            bot.ask(QUESTION, generator="extractive")
        assert time.perf_counter() - t0 < 2 * 2 + 3
        server.proc.send_signal(signal.SIGCONT)
        assert bot.ask(QUESTION, generator="extractive").answered

        server.stop()
        for call in (lambda: bot.ask(QUESTION, generator="extractive"), bot.status, bot.index,
                     lambda: bot.retrieve(QUESTION)):
            unreachable = rf"cannot reach the Chroma server at 127.0.0.1:{server.port}.*chroma run"
            with pytest.raises(StoreError, match=unreachable):
                call()
        env = {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(server.port),
               "RAG_DOCS_DIR": str(docs_dir), "RAG_STORE_DIR": str(tmp_path / "store")}
        for args in (("ask", QUESTION), ("status",)):
            r = rag_cli(*args, env=env)
            assert r.returncode == 1 and r.stderr.startswith("error: cannot reach the Chroma server"), r.stderr
            assert "Traceback" not in r.stderr

        server.start()  # back, with its data: the same object answers again, no restart
        a = bot.ask(QUESTION, generator="extractive")
        assert a.answered and markers_in(a.answer)
        assert bot.index().unchanged == 5  # the write lock was released by the failed run
        assert_consistent(bot)

        server.stop()
        server.path = tmp_path / "server-data-empty"
        server.start()  # back, but empty (a new server): the collections are created again
        a = bot.ask(QUESTION, generator="extractive")  # an empty store is indexed first
        assert a.answered and len(bot.documents()) == 5
        assert_consistent(bot)
    finally:
        server.stop()


@pytest.mark.slow
def test_ui_on_a_server_reindexes_and_survives_the_server_going_away(docs_dir, tmp_path, monkeypatch):
    from gradio_client import Client

    from ui.app import launch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server = ChromaServer(tmp_path / "server-data").start()
    demo = None
    try:
        bot = server_bot(docs_dir, tmp_path / "store", server.port, "rag")
        demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)  # indexes at start
        while job.running:
            time.sleep(0.1)
        assert job.error is None and len(bot.documents()) == 5
        client = Client(url, verbose=False)
        assert client.predict(QUESTION, 0, "extractive", [], api_name="/ask")["answered"]

        # re-index as the UI's button does, then ask about the new document
        (docs_dir / "new.md").write_text("# Quantum\n\nThe Hefei lab built a quantum computer called Zuchongzhi.")
        assert job.start("Re-indexing", lambda progress: bot.index(progress=progress))
        while job.running:
            time.sleep(0.1)
        assert job.error is None and job.result.added == 1
        final = client.predict("Which lab built the Zuchongzhi quantum computer?", 0, "extractive", [], api_name="/ask")
        assert final["answered"] and final["sources"][0]["doc_id"] == "new.md"

        server.stop()
        with pytest.raises(Exception, match="cannot reach the Chroma server") as failed:
            client.predict(QUESTION, 0, "extractive", [], api_name="/ask")
        assert "Traceback" not in str(failed.value)
        server.start()  # back: the same UI answers without a restart
        assert client.predict(QUESTION, 0, "extractive", [], api_name="/ask")["answered"]
        assert_consistent(bot)
    finally:
        if demo is not None:
            demo.close()
        server.stop()
