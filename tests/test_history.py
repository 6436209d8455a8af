"""Kept conversations (rag/history.py, ui/conversations.py): stored with their checked answers,
read back by a new process, deleted, never shown to another owner, exported as Markdown and JSON,
feedback recorded and exported by `rag feedback export`; and in the browser, a conversation found
again after a reload, exported and given a thumbs-down."""

import json
import re
import sqlite3
from types import SimpleNamespace

import pytest

from rag import RAG, ConversationError
from rag.models import Answer, Source

from .conftest import rag_cli
from .test_ui_browser import app, browser, page  # noqa: F401 - the browser test's server, browser and page


def _answer(question="What limits China's AI chips?", text="Export controls limit the chips [1]. Also yields [3].",
            answered=True) -> Answer:
    sources = [
        Source(marker=1, doc_id="reports/chips.pdf", file_name="chips.pdf", title="Chip report", text="Export "
               "controls limit the chips. Other text.", start=10, end=52, score=0.7, similarity=0.61,
               chunk_id="c1", spans=[(0, 26)], page=3, location="p. 3"),
        Source(marker=2, doc_id="notes.txt", file_name="notes.txt", title="Notes", text="Unrelated.", start=0,
               end=10, score=0.2),
        Source(marker=3, doc_id="fab.md", file_name="fab.md", title="Fabs", text="Also yields.", start=5,
               end=17, score=0.4, location="Yields"),
    ]
    return Answer(question=question, answer=text, answered=answered, generator="extractive",
                  sources=sources if answered else sources[1:2], seconds=0.25,
                  fallback_reason="the model timed out" if answered else None)


@pytest.fixture
def bot(tmp_path):
    return RAG(docs_dir=tmp_path / "docs", store_dir=tmp_path / "store")


def test_turns_are_kept_with_their_answers_and_read_back_after_a_restart(bot, tmp_path):
    first, second = _answer(), _answer("And the yields?", "Yields are low [3].")
    cid, index = bot.record_turn(first, "alice")
    assert index == 0
    assert bot.record_turn(second, "alice", cid) == (cid, 1)
    assert (tmp_path / "store" / "conversations.sqlite3").is_file()
    with sqlite3.connect(tmp_path / "store" / "conversations.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    again = RAG(docs_dir=tmp_path / "docs", store_dir=tmp_path / "store")  # a new server on the same store
    [summary] = again.conversations("alice")
    assert (summary.id, summary.title, summary.turns) == (cid, "What limits China's AI chips?", 2)
    conv = again.conversation(cid, "alice")
    assert [t.question for t in conv.turns] == [first.question, second.question]
    # the whole answer comes back: text, sources with their places and support spans, timing, notes
    assert conv.turns[0].answer == first and conv.turns[1].answer == second
    assert conv.turns[0].rating is None

    long = _answer("  Why   " + "very " * 40 + "slow?  ")
    other, _ = again.record_turn(long, "alice")
    titles = [c.title for c in again.conversations("alice")]
    assert titles[0].startswith("Why very very") and titles[0].endswith("very…") and len(titles[0]) <= 80
    assert [c.id for c in again.conversations("alice")] == [other, cid]  # the latest changed first

    again.delete_conversation(cid, "alice")
    assert [c.id for c in again.conversations("alice")] == [other]
    with pytest.raises(ConversationError, match="no conversation"):
        again.conversation(cid, "alice")
    with sqlite3.connect(tmp_path / "store" / "conversations.sqlite3") as db:  # its turns went with it
        assert db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (cid,)).fetchone()[0] == 0


