"""The command line: JSON shapes through the real `rag` entry point, and how `rag serve` finds the UI."""

import json
import re

from .conftest import ROOT, rag_cli

INDEX_KEYS = {"added", "updated", "removed", "unchanged", "embedded", "chunks", "skipped", "seconds", "instructions"}
ANSWER_KEYS = {"question", "answer", "answered", "generator", "sources", "seconds"}
SOURCE_KEYS = {"marker", "doc_id", "file_name", "title", "text", "start", "end", "score", "page", "location"}


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
    lines = [json.loads(line) for line in r.stdout.splitlines()]
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


# ---- `rag serve` lives in ui/ and is found through the rag_chat.commands entry point ----------

SERVE_CALLS = []


def _recording_serve(args):
    SERVE_CALLS.append((args.host, args.port, args.docs))
    return 7


def _only(*entries):
    from importlib.metadata import EntryPoints

    return lambda group, name: EntryPoints(e for e in entries if e.group == group and e.name == name)


def test_serve_entry_point_is_installed_and_names_ui_serve():
    from importlib.metadata import entry_points

    from rag.cli import COMMANDS_GROUP

    (serve,) = entry_points(group=COMMANDS_GROUP, name="serve")
    from ui.serve import command

    assert serve.load() is command


def test_serve_runs_the_entry_point_with_the_parsed_arguments(monkeypatch):
    import importlib.metadata as md

    from rag import cli

    fake = md.EntryPoint(name="serve", value=f"{__name__}:_recording_serve", group=cli.COMMANDS_GROUP)
    monkeypatch.setattr(md, "entry_points", _only(fake))
    SERVE_CALLS.clear()
    assert cli.main(["serve", "--port", "8123", "--docs", "d"]) == 7
    assert SERVE_CALLS == [("127.0.0.1", 8123, "d")]


def test_serve_without_its_entry_point_is_a_clear_error(monkeypatch, capsys):
    import importlib.metadata as md

    from rag import cli

    monkeypatch.setattr(md, "entry_points", _only())
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "`serve` command is not installed" in err and "pip install -e ." in err

    broken = md.EntryPoint(name="serve", value="no_such_module_here:command", group=cli.COMMANDS_GROUP)
    monkeypatch.setattr(md, "entry_points", _only(broken))
    assert cli.main(["serve"]) == 1
    assert "cannot be imported" in capsys.readouterr().err


def test_the_engine_never_imports_the_ui():
    pattern = re.compile(r"^\s*(from|import)\s+ui\b", re.M)
    offenders = [p.name for p in (ROOT / "rag").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
