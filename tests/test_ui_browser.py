"""The chat UI in a real headless browser (Debian chromium driven by playwright), against the real
app on a free loopback port with the real index of a copy of the seeds; and the same app scripted
through gradio_client. One server and one browser are shared by the module."""

import shutil
import time
from types import SimpleNamespace

import pytest

from .conftest import SEEDS

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SEED_QUESTION = "What remains a critical barrier to China's AI self-sufficiency?"
UNANSWERABLE = "What was Nvidia's closing share price last Friday?"
# Records every state an answer bubble goes through, and the requests the page makes.
RECORDER = """
window.__states = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('#chat .answer')) {
    const state = el.className.replace('answer', '').trim();
    if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from rag import RAG
    from ui.app import launch

    base = tmp_path_factory.mktemp("ui")
    docs = base / "docs"
    shutil.copytree(SEEDS, docs)
    bot = RAG(docs_dir=docs, store_dir=base / "store", generator="extractive")
    demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)
    while job.running:
        time.sleep(0.1)
    assert job.error is None and bot.status()["documents"] == 5
    yield SimpleNamespace(url=url, bot=bot, docs=docs, job=job)
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(app, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.add_init_script(RECORDER)
    p.requests_seen = []
    p.on("request", lambda r: p.requests_seen.append(r.url))
    p.on("dialog", lambda d: d.accept())  # the delete confirmation
    p.goto(app.url)
    p.wait_for_selector("#question textarea")
    p.wait_for_function("document.querySelector('#top-status').innerText.includes('documents')")
    yield p
    context.close()


def ask(page, question: str):
    """Submit a question; return the finished answer bubble."""
    done = "#chat .answer.found, #chat .answer.notfound, #chat .answer.error"
    before = page.locator(done).count()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(f"document.querySelectorAll({done!r}).length > {before}", timeout=60_000)
    return page.locator(done).nth(before)


def open_tab(page, tab_id: str):
    page.click(f'button[role="tab"][data-tab-id="{tab_id}"]')


def upload(page, path, expect: str):
    open_tab(page, "documents")
    page.set_input_files("#upload input[type=file]", str(path))
    page.wait_for_function(f"document.querySelector('#docs-table').innerText.includes({expect!r})",
                           timeout=60_000)


def test_answer_streams_in_and_a_citation_reveals_its_passage(page, app):
    answer = ask(page, SEED_QUESTION)
    assert "chip" in answer.inner_text().lower()
    # "Searching…", then the text as it streams in, then the checked answer with its citations
    assert page.evaluate("window.__states") == ["pending", "streaming", "found"]
    link = answer.locator("a.cite").first
    marker = link.inner_text().strip("[]")
    link.click()
    passage = page.locator(f"#sources-panel details#src-1-{marker}")
    passage.wait_for(state="visible")
    assert passage.evaluate("d => d.open")
    assert page.locator('button[role="tab"][data-tab-id="sources"]').get_attribute("aria-selected") == "true"
    # the passage shows its title and file, and highlights the sentence the answer quotes
    summary = passage.locator("summary").inner_text()
    assert ".txt" in summary
    highlighted = passage.locator("mark").first.inner_text()
    assert highlighted and highlighted in answer.inner_text()
    assert page.locator("#sources-panel details.source:visible").count() == 5  # top-k passages listed
    # the page loads nothing from outside the machine
    assert [u for u in page.requests_seen if not u.startswith(("http://127.0.0.1", "data:", "blob:"))] == []


def test_not_found_answer_looks_different(page):
    answer = ask(page, UNANSWERABLE)
    assert "notfound" in answer.get_attribute("class")
    assert "Not found in the documents" in answer.inner_text()
    assert answer.locator("a.cite").count() == 0


def test_follow_up_question_and_citations_of_earlier_answers(page):
    first = ask(page, SEED_QUESTION)
    follow = ask(page, "Why is it a barrier?")
    assert "found" in follow.get_attribute("class").split()
    assert "chip" in follow.inner_text().lower()
    # a citation in the first answer shows the first answer's passages again
    first.locator("a.cite").first.click()
    page.wait_for_selector("#sources-panel section.turn.current[data-turn='1'] details[open]")
    assert page.locator("#sources-panel section.turn[data-turn='2']").is_hidden()


def test_questions_answered_during_reindex(page, app):
    import threading

    release = threading.Event()
    job = app.job
    assert job.start("Re-indexing test-docs", lambda progress: (progress("embed", 1, 4), release.wait(60)))
    try:
        answer = ask(page, SEED_QUESTION)  # an indexed store keeps answering while a run is under way
        assert "found" in answer.get_attribute("class").split()
        assert job.running
    finally:
        release.set()
    while job.running:
        time.sleep(0.05)


def test_questions_wait_for_first_indexing_and_can_be_stopped(page, app, monkeypatch):
    import threading

    release = threading.Event()
    job = app.job
    assert job.start("Indexing test-docs", lambda progress: (progress("embed", 1, 4), release.wait(60)))
    monkeypatch.setattr(app.bot, "documents", lambda: [])  # as on a first start: nothing indexed yet
    try:
        # progress shows at the top of the page, and a question waits for the run to finish
        page.reload()
        page.wait_for_selector("#top-status .progress")
        assert "Indexing test-docs" in page.locator("#top-status").inner_text()
        assert page.locator("#top-status [role=progressbar]").get_attribute("aria-valuenow") == "25"
        page.fill("#question textarea", SEED_QUESTION)
        page.click("#ask")
        page.wait_for_function(
            "document.querySelector('#chat .answer.pending')?.innerText.includes('Waiting for indexing')")
        page.get_by_role("button", name="Stop").click()
        page.wait_for_selector("#chat .answer.stopped")
        assert "Stopped" in page.locator("#chat .answer.stopped").inner_text()
    finally:
        release.set()
        monkeypatch.undo()
    while job.running:
        time.sleep(0.05)
    answer = ask(page, SEED_QUESTION)  # the next question is answered as usual
    assert "found" in answer.get_attribute("class").split()


def test_top_k_setting_changes_the_passages_used(page):
    open_tab(page, "settings")
    slider = page.locator("#top-k input[type=number]")
    # The settings tab says back what the next answer uses once the server has the value. Typing into
    # a tab that is still being drawn can be lost, so type again until it is taken.
    taken = "document.querySelector('#settings-in-use').innerText.includes('2 passages')"
    for _ in range(5):
        slider.fill("2")
        slider.press("Enter")
        try:
            page.wait_for_function(taken, timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - not taken yet: type again
            continue
    assert page.evaluate(taken)
    ask(page, SEED_QUESTION)
    open_tab(page, "sources")
    # The panel is redrawn for the new turn right after the answer: wait for it rather than race it.
    current = "#sources-panel section.turn.current details.source"
    page.wait_for_function(f"document.querySelectorAll({current!r}).length === 2", timeout=15_000)
    assert page.locator(current).count() == 2


def test_reindex_button_reports_the_run(page, app):
    open_tab(page, "documents")
    page.wait_for_function("document.querySelector('#docs-table').innerText.includes('5 documents')")
    page.click("#reindex")
    page.wait_for_function("document.querySelector('#doc-message').innerText.includes('Index up to date')",
                           timeout=60_000)
    assert "0 added, 0 updated, 0 removed, 5 unchanged" in page.locator("#doc-message").inner_text()
    assert "all-MiniLM-L6-v2" in page.locator("#index-info").inner_text()
    status = app.bot.status()
    assert f"{status['documents']} documents, {status['chunks']} chunks" in page.locator("#index-info").inner_text()


def test_upload_ask_delete(page, app, tmp_path):
    bot, docs = app.bot, app.docs
    doc = tmp_path / "Zorblax notes.txt"
    doc.write_text("Zorblax reactor\nThe Zorblax reactor in Tallinn produces 42 megawatts of blue hydrogen "
                   "power every day.\n")
    upload(page, doc, "Zorblax_notes.txt")
    assert (docs / "Zorblax_notes.txt").exists()
    assert "Added Zorblax_notes.txt" in page.locator("#doc-message").inner_text()
    answer = ask(page, "How many megawatts does the Zorblax reactor produce?")
    assert "42 megawatts" in answer.inner_text()
    assert "Zorblax_notes.txt" in page.locator("#sources-panel section.turn.current").inner_text()

    open_tab(page, "documents")
    page.click("#doc-choice input")
    page.locator("#doc-choice input").fill("Zorblax")
    page.get_by_role("option", name="Zorblax reactor — Zorblax_notes.txt").click()
    page.click("#delete")
    page.wait_for_function("!document.querySelector('#docs-table').innerText.includes('Zorblax')",
                           timeout=60_000)
    assert not (docs / "Zorblax_notes.txt").exists()
    assert "Zorblax_notes.txt" not in {e.doc_id for e in bot.documents()}
    answer = ask(page, "How many megawatts does the Zorblax reactor produce?")
    assert "Zorblax" not in answer.inner_text()
    open_tab(page, "sources")
    assert "Zorblax_notes.txt" not in page.locator("#sources-panel section.turn.current").inner_text()


def test_script_in_a_document_never_runs(page, app, tmp_path):
    bot = app.bot
    doc = tmp_path / "pwn.txt"
    doc.write_text(
        '<img src=x onerror="window.__pwned=1"> Quibbleflux notes\n'
        "The Quibbleflux festival in Lund celebrates purple turnips every October. "
        "<script>window.__pwned=2</script> <img src=x onerror=\"window.__pwned=3\"> "
        "[more](javascript:window.__pwned=4)\n"
    )
    upload(page, doc, "Quibbleflux")
    answer = ask(page, "What does the Quibbleflux festival in Lund celebrate?")
    assert "purple turnips" in answer.inner_text()
    answer.locator("a.cite").first.click()
    passage = page.locator("#sources-panel section.turn.current details[open]").first
    passage.wait_for(state="visible")
    text = passage.inner_text()
    assert "<script>window.__pwned=2</script>" in text and 'onerror="window.__pwned=3"' in text
    open_tab(page, "documents")
    assert '<img src=x onerror="window.__pwned=1">' in page.locator("#docs-table").inner_text()
    time.sleep(0.5)  # an onerror handler would have fired by now
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    bot.delete_document("pwn.txt")


def test_gradio_client_ask_endpoint(app, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = Client(app.url, verbose=False)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/ask"}

    job = client.submit(SEED_QUESTION, 3, "extractive", [], api_name="/ask")
    updates = list(job)
    final = job.result()
    assert updates and updates[-1] == final
    assert any(u["done"] is False and u["answer"] for u in updates)
    assert final["done"] and final["answered"] and final["generator"] == "extractive"
    assert len(final["sources"]) == 3
    from rag.citations import markers_in

    assert set(markers_in(final["answer"])) <= {s["marker"] for s in final["sources"]}
    assert {"doc_id", "file_name", "title", "text", "start", "end", "score"} <= set(final["sources"][0])

    history = [{"role": "user", "content": SEED_QUESTION}, {"role": "assistant", "content": final["answer"]}]
    follow = client.predict("Why is it a barrier?", 0, "", history, api_name="/ask")
    assert follow["answered"] and "chip" in follow["answer"].lower()

    with pytest.raises(Exception, match="Please type a question"):
        client.predict("   ", 0, "", [], api_name="/ask")
    with pytest.raises(Exception, match="top_k must be a whole number from 1 to 50"):  # the API checks it
        client.predict(SEED_QUESTION, 500, "", [], api_name="/ask")
