"""The command line's JSON shapes, through the real `rag` entry point."""

import json

from .conftest import rag_cli

INDEX_KEYS = {"added", "updated", "removed", "unchanged", "embedded", "chunks", "skipped", "seconds"}
ANSWER_KEYS = {"question", "answer", "answered", "generator", "sources", "seconds"}
SOURCE_KEYS = {"marker", "doc_id", "file_name", "title", "text", "start", "end", "score"}


def test_cli_index_ask_status(docs_dir, tmp_path):
    store = str(tmp_path / "store")
    (docs_dir / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    # ask on an empty store indexes first
    r = rag_cli("ask", "Whose founders met with President Xi Jinping?", "--docs", str(docs_dir),
                "--store", store, "--json", "--generator", "extractive")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert set(a) >= ANSWER_KEYS and a["answered"] and a["generator"] == "extractive"
    assert a["sources"] and all(set(s) == SOURCE_KEYS for s in a["sources"])
    markers = {s["marker"] for s in a["sources"]}
    assert {int(n) for n in __import__("re").findall(r"\[(\d+)\]", a["answer"])} <= markers

    r = rag_cli("index", "--docs", str(docs_dir), "--store", store, "--json")
    rep = json.loads(r.stdout)
    assert set(rep) == INDEX_KEYS and rep["unchanged"] == 5 and rep["embedded"] == 0
    assert rep["skipped"] == [{"file": "bad.pdf", "reason": rep["skipped"][0]["reason"]}]
    assert "PDF" in rep["skipped"][0]["reason"]

    # questions on stdin: one JSON line each; a blank-ish question gets an error object, not a traceback
    r = rag_cli("ask", "--docs", str(docs_dir), "--store", store, "--json", "--generator", "extractive",
                input="What remains a critical barrier to China's AI self-sufficiency?\n???\n")
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["answered"] and "error" in lines[1]
    assert "Traceback" not in r.stderr

    r = rag_cli("status", "--docs", str(docs_dir), "--store", store, "--json",
                env={"OPENAI_API_KEY": "sk-must-not-show", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    st = json.loads(r.stdout)
    assert st["documents"] == 5 and st["chunks"] == rep["chunks"] and st["generator"] == "openai"
    assert "sk-must-not-show" not in r.stdout + r.stderr


def test_cli_empty_question_is_a_clear_error(tmp_path, docs_dir):
    r = rag_cli("ask", "   ", "--docs", str(docs_dir), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "Please type a question" in r.stderr and "Traceback" not in r.stderr
