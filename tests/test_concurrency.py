"""Many questions at once and questions during a re-index, against the real store. (Two writer
processes: tests/test_robustness.py, with the killed indexer.)"""

from __future__ import annotations

import json
import shutil
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag import RAG
from rag.chunks import Chunker
from rag.citations import markers_in
from rag.documents import load_document

from .conftest import SHARED_EVAL, rag_cli
from .store_checks import assert_consistent

QUESTIONS = [json.loads(line)["question"] for line in (SHARED_EVAL / "seedqa-sample.jsonl").read_text().splitlines()
             if line.strip()]
QUESTIONS += [
    "Which companies met Xi Jinping?",
    "What did the government say about semiconductors?",
    "Who trains Chinese large language models?",
    "Which universities produce AI specialists?",
]


def test_twenty_questions_at_once_all_get_their_answers(seeded_store, tmp_path):
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(20)]
    one_at_a_time = {q: seeded_store.ask(q, generator="extractive").answer for q in set(questions)}
    store = tmp_path / "store"
    shutil.copytree(seeded_store.settings.store_dir, store)
    bot = RAG(seeded_store.settings, store_dir=store)  # first use happens under load
    bot.store.publish()  # as after a re-index elsewhere: the first questions all find BM25 stale
    lexical = bot.retriever.lexical
    builds, real_build = [], lexical.build
    lexical.build = lambda *a: builds.append(1) or real_build(*a)
    start = threading.Barrier(20)

    def ask(q):
        start.wait()
        return bot.ask(q, generator="extractive")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, questions))
    for q, a in zip(questions, answers):
        assert a.question == q
        assert a.answer == one_at_a_time[q]  # the same answer as when asked alone
        assert set(markers_in(a.answer)) <= {s.marker for s in a.sources}
    assert lexical.version == bot.store.version() and len(builds) == 1  # rebuilt once, not 20 times


def test_bm25_rebuilt_by_many_at_once_stays_whole(seeded_store, tmp_path):
    """Several processes' worth of readers rebuilding the saved BM25 index at the same moment."""
    store = tmp_path / "store"
    shutil.copytree(seeded_store.settings.store_dir, store)
    bots = [RAG(seeded_store.settings, store_dir=store) for _ in range(3)]
    start = threading.Barrier(9)

    def rebuild(bot):
        start.wait()
        for _ in range(3):
            bot.retriever.sync_lexical(force=True)

    with ThreadPoolExecutor(9) as pool:
        list(pool.map(rebuild, [b for b in bots for _ in range(3)]))
    fresh = RAG(seeded_store.settings, store_dir=store)
    assert fresh.retriever.lexical.load() and fresh.retriever.lexical.version == fresh.store.version()
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("bm25")) == ["bm25_rag"]
    assert_consistent(fresh)


def _versions(doc: int, version: str) -> str:
    """A document of a few chunks; every sentence says which version it belongs to."""
    lines = [f"Ledger {doc} version {version}, page {p}: the {version} keeper of ledger {doc} "
             f"counted {p * 7 + doc} crates of {version} apples in the warehouse and signed it."
             for p in range(16)]
    return f"Ledger {doc}, {version}\n\n" + "\n\n".join(lines) + "\n"