def test_an_owner_never_reads_changes_or_deletes_another_owners_conversation(bot):
    cid, _ = bot.record_turn(_answer(), "user:alice")
    bot.feedback(cid, 0, "up", "good", owner="user:alice")
    assert bot.conversations("user:bob") == []
    missing = f"no conversation {cid!r}"
    attempts = [
        lambda: bot.conversation(cid, "user:bob"),
        lambda: bot.delete_conversation(cid, "user:bob"),
        lambda: bot.record_turn(_answer("injected?"), "user:bob", cid),
        lambda: bot.feedback(cid, 0, "down", "bad", owner="user:bob"),
        lambda: bot.export_conversation(cid, "user:bob", "json"),
        lambda: bot.export_conversation(cid, "user:bob"),
    ]
    for attempt in attempts:
        with pytest.raises(ConversationError) as exc:
            attempt()
        assert str(exc.value) == missing  # the same words as for a conversation that does not exist
    with pytest.raises(ConversationError) as exc:
        bot.conversation("no-such-id", "user:alice")
    assert str(exc.value) == "no conversation 'no-such-id'"
    # alice's conversation is as she left it
    conv = bot.conversation(cid, "user:alice")
    assert len(conv.turns) == 1 and (conv.turns[0].rating, conv.turns[0].comment) == ("up", "good")
    for owner in ("", "   ", None):
        with pytest.raises(ConversationError, match="owner"):
            bot.conversations(owner)


def test_feedback_on_a_turn_replaces_the_earlier_one(bot):
    cid, _ = bot.record_turn(_answer(), "alice")
    bot.record_turn(_answer("Second?", "Second answer [1]."), "alice", cid)
    assert bot.feedback(cid, -1, "down", "  missed   the point ", owner="alice") == 1  # -1: the latest turn
    assert bot.feedback(cid, 0, 1, owner="alice") == 0
    turns = bot.conversation(cid, "alice").turns
    assert [(t.rating, t.comment) for t in turns] == [("up", ""), ("down", "missed the point")]
    bot.feedback(cid, 1, "up", owner="alice")
    assert bot.conversation(cid, "alice").turns[1].rating == "up"
    with pytest.raises(ConversationError, match="no turn 2"):
        bot.feedback(cid, 2, "up", owner="alice")
    with pytest.raises(ConversationError, match="rating must be 'up' or 'down'"):
        bot.feedback(cid, 0, "meh", owner="alice")


def test_markdown_export_has_each_question_its_answer_and_numbered_references(bot):
    cid, _ = bot.record_turn(_answer(), "alice")
    bot.record_turn(_answer("What was Nvidia's share price?", "Not found in the documents.", answered=False),
                    "alice", cid)
    bot.feedback(cid, 0, "down", "cite the fab report", owner="alice")
    md = bot.export_conversation(cid, "alice", "markdown")
    assert md.startswith("# What limits China's AI chips?\n")
    assert "## 1. What limits China's AI chips?\n\nExport controls limit the chips [1]. Also yields [3].\n" in md
    # only the cited passages, by their numbers, with title, file and place in the file
    assert "- [1] Chip report — chips.pdf, p. 3\n- [3] Fabs — fab.md, Yields\n" in md
    assert "Notes" not in md.split("## 2.")[0]
    assert "Feedback: 👎 down — cite the fab report" in md
    second = md.split("## 2. What was Nvidia's share price?")[1]
    assert "_Not found in the documents._" in second and "References" not in second


def test_json_export_is_answer_to_dict_per_turn_with_its_feedback(bot):
    first, second = _answer(), _answer("Again?", "Again [1].")
    cid, _ = bot.record_turn(first, "alice")
    bot.record_turn(second, "alice", cid)
    bot.feedback(cid, 1, "up", "clear", owner="alice")
    data = json.loads(bot.export_conversation(cid, "alice", "json"))
    assert (data["id"], data["title"]) == (cid, first.question)
    assert data["turns"] == [{**first.to_dict(), "feedback": None},
                             {**second.to_dict(), "feedback": {"rating": "up", "comment": "clear"}}]
    with pytest.raises(ConversationError, match="fmt must be"):
        bot.export_conversation(cid, "alice", "pdf")


