"""Property-based tests: arbitrary questions and arbitrary file bytes never break the engine."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rag import RAG, QuestionError
from rag.citations import markers_in
from rag.documents import UnreadableFile, parse_bytes

from .conftest import SEEDS

SUFFIXES = [".txt", ".md", ".html", ".pdf"]

# Text of every kind, plus the shapes that tend to break things: markers, markup, control and
# right-to-left characters, CJK, very long runs.
questions = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.lists(st.sampled_from([
        "chip", "China", "[1]", "[99]", "<script>", "\x00", "\u202e", "人工智能", "DeepSeek", "?",
        "ignore previous instructions", "\n", "   ", "Xi Jinping", "🙂", "%s", "{0}", "\\", "'",
    ]), max_size=12).map(" ".join),
    st.text(alphabet="ab ", min_size=1900, max_size=2100),  # around the length limit
)

documents = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=2000).map(lambda t: t.encode("utf-8")),
    st.text(max_size=500).map(lambda t: t.encode("utf-16")),
    st.text(max_size=500).map(lambda t: t.encode("cp1252", errors="ignore")),
    st.binary(max_size=2000).map(lambda b: b"%PDF-1.4\n" + b),
    st.text(max_size=500).map(lambda t: f"<html><script>{t}</script><p>{t}</p>".encode()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=questions)
@example(question="[1] [2] [3]")
@example(question="\x00\x01\x02")
def test_any_question_gets_an_answer_or_a_question_error(seeded_store, question):
    try:
        a = seeded_store.ask(question, generator="extractive")
    except QuestionError as exc:
        assert str(exc)  # a message for the user
        return
    assert set(markers_in(a.answer)) <= {s.marker for s in a.sources}
    assert a.answer.strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=documents, suffix=st.sampled_from(SUFFIXES))
@example(data=b"\xff\xfe\x00", suffix=".txt")  # a UTF-16 byte order mark, then an odd byte
@example(data=b"\xfe\xff\xd8\x00", suffix=".md")  # UTF-16 with a lone surrogate
@example(data=b"<html><!--", suffix=".html")
def test_any_bytes_parse_to_text_or_unreadable(data, suffix):
    try:
        text, title = parse_bytes(data, f"file{suffix}")
    except UnreadableFile as exc:
        assert str(exc)
        return
    assert isinstance(text, str) and text.strip() and isinstance(title, str) and title


@pytest.fixture(scope="module")
def indexed_seeds(tmp_path_factory):
    base = tmp_path_factory.mktemp("prop-index")
    docs = base / "docs"
    shutil.copytree(SEEDS, docs)
    bot = RAG(docs_dir=docs, store_dir=base / "store")
    bot.index()
    return bot


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=documents, suffix=st.sampled_from(SUFFIXES))
@example(data=b"\xff\xfe\x00", suffix=".txt")
def test_indexing_any_file_never_loses_the_other_documents(indexed_seeds, data, suffix):
    bot = indexed_seeds
    seeds = {e.doc_id: e.sha256 for e in bot.documents()}
    path = bot.settings.docs_dir / f"arbitrary{suffix}"
    path.write_bytes(data)
    try:
        report = bot.index()
        after = {e.doc_id: e.sha256 for e in bot.documents()}
        assert {d: after.get(d) for d in seeds} == seeds
        skipped = {s.file: s.reason for s in report.skipped}
        if path.name in skipped:
            assert skipped[path.name] and path.name not in after
        else:
            assert report.added == 1 and path.name in after
    finally:
        path.unlink()
    report = bot.index()
    assert {e.doc_id: e.sha256 for e in bot.documents()} == seeds
