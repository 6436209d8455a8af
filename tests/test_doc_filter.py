"""Questions limited to chosen documents (doc_ids: ids and/or globs): the dense and the BM25 search
both pick their candidates inside the chosen documents, so no passage of another document is
retrieved or cited, through the Python API, the pipeline's steps, the CLI, /ask and the chat UI."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import RAG, DocumentFilterError, QuestionError, answering, multilingual
from rag.citations import markers_in
from rag.lexical import LexicalIndex
from rag.retrieval import MODES
from ui import api_routes
from ui.chat import Chat
from ui.jobs import IndexJob

from .conftest import SEEDS, rag_cli

NOTES = {
    "notes/zorblax.md": "# Zorblax reactor\n\nThe Zorblax reactor in Tallinn produces 42 megawatts of blue "
                        "hydrogen power every day. It was built by the Estonian firm Kvarts in 2019.\n",
    "notes/orchard.txt": "Orchard report\nThe Mirabelle orchard near Metz harvested 310 tonnes of plums this "
                         "year. China bought most of the crop for its artificial intelligence canteens.\n",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The seeds under news/ and two small notes under notes/, indexed once (read-only tests)."""
    base = tmp_path_factory.mktemp("doc-filter")
    docs = base / "docs"
    shutil.copytree(SEEDS, docs / "news")
    for name, text in NOTES.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    bot = RAG(docs_dir=docs, store_dir=base / "store", generator="extractive")
    bot.index()
    return bot


def _doc_ids(bot: RAG) -> list[str]:
    return [e.doc_id for e in bot.documents()]