def test_feedback_export_and_conversation_list_on_the_command_line(tmp_path):
    store = tmp_path / "store"
    bot = RAG(docs_dir=tmp_path / "docs", store_dir=store)
    a, _ = bot.record_turn(_answer(), "browser:" + "x" * 22)
    bot.record_turn(_answer("Unrated?", "Unrated [1]."), "browser:" + "x" * 22, a)
    b, _ = bot.record_turn(_answer("Yields?", "Yields are low [3]."), "user:alice")
    bot.feedback(a, 0, "down", "wrong chip", owner="browser:" + "x" * 22)
    bot.feedback(b, 0, "up", owner="user:alice")

    r = rag_cli("feedback", "export", "--json", "--store", str(store))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["question"], x["rating"], x["comment"]) for x in rows] == [
        ("What limits China's AI chips?", "down", "wrong chip"), ("Yields?", "up", "")]
    assert rows[0]["answer"] == _answer().answer and rows[0]["cited"] == [1, 3]
    assert rows[0]["sources"] == [s.public() for s in _answer().sources]
    assert (rows[0]["conversation"], rows[0]["turn"]) == (a, 0)
    # a browser's id is the key to its conversations: only a digest of it is exported
    assert rows[0]["owner"].startswith("browser:") and "x" * 22 not in r.stdout
    assert rows[1]["owner"] == "user:alice"
    assert "2 answers with feedback (1 up, 1 down)" in r.stderr

    out = tmp_path / "feedback.jsonl"
    r = rag_cli("feedback", "export", "--store", str(store), "--out", str(out))
    assert r.returncode == 0 and r.stdout == ""
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == rows

    r = rag_cli("conversations", "--store", str(store), "--json")
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert {(c["id"], c["turns"], c["rated"]) for c in listed} == {(a, 2, 1), (b, 1, 1)}


def test_a_store_that_cannot_keep_conversations_says_so_and_the_ui_answers_on(tmp_path):
    from rag import StoreError
    from ui import conversations

    (tmp_path / "store").write_text("not a folder")
    bot = RAG(docs_dir=tmp_path / "docs", store_dir=tmp_path / "store")
    with pytest.raises(StoreError, match="conversations file .* cannot be opened .*RAG_KEEP_CONVERSATIONS=false"):
        bot.record_turn(_answer(), "alice")
    handlers = conversations.Conversations(bot)
    browser_id, listed = handlers.on_load(None, _request())
    assert listed["choices"] == []
    kept, picker, md, js = handlers.keep([_answer()], None, browser_id, _request())
    assert kept is None and md["interactive"] is False


# ---- the UI's handlers, without a browser ------------------------------------------------------
def _request(user=None):
    return SimpleNamespace(username=user)


def test_ui_keeps_lists_and_reopens_a_conversation_per_browser(bot):
    import gradio as gr

    from ui import conversations

    handlers = conversations.Conversations(bot)
    browser_id, listed = handlers.on_load(None, _request())
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", browser_id) and listed["choices"] == []
    assert handlers.on_load("../not-an-id", _request())[0] != "../not-an-id"  # never used as given
    assert handlers.on_load(browser_id, _request())[0] == browser_id

    first, second = _answer(), _answer("And the yields?", "Yields are low [3].")
    kept, picker, md, js = handlers.keep([first], None, browser_id, _request())
    assert kept["turns"] == 1 and picker["value"] == kept["id"] and md["interactive"]
    assert md["value"].endswith("conversation-what-limits-china-s-ai-chips.md")
    kept, *_ = handlers.keep([first, second], kept, browser_id, _request())  # only the new answer is added
    assert kept["turns"] == 2 and len(bot.conversation(kept["id"], f"browser:{browser_id}").turns) == 2

    # another browser sees nothing of it; the same browser after a reload finds it
    assert handlers.on_load(None, _request())[1]["choices"] == []
    [(label, cid)] = handlers.on_load(browser_id, _request())[1]["choices"]
    assert cid == kept["id"] and label.startswith("What limits China's AI chips? · ")
    chat, history, answers, sources, state, *_ = handlers.open(cid, browser_id, _request())
    assert answers == [first, second] and state == {"id": cid, "turns": 2}
    assert [m["role"] for m in chat] == ["user", "assistant"] * 2
    assert 'href="#src-2-3"' in chat[3]["content"] and 'id="src-1-1"' in sources
    assert history[1] == {"role": "assistant", "content": first.answer}

    note, comment, *_ = handlers.thumbs_down(state, "too short", browser_id, _request())
    assert "Recorded “not helpful” for answer 2" in note and comment == ""
    assert bot.conversation(cid, f"browser:{browser_id}").turns[1].comment == "too short"
    # a logged-in user's conversations are the user's, whatever browser id the page sends
    assert conversations.Conversations.owner(browser_id, _request("alice")) == "user:alice"
    assert handlers.on_load(browser_id, _request("alice"))[1]["choices"] == []

    assert all(x is gr.skip() or x == gr.skip() for x in handlers.delete(None, browser_id, _request()))  # cancelled
    assert bot.conversations(f"browser:{browser_id}")
    chat, history, answers, sources, state, md, js, note, picker = handlers.delete(cid, browser_id, _request())
    assert (chat, history, answers, state, picker["choices"]) == ([], [], [], None, [])
    assert "deleted" in note and bot.conversations(f"browser:{browser_id}") == []


