"""The UI's parts without a browser: HTML rendering (inert document text, citation links,
highlighted support), follow-up questions, and the document operations of the Python API."""

import re

import pytest

from rag.api import DocumentError, safe_file_name
from rag.conversation import is_follow_up, standalone_question
from rag.models import Answer, Source
from rag.prompts import NOT_FOUND
from ui import render

from .openai_stub import StubOpenAI

EVIL = ('<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
        '[click](javascript:window.__pwned=3) $$x^2$$ **bold**\n\nSecond paragraph.')


def _source(marker=1, text="Alpha beta. The chip bottleneck remains a barrier. Gamma delta.", **kw):
    kw.setdefault("title", "Chips")
    return Source(marker=marker, doc_id=kw.pop("doc_id", "a/chips.txt"), file_name="chips.txt", text=text,
                  start=0, end=len(text), score=0.03, similarity=0.61, **kw)


def _answer(text, sources, answered=True):
    return Answer(question="q?", answer=text, answered=answered, generator="extractive", sources=sources,
                  seconds=0.2)


# ---- rendering -----------------------------------------------------------------------------------
def test_document_text_is_rendered_inert():
    src = _source(text=EVIL, title='<img src=x onerror="window.__pwned=4">')
    a = _answer(f"From the documents: “{EVIL}” [1]", [src])
    for out in (render.answer_html(a, 1), render.sources_html([a]), render.streaming_html(EVIL),
                render.question_html(EVIL)):
        assert "<script" not in out and "<img" not in out
        assert "&lt;script&gt;" in out or "&lt;img" in out
        # One line, no blank line: the chatbot's Markdown renderer leaves an HTML block alone.
        assert "\n" not in out
    entry = type("E", (), {"doc_id": "<b>x</b>.txt", "title": "<script>t</script>", "file_name": "x", "chunks": 1,
                           "indexed_at": 0, "instructions": 0})
    table = render.documents_html([entry])
    assert "<script>" not in table and "<b>" not in table and "&lt;script&gt;" in table


def test_markers_become_links_to_their_passages():
    a = _answer("Chips are scarce [1]. Both say so [1, 2].", [_source(1), _source(2, doc_id="b.txt")])
    html = render.answer_html(a, turn=3)
    assert html.count('href="#src-3-1"') == 3  # two in the text, one in the list of sources
    assert 'href="#src-3-2"' in html
    assert "[1, 2]" not in html  # each number is its own link
    panel = render.sources_html([a, a])
    assert 'id="src-3-1"' not in panel  # turn 3 does not exist yet
    assert 'id="src-2-1"' in panel and 'class="turn current" data-turn="2"' in panel
    assert 'class="turn" data-turn="1"' in panel


def _checked(text, sources):
    """An answer whose cited sources carry their support spans, as the engine returns it."""
    from rag.citations import support_spans

    a = _answer(text, sources)
    for s in a.sources:
        s.spans = support_spans(text, s, a.question) if s.marker in a.cited_markers() else []
    return a


def test_supporting_sentence_is_highlighted():
    quoted = _checked("From the documents: “The chip bottleneck remains a barrier.” [1]", [_source()])
    html = render.sources_html([quoted])
    assert "<mark>The chip bottleneck remains a barrier.</mark>" in html
    paraphrase = _checked("A barrier remains: the chip bottleneck [1].", [_source()])
    assert re.search(r"<mark>The chip bottleneck remains a barrier\.</mark>", render.sources_html([paraphrase]))
    uncited = _answer("Nothing here.", [_source(spans=[(0, 11)])])
    assert "<mark>" not in render.sources_html([uncited])  # spans of a source the answer does not cite
    assert render.passage_html("a <b> c", [(2, 5)]) == "a <mark>&lt;b&gt;</mark> c"


def test_not_found_answer_looks_different():
    a = _answer(NOT_FOUND, [_source()], answered=False)
    html = render.answer_html(a, 1)
    assert "notfound" in html and "Not found in the documents" in html and "cite" not in html
    assert "found" in render.answer_html(_answer("Yes [1].", [_source()]), 1)
    assert "none answers it" in render.sources_html([a])


# ---- file names of uploads -----------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("report.txt", "report.txt"),
    ("../../etc/cron.d/evil.txt", "evil.txt"),
    ("..\\..\\windows\\notes.MD", "notes.md"),
    (".hidden.html", "hidden.html"),
    ("my report (final) v2.pdf", "my_report_final_v2.pdf"),
    ("a\x00b<script>.htm", "a_b_script.htm"),
    ("中文 文档.txt", "中文_文档.txt"),
])
def test_upload_names_are_sanitised(name, expected):
    assert safe_file_name(name) == expected


@pytest.mark.parametrize("name", ["run.sh", "archive.tar.gz", "noext", "", "../", "photo.gif", "old.doc"])
def test_other_file_types_are_refused(name):
    with pytest.raises(DocumentError, match="not a supported document type"):
        safe_file_name(name)


# ---- document operations of the Python API ------------------------------------------------------
FACT = "The Zorblax reactor in Tallinn produces 42 megawatts of blue hydrogen power every day."