def _sentences() -> list[str]:
    """Questions drawn from the documents' own sentences, so each one has a best match somewhere."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.iterdir())] + list(NOTES.values())
    found = {s.strip()[:200] for t in texts for s in re.split(r"(?<=[.!?])\s+|\n+", t)
             if len(s.split()) >= 5}
    return sorted(found)


SENTENCES = _sentences()
FOLLOW_UP = [{"role": "user", "content": "What remains a critical barrier to China's AI self-sufficiency?"},
             {"role": "assistant", "content": "Chip bottlenecks [1]."}]
COMPOUND = ("On which day of the week did China's Premier address lawmakers about AI, "
            "and on which day did Xi Jinping make his remarks on AI self-reliance?")


def _assert_within(answer_or_sources, chosen: set[str]):
    sources = getattr(answer_or_sources, "sources", answer_or_sources)
    assert {s.doc_id for s in sources} <= chosen
    if hasattr(answer_or_sources, "answer"):
        cited = set(markers_in(answer_or_sources.answer))
        assert cited <= {s.marker for s in sources}  # every [n] is one of the (chosen) sources
        assert {s.doc_id for s in sources if s.marker in cited} <= chosen


# ---- the property: nothing from another document ------------------------------------------------
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _subsets(bot: RAG):
    """Some of the documents, never all of them (that would be no limit)."""
    ids = _doc_ids(bot)
    return st.sets(st.sampled_from(ids), min_size=1, max_size=len(ids) - 1)


@pytest.mark.parametrize("mode", MODES)
def test_retrieved_sources_come_from_the_chosen_documents_only(corpus, mode):
    @FEW
    @given(chosen=_subsets(corpus), question=st.sampled_from(SENTENCES), top_k=st.integers(1, 8))
    def check(chosen, question, top_k):
        found = corpus.retrieve(question, top_k=top_k, mode=mode, doc_ids=sorted(chosen))
        assert found or mode == "bm25"  # BM25 finds nothing where no chosen document has a question word
        _assert_within(found, chosen)

    check()


def test_answers_cite_the_chosen_documents_only(corpus):
    """`ask` (hybrid retrieval): the generator is given, and the answer cites, chosen passages only."""
    @FEW
    @given(chosen=_subsets(corpus), question=st.sampled_from(SENTENCES), top_k=st.integers(1, 8))
    def check(chosen, question, top_k):
        _assert_within(corpus.ask(question, top_k=top_k, doc_ids=sorted(chosen)), chosen)

    check()


def test_the_pipeline_keeps_the_limit_for_follow_ups_translations_and_questions_in_parts(corpus, monkeypatch):
    news = {d for d in _doc_ids(corpus) if d.startswith("news/")}
    chosen = {sorted(news)[2], "notes/orchard.txt"}
    follow_up = corpus.ask("what about Huawei?", history=FOLLOW_UP, doc_ids=sorted(chosen))
    _assert_within(follow_up, chosen)
    assert len(answering.split_compound(COMPOUND)) == 2  # searched part by part
    in_parts = corpus.ask(COMPOUND, doc_ids=sorted(chosen))
    _assert_within(in_parts, chosen)
    assert len({s.doc_id for s in corpus.ask(COMPOUND).sources} - chosen) > 0  # unlimited, it looks elsewhere
    # a question in another language is searched for in English: that search is limited too
    monkeypatch.setattr(multilingual, "language_of", lambda q: "de" if "Megawatt " in q else None)
    monkeypatch.setattr(multilingual, "english_question",
                        lambda q, translator: "How many megawatts does the reactor produce?")
    monkeypatch.setattr(answering.Pipeline, "_translator", lambda self, gen: None)
    german = "Wie viele Megawatt erzeugt der Reaktor?"
    assert "42 megawatts" in corpus.ask(german, doc_ids=["notes/*"]).answer
    _assert_within(corpus.ask_stream(german, doc_ids=sorted(news)).finish(), news)


def test_the_top_k_are_chosen_inside_the_documents_not_cut_before(corpus):
    """With as few candidates as passages, a filter applied after the cut would leave nothing."""
    narrow = RAG(corpus.settings, top_k=3, candidates=3)
    question = "The Zorblax reactor in Tallinn produces 42 megawatts of blue hydrogen power."
    best = {s.doc_id for s in narrow.retrieve(question, mode="dense")}
    assert "notes/zorblax.md" in best
    chunks = {e.doc_id: e.chunks for e in corpus.documents()}
    other = max((d for d in chunks if d not in best), key=chunks.get)
    assert chunks[other] >= 3
    for mode in ("dense", "hybrid"):
        found = narrow.retrieve(question, mode=mode, doc_ids=[other])
        assert len(found) == 3 and {s.doc_id for s in found} == {other}


def test_bm25_ranks_only_the_chosen_documents_rows(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    rows = [(f"a{i}", "a.txt", "sha-a", "plum plum plum harvest orchard") for i in range(5)]
    rows += [(f"b{i}", "b.txt", "sha-b", f"one plum among many other words number {i}") for i in range(3)]
    index.build(1, rows)
    assert {r[1] for r in index.search("plum", 3)} == {"a.txt"}  # unlimited: a.txt fills the top 3
    limited = index.search("plum", 3, only=["b.txt"])
    assert [r[1] for r in limited] == ["b.txt"] * 3
    assert index.search("plum", 3, only=["c.txt"]) == []
    reloaded = LexicalIndex(tmp_path / "bm25")
    assert reloaded.load() and reloaded.search("plum", 2, only={"b.txt"}) == limited[:2]


# ---- choosing documents: ids, globs, errors -------------------------------------------------------
def test_globs_select_documents(corpus):
    news = sorted(d for d in _doc_ids(corpus) if d.startswith("news/"))
    assert corpus.select_documents("notes/*") == ["notes/orchard.txt", "notes/zorblax.md"]
    assert corpus.select_documents(["*.md"]) == ["notes/zorblax.md"]
    assert corpus.select_documents(["news/00[01]_*", "notes/zorblax.md"]) == news[:2] + ["notes/zorblax.md"]
    assert corpus.select_documents(None) is None and corpus.select_documents([]) is None
    assert corpus.select_documents(["", "  "]) is None  # an empty picker: every document
    a = corpus.ask("How many tonnes of plums did the orchard harvest?", doc_ids="notes/*")
    assert a.answered and "310 tonnes" in a.answer and {s.doc_id for s in a.sources} <= set(NOTES)
    assert {s.doc_id for s in a.sources if s.marker in markers_in(a.answer)} == {"notes/orchard.txt"}


def test_unknown_documents_are_a_clear_error_not_an_empty_answer(corpus):
    with pytest.raises(DocumentFilterError, match=r"no indexed document 'news/missing\.txt'.*notes/zorblax\.md"):
        corpus.ask("What does the reactor produce?", doc_ids=["notes/zorblax.md", "news/missing.txt"])
    with pytest.raises(DocumentFilterError, match=r"no indexed document matches 'reports/\*\.pdf'"):
        corpus.retrieve("What does the reactor produce?", doc_ids=["reports/*.pdf"])
    with pytest.raises(QuestionError, match="doc_ids must be a list"):  # a QuestionError: shown like one
        corpus.ask_stream("What does the reactor produce?", doc_ids=[42])
    with pytest.raises(ValueError, match="no indexed document"):
        corpus.retrieve("What does the reactor produce?", doc_ids="zorblax.md")  # ids are paths in the docs dir


# ---- the CLI, /ask and the chat UI ---------------------------------------------------------------
def test_cli_ask_with_doc(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs / "news")
    (docs / "notes").mkdir()
    for name, text in NOTES.items():
        (docs / name).write_text(text, encoding="utf-8")
    common = ["--docs", str(docs), "--store", str(tmp_path / "store"), "--generator", "extractive", "--json"]
    # an empty store is indexed first, then the --doc values are checked against it; they limit every
    # question of a batch on stdin
    r = rag_cli("ask", *common, "--doc", "notes/zorblax.md", "--doc", "news/00[01]_*",
                input="How many megawatts does the reactor produce?\n"
                      "How many tonnes of plums did the orchard harvest?\n")
    assert r.returncode == 0, r.stderr
    reactor, plums = [json.loads(line) for line in r.stdout.splitlines()]
    chosen = {"notes/zorblax.md", "news/000_50d618d39dec71f2.txt", "news/001_044b7d87bb8897ac.txt"}
    assert reactor["answered"] and "42 megawatts" in reactor["answer"]
    assert {s["doc_id"] for s in reactor["sources"] + plums["sources"]} <= chosen
    assert "310" not in plums["answer"]  # the orchard note was not chosen

    r = rag_cli("ask", "What does the reactor produce?", *common[:4], "--doc", "notes/nope.txt")
    assert r.returncode == 2 and "no indexed document 'notes/nope.txt'" in r.stderr
    assert "Traceback" not in r.stderr


def test_ask_route_takes_doc_ids(corpus):
    ask = api_routes.ask_function(corpus, IndexJob(corpus))
    updates = list(ask("How many tonnes of plums did the orchard harvest?", 0, "extractive", [],
                       ["notes/orchard.txt"]))
    final = updates[-1]
    assert final["done"] and "310 tonnes" in final["answer"]
    assert {s["doc_id"] for s in final["sources"]} == {"notes/orchard.txt"}
    unlimited = list(ask("What remains a critical barrier to China's AI self-sufficiency?", 0, "extractive"))[-1]
    assert any(s["doc_id"].startswith("news/") for s in unlimited["sources"])  # no doc_ids: every document
    limited = list(ask("What remains a critical barrier to China's AI self-sufficiency?", 0, "extractive", None,
                       ["notes/*"]))[-1]
    assert {s["doc_id"] for s in limited["sources"]} <= set(NOTES)
    with pytest.raises(gr.Error, match="no indexed document 'gone.txt'"):
        list(ask("What does the reactor produce?", 0, "", None, ["gone.txt"]))


@pytest.mark.slow
def test_ask_route_over_http_takes_doc_ids_by_name(corpus, monkeypatch):
    from gradio_client import Client

    from ui.app import launch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    demo, job, url = launch(corpus, host="127.0.0.1", port=None, quiet=True)
    try:
        client = Client(url, verbose=False)
        final = client.predict("How many megawatts does the reactor produce?", generator="extractive",
                               doc_ids=["notes/*"], api_name="/ask")
        assert final["done"] and "42 megawatts" in final["answer"]
        assert {s["doc_id"] for s in final["sources"]} <= set(NOTES)
        with pytest.raises(Exception, match="no indexed document matches 'reports/\\*'"):
            client.predict("How many megawatts does the reactor produce?", doc_ids=["reports/*"], api_name="/ask")
    finally:
        demo.close()


def test_chat_picker_lists_the_indexed_documents_and_limits_the_answer(corpus):
    from ui.app import build_app

    job = IndexJob(corpus)
    demo = build_app(corpus, job)
    picker = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "doc-filter")
    assert isinstance(picker, gr.Dropdown) and picker.multiselect and picker.allow_custom_value
    # it is refreshed when the page loads and whenever the Documents tab's list changes
    table = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "docs-table")
    refreshes = [d for d in demo.config["dependencies"] if picker._id in d["outputs"]]
    assert {(t[0], t[1]) for d in refreshes for t in d["targets"]} >= {(table._id, "change"), (demo._id, "load")}

    chat = Chat(corpus, job)
    update = chat.document_choices(["notes/zorblax.md", "deleted.txt", "news/*"])
    assert [value for _, value in update["choices"]] == _doc_ids(corpus)
    assert update["value"] == ["notes/zorblax.md", "news/*"]  # a document no longer indexed is dropped

    request = SimpleNamespace(session_hash="picker-test")
    out = list(chat.respond("How many megawatts does the reactor produce?", [], [], [], 5, "extractive",
                            ["notes/zorblax.md"], request))
    answers = out[-1][3]
    assert len(answers) == 1 and "42 megawatts" in answers[0].answer
    assert {s.doc_id for s in answers[0].sources} == {"notes/zorblax.md"}
    out = list(chat.respond("How many megawatts does the reactor produce?", [], [], [], 5, "extractive",
                            ["gone.txt"], request))
    error = out[-1][1][-1]["content"]
    assert 'class="answer error"' in error and "no indexed document" in error and "gone.txt" in error