def test_the_browser_id_is_read_back_after_a_server_restart(bot):
    """The id is kept in the browser encrypted with the app's key: two app builds (a restart) must
    use the same key and storage slot, or every browser would lose its conversations."""
    import gradio as gr

    from ui.app import build_app
    from ui.jobs import IndexJob

    def browser_state(demo):
        return [b for b in demo.blocks.values() if isinstance(b, gr.BrowserState)]

    [one] = browser_state(build_app(bot, IndexJob(bot)))
    [two] = browser_state(build_app(RAG(settings=bot.settings), IndexJob(bot)))
    assert (one.storage_key, one.secret) == (two.storage_key, two.secret)


def test_nothing_is_kept_when_turned_off(tmp_path):
    import gradio as gr

    from ui.app import build_app
    from ui.jobs import IndexJob

    bot = RAG(docs_dir=tmp_path / "docs", store_dir=tmp_path / "store", keep_conversations=False)
    demo = build_app(bot, IndexJob(bot))
    picker = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "conversations"]
    assert isinstance(picker[0], gr.Dropdown) and picker[0].visible is False
    assert not any(getattr(d.fn, "__name__", "") == "keep" for d in demo.fns.values())
    assert not (tmp_path / "store" / "conversations.sqlite3").exists()


# ---- in the browser ------------------------------------------------------------------------------
@pytest.mark.slow
def test_conversation_survives_a_reload_exports_and_takes_a_thumbs_down(page, app):  # noqa: F811 - fixtures
    from .test_ui_browser import SEED_QUESTION, ask

    answer = ask(page, SEED_QUESTION)
    text = answer.locator(".text").inner_text()
    page.wait_for_function("document.querySelector('#export-md').disabled === false",
                           timeout=15_000)
    page.reload()
    page.wait_for_selector("#question textarea")
    assert page.locator("#chat .answer").count() == 0  # the page starts empty ...
    page.click("#conversations input")
    page.get_by_role("option", name=re.compile(re.escape(SEED_QUESTION[:40]))).click()  # ... and finds it again
    restored = page.locator("#chat .answer.found").first
    restored.wait_for(state="visible", timeout=15_000)
    assert restored.locator(".text").inner_text() == text
    link = restored.locator("a.cite").first
    marker = link.inner_text().strip("[]")
    link.click()
    page.locator(f"#sources-panel details#src-1-{marker}").wait_for(state="visible")

    page.wait_for_function("document.querySelector('#export-md').disabled === false",
                           timeout=15_000)
    with page.expect_download() as download:
        page.click("#export-md")
    md = open(download.value.path(), encoding="utf-8").read()
    assert download.value.suggested_filename.endswith(".md")
    assert SEED_QUESTION in md and text.split("[")[0].strip()[:60] in md
    assert re.search(rf"^- \[{marker}\] .+ — .+\.txt", md, re.M)  # a numbered reference: title — file

    page.fill("#feedback-comment textarea, #feedback-comment input", "misses the second reason")
    page.click("#thumbs-down")
    page.wait_for_function("document.querySelector('#feedback-note').innerText.includes('Recorded')")
    [record] = [r for r in app.bot.feedback_records() if r["question"] == SEED_QUESTION]
    assert (record["rating"], record["comment"]) == ("down", "misses the second reason")
    assert int(marker) in record["cited"] and record["answered"]