def test_questions_during_reindex_see_whole_old_or_whole_new_documents(tmp_path, monkeypatch):
    import rag.indexer

    # One commit per document, as in a large re-index where documents commit in many batches.
    monkeypatch.setattr(rag.indexer, "_FLUSH_AT", 1)
    docs, n_docs, rounds = tmp_path / "docs", 4, 4
    docs.mkdir()
    for d in range(n_docs):
        (docs / f"ledger{d}.txt").write_text(_versions(d, "old"))
    writer = RAG(docs_dir=docs, store_dir=tmp_path / "store")
    writer.index()
    # What each version of each document looks like once chunked: the only allowed answers.
    s = writer.settings
    chunker = Chunker(writer.embedder.tokenize, s.chunk_size, s.chunk_overlap)
    allowed = {}
    for d in range(n_docs):
        for version in ("old", "new"):
            path = tmp_path / "probe" / f"ledger{d}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_text(_versions(d, version))
            chunks = frozenset(c.text for c in chunker.chunk(load_document(path, path.parent, 10**7)))
            allowed.setdefault(f"ledger{d}.txt", set()).add(chunks)
    assert all(len(v) == 2 for v in allowed.values())
    total = sum(len(c) for v in allowed.values() for c in v)
    assert total <= s.candidates  # a search returns every committed chunk: the check is exact

    # Readers: the writer's own object (as the UI re-indexing in-process) and a second one on the
    # same store (as a UI process while `rag index` runs in another).
    readers = [writer, RAG(docs_dir=docs, store_dir=tmp_path / "store")]
    done, seen, problems = threading.Event(), [], []

    def read(bot):
        while not done.is_set():
            try:
                sources = bot.retrieve("How many crates of apples did the keeper count?", top_k=50)
            except Exception:  # noqa: BLE001 - any error is a failure, recorded below
                problems.append(traceback.format_exc())
                return
            got: dict[str, set] = {}
            for src in sources:
                got.setdefault(src.doc_id, set()).add(src.text)
            if set(got) != set(allowed):
                problems.append(f"documents missing: {set(allowed) - set(got)}")
            for doc_id, texts in got.items():
                if frozenset(texts) not in allowed.get(doc_id, ()):
                    problems.append(f"{doc_id}: a mix of versions or a partial one ({len(texts)} chunks)")
            seen.append({doc_id: "new" if any(" new " in t for t in texts) else "old"
                         for doc_id, texts in got.items()})

    threads = [threading.Thread(target=read, args=(bot,)) for bot in readers for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for r in range(rounds):
            version = "new" if r % 2 == 0 else "old"
            for d in range(n_docs):
                (docs / f"ledger{d}.txt").write_text(_versions(d, version))
            report = writer.index()
            assert report.updated == n_docs
            time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert problems == [], problems[:5]
    assert len(seen) > 20 and {"old", "new"} <= {v for state in seen for v in state.values()}
    assert_consistent(writer)


@pytest.mark.slow
def test_store_open_here_is_not_changed_under_us_by_another_process(docs_dir, make_bot):
    """A process serving an embedded store (as `rag serve` does) would not see another process's
    writes (Chroma keeps vectors in memory): the other process is refused with what to do."""
    bot = make_bot(docs_dir)
    bot.index()
    (docs_dir / "new.md").write_text("# Quantum\n\nThe Hefei lab built a quantum computer called Zuchongzhi.")
    (docs_dir / "004_37bcc427096d2522.txt").unlink()
    paths = {"RAG_DOCS_DIR": str(docs_dir), "RAG_STORE_DIR": str(bot.settings.store_dir)}
    other = rag_cli("index", env=paths)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert other.stderr.startswith(f"error: the store {bot.settings.store_dir} is open in another process")
    assert "CHROMA_HOST" in other.stderr
    # this process still answers from a whole index, and indexes itself
    assert all(s.doc_id != "new.md" for s in bot.retrieve("Zuchongzhi quantum computer", top_k=20))
    assert "004_37bcc427096d2522.txt" in {s.doc_id for s in bot.retrieve("universities AI specialists", top_k=20)}
    report = bot.index()
    assert (report.added, report.removed) == (1, 1)
    assert bot.retrieve("Zuchongzhi quantum computer")[0].doc_id == "new.md"
    # reading from another process is fine while nobody writes
    asked = rag_cli("ask", "Which lab built the Zuchongzhi quantum computer?", "--json", "--generator", "extractive",
                    env=paths)
    assert asked.returncode == 0 and json.loads(asked.stdout)["sources"][0]["doc_id"] == "new.md"
    assert_consistent(bot)


# ---- through the UI's queue ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ui(seeded_store, tmp_path_factory):
    """The real UI server in this process, on a copy of the indexed seeds."""
    from ui.app import launch

    store = tmp_path_factory.mktemp("ui-load") / "store"
    shutil.copytree(seeded_store.settings.store_dir, store)
    bot = RAG(seeded_store.settings, store_dir=store, generator="extractive")
    demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)
    while job.running:
        time.sleep(0.1)
    assert job.error is None
    yield type("UI", (), {"url": url, "bot": bot, "job": job})
    demo.close()


@pytest.mark.slow
def test_twenty_users_at_once_through_the_ui_queue(ui, seeded_store, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(20)]
    expected = {q: seeded_store.ask(q, generator="extractive").answer for q in set(questions)}
    start = threading.Barrier(20)

    def user(q):  # each user with a client (a session) of their own
        client = Client(ui.url, verbose=False)
        start.wait()
        return client.submit(q, 0, "extractive", [], api_name="/ask").result(timeout=300)

    with ThreadPoolExecutor(20) as pool:
        finals = list(pool.map(user, questions))
    for q, final in zip(questions, finals):
        assert final["done"] and final["question"] == q
        assert final["answer"] == expected[q]
        assert set(markers_in(final["answer"])) <= {s["marker"] for s in final["sources"]}


def test_a_question_is_embedded_between_the_batches_of_an_indexing_run(seeded_store):
    """The embedder is held one batch at a time: a question's vector does not wait for a whole flush."""
    embedder = seeded_store.embedder
    finished: list[str] = []
    started = threading.Event()
    texts = [f"Sentence number {i} about chips, models and the supply of GPUs in 2025." for i in range(640)]

    def index_like():
        started.set()
        embedder.embed(texts)
        finished.append("indexing")

    worker = threading.Thread(target=index_like)
    worker.start()
    started.wait()
    time.sleep(0.3)  # the long call holds its first batch
    vec = embedder.embed(["Which chips are in short supply?"])
    finished.append("question")
    worker.join()
    assert vec.shape == (1, 384) and finished == ["question", "indexing"]
