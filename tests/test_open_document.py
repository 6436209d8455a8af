"""A citation opens its document where it points: the real app on a loopback port with RAG_AUTH set,
over a folder with a scanned PDF and a Word file. Over HTTP: /document/ serves only indexed files
of the documents folder, only after a login; in Debian's chromium: the answer's "p. 2" link opens
the PDF at #page=2."""

from __future__ import annotations

import http.cookiejar
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

import pytest

from .test_readers import VAULT, make_docx, scanned_pdf
from .test_ui_browser import CHROMIUM_ARGS, ask

pytestmark = pytest.mark.slow
USER, PASSWORD = "alice", "open-Sesame-42"
QUESTION = "How many golden spoons does the Tallinn vault hold?"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from rag import RAG
    from ui.app import launch

    base = tmp_path_factory.mktemp("open")
    docs = base / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(scanned_pdf("Annual report of the Zorblax mining company for 2024.", VAULT))
    make_docx(docs / "report.docx")
    (docs / "slides.key").write_bytes(b"not read")
    (docs / ".env").write_text("SECRET=1")
    (base / "secret.txt").write_text("outside the documents folder")
    bot = RAG(docs_dir=docs, store_dir=base / "store", generator="extractive", auth=f"{USER}:{PASSWORD}")
    demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)
    while job.running:
        time.sleep(0.1)
    assert job.error is None and bot.status()["documents"] == 2
    yield SimpleNamespace(url=url, bot=bot)
    demo.close()


def _opener(url: str, login: bool):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    if login:
        form = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
        assert opener.open(f"{url}/login", data=form, timeout=10).status == 200
    return opener


def _status(opener, url: str) -> int:
    try:
        return opener.open(url, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_document_route_serves_indexed_files_to_a_logged_in_user_only(app):
    assert _status(_opener(app.url, login=False), f"{app.url}/document/scan.pdf") == 401
    user = _opener(app.url, login=True)
    with user.open(f"{app.url}/document/scan.pdf", timeout=30) as reply:
        assert reply.headers["Content-Type"] == "application/pdf"
        assert reply.headers["Content-Disposition"].startswith("inline")
        assert reply.read().startswith(b"%PDF")
    # a Word file opens as its text, the cited span marked, nothing in it able to run
    source = next(s for s in app.bot.retrieve("How many defects were found at the North site?")
                  if s.doc_id == "report.docx")
    with user.open(f"{app.url}/document/report.docx?start={source.start}&end={source.end}", timeout=30) as reply:
        page = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    assert '<mark id="passage">' in page and "| North | 12 |" in page
    with user.open(f"{app.url}/document/report.docx?download=1", timeout=30) as reply:
        assert reply.headers["Content-Disposition"].startswith("attachment") and reply.read()[:2] == b"PK"
    # only what the index holds, only from the documents folder
    for path in ("slides.key", ".env", "..%2Fsecret.txt", "%2E%2E/secret.txt", "%2Fetc%2Fpasswd", "nothing.pdf"):
        assert _status(user, f"{app.url}/document/{path}") == 404, path


def test_clicking_a_pdf_citation_opens_the_document_at_its_page(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            login = context.request.post(f"{app.url}/login", form={"username": USER, "password": PASSWORD})
            assert login.ok
            page = context.new_page()
            page.goto(app.url)
            page.wait_for_selector("#question textarea")
            answer = ask(page, QUESTION)
            assert "4,812" in answer.inner_text()
            link = answer.locator("a.open-doc").first
            assert link.inner_text() == "p. 2 (OCR)"  # the place, beside the cited source
            with page.expect_popup() as opened:
                link.click()
            assert opened.value.url == f"{app.url}/document/scan.pdf#page=2"
            # the passage in the Sources tab links to the same place
            page.click('button[role="tab"][data-tab-id="sources"]')
            passage = page.locator("#sources-panel section.turn.current details.source").first
            assert passage.locator("a.open-doc").get_attribute("href") == "document/scan.pdf#page=2"
            assert "p. 2 (OCR)" in passage.locator("summary").inner_text()
        finally:
            browser.close()