def test_add_ask_delete_document(docs_dir, make_bot):
    bot = make_bot(docs_dir, generator="extractive")
    bot.index()
    doc_id, report = bot.add_document("../zorblax notes.txt", f"Zorblax reactor\n{FACT}\n".encode())
    assert doc_id == "zorblax_notes.txt" and report.added == 1
    assert (docs_dir / doc_id).read_text().endswith(f"{FACT}\n")
    assert doc_id in {e.doc_id for e in bot.documents()}
    a = bot.ask("How many megawatts does the Zorblax reactor produce?")
    assert a.answered and "42 megawatts" in a.answer
    assert doc_id in {s.doc_id for s in a.sources}

    report = bot.delete_document(doc_id)
    assert report.removed == 1 and not (docs_dir / doc_id).exists()
    assert doc_id not in {e.doc_id for e in bot.documents()}
    a = bot.ask("How many megawatts does the Zorblax reactor produce?")
    assert doc_id not in {s.doc_id for s in a.sources} and "Zorblax" not in a.answer


def test_bad_uploads_are_refused_and_save_nothing(docs_dir, make_bot):
    bot = make_bot(docs_dir, max_file_mb=0.001)
    before = sorted(p.name for p in docs_dir.iterdir())
    with pytest.raises(DocumentError, match="over the 0.0 MB limit"):
        bot.add_document("big.txt", b"word " * 1000)
    with pytest.raises(DocumentError, match="empty"):
        bot.add_document("empty.txt", b"")
    with pytest.raises(DocumentError, match="cannot be read"):
        bot.add_document("fake.pdf", b"this is not a pdf")
    with pytest.raises(DocumentError, match="not a supported"):
        bot.add_document("tool.exe", b"MZ")
    with pytest.raises(DocumentError, match="no indexed document"):
        bot.delete_document("../outside.txt")
    assert sorted(p.name for p in docs_dir.iterdir()) == before


# ---- follow-up questions -------------------------------------------------------------------------
CHIPS = [{"role": "user", "content": "What remains a critical barrier to China's AI self-sufficiency?"},
         {"role": "assistant", "content": "Chip bottlenecks [1]."}]


def test_follow_up_heuristic():
    assert is_follow_up("what about Huawei?") and is_follow_up("Why is it a barrier?")
    assert not is_follow_up("Which companies met Xi Jinping in Beijing?")
    q = standalone_question("what about Huawei?", CHIPS)
    assert q.startswith("what about Huawei?") and "critical" in q and "self-sufficiency" in q
    assert standalone_question("Which companies met Xi Jinping in Beijing?", CHIPS) == \
        "Which companies met Xi Jinping in Beijing?"
    assert standalone_question("what about Huawei?", []) == "what about Huawei?"
    # a chain of follow-ups keeps the topic of the last question that had one
    chain = CHIPS + [{"role": "user", "content": "what about Huawei?"}, {"role": "assistant", "content": "x"}]
    assert "barrier" in standalone_question("and SMIC?", chain)


def test_follow_up_is_answered_from_the_conversation(seeded_store):
    alone = seeded_store.ask("Why is it a barrier?", generator="extractive")
    followed = seeded_store.ask("Why is it a barrier?", generator="extractive", history=CHIPS)
    assert not alone.answered
    assert followed.answered and "chip" in followed.answer.lower()


def test_follow_up_condensed_by_the_model():
    from rag.openai_generator import OpenAIGenerator
    from rag.settings import Settings

    with StubOpenAI() as stub:
        stub.reply = "Standalone question: What chips does Huawei make for AI?"
        gen = OpenAIGenerator(Settings(openai_base_url=stub.url, openai_api_key="sk-test"))
        assert standalone_question("what about Huawei?", CHIPS, gen) == "What chips does Huawei make for AI?"
        sent = stub.requests[-1]["messages"]
        assert "critical barrier" in sent[-1]["content"] and "what about Huawei?" in sent[-1]["content"]
        assert "[1]" not in sent[-1]["content"]  # markers mean nothing to the rewriter
        stub.reply = "What about Huawei?"  # repeated unchanged: nothing resolved, the heuristic does it
        assert "self-sufficiency" in standalone_question("what about Huawei?", CHIPS, gen)
        stub.reply = "Which companies met Xi Jinping in Beijing?"
        assert standalone_question("Which companies met Xi Jinping in Beijing?", CHIPS, gen) == stub.reply
        stub.status = 500  # a failing model falls back to the heuristic rewrite
        assert "self-sufficiency" in standalone_question("what about Huawei?", CHIPS, gen)


# ---- serving -------------------------------------------------------------------------------------
def test_auth_setting_and_bind_warning(monkeypatch):
    from pydantic import SecretStr

    from ui.app import bind_warning, parse_auth

    assert parse_auth(None) is None
    assert parse_auth(SecretStr("alice:pa:ss")) == ("alice", "pa:ss")
    with pytest.raises(ValueError, match="user:password") as exc:
        parse_auth(SecretStr("just-a-password"))
    assert "just-a-password" not in str(exc.value)
    assert bind_warning("127.0.0.1", None) is None and bind_warning("localhost", None) is None
    assert "RAG_AUTH" in bind_warning("0.0.0.0", None)
    assert bind_warning("0.0.0.0", ("alice", "pw")) is None
    from rag.settings import Settings

    monkeypatch.setenv("RAG_AUTH", "bob:secret")
    assert Settings().auth.get_secret_value() == "bob:secret" and "secret" not in repr(Settings())


def test_ui_uses_only_the_python_api():
    """ui/ imports the engine only through its package face (rag) and its data classes (rag.models)."""
    import ast

    from .conftest import ROOT

    used = set()
    for path in (ROOT / "ui").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            used |= {(path.name, n) for n in names if n.split(".")[0] in ("rag", "rageval")}
    allowed = {"rag", "rag.models"}
    assert {u for u in used if u[1] not in allowed} == set()
