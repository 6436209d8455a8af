"""Titles are headlines (rag/titles.py) and page furniture stays out of the chunks and the answers
(rag/boilerplate.py), with chunk offsets still pointing into the text the UI shows."""

from __future__ import annotations

import io
import shutil

import pytest

from rag.boilerplate import content_regions, furniture_text, is_boilerplate
from rag.documents import load_document, parse_bytes
from rag.text import split_sentences
from rag.titles import html_title, text_title

from .conftest import SEEDS
from .test_documents import make_pdf

BANNER_SEED = "001_044b7d87bb8897ac.txt"


def _lines(name: str) -> list[str]:
    return [ln.strip() for ln in (SEEDS / name).read_text(encoding="utf-8").splitlines() if ln.strip()]


def _title(name: str) -> str:
    return load_document(SEEDS / name, SEEDS, 10**7).title


# ---- the seeds ------------------------------------------------------------------------------
def test_the_banner_seed_is_titled_by_its_headline_not_its_ad_banner():
    banner, headline = _lines(BANNER_SEED)[:2]
    assert "LEARN MORE" in banner and "COMING SOON" in banner  # the scraped ad the issue names
    assert _title(BANNER_SEED) == headline != banner
    assert "self-reliance" in headline


@pytest.mark.parametrize("name", ["000_50d618d39dec71f2.txt", "002_5cb3d4ab21543548.txt",
                                  "003_0a604f4358db9a5d.txt"])
def test_seeds_with_a_headline_line_are_titled_by_it(name):
    first = _lines(name)[0]
    assert len(first) < 100 and not first.endswith(".")  # a headline, not a paragraph
    assert _title(name) == first


def test_a_seed_that_starts_with_its_first_paragraph_is_titled_by_its_first_sentence():
    first = _lines("004_37bcc427096d2522.txt")[0]
    s, e = split_sentences(first)[0]
    assert len(first) > 150 and e < len(first)  # the line is a paragraph of several sentences
    assert _title("004_37bcc427096d2522.txt") == first[s:e]


def test_every_seed_title_is_short_and_no_title_is_furniture():
    for path in sorted(SEEDS.iterdir()):
        title = _title(path.name)
        assert 10 < len(title) <= 100 and not is_boilerplate(title), (path.name, title)


# ---- HTML, PDF, Markdown, text --------------------------------------------------------------
def test_html_prefers_og_title_then_h1_over_a_title_with_the_site_name():
    body = "<p>The council approved the budget on Tuesday after a long debate.</p>"
    og = (b'<html><head><title>Budget passes | Springfield Herald</title>'
          b'<meta property="og:title" content="Budget passes after a long debate"></head><body>'
          + body.encode() + b"</body></html>")
    assert parse_bytes(og, "a.html")[1] == "Budget passes after a long debate"
    h1 = (b"<html><head><title>Budget passes after a long debate - Springfield Herald</title></head>"
          b"<body><div>Advertisement</div><h1>Budget passes after a long debate</h1>" + body.encode() + b"</body>")
    assert parse_bytes(h1, "b.html")[1] == "Budget passes after a long debate"
    plain = b"<html><head><title>Annual report 2024 | Acme Corp</title></head><body>" + body.encode() + b"</body>"
    assert parse_bytes(plain, "c.html")[1] == "Annual report 2024"
    # a <title> that is its own thing (no site name, not the h1) is kept
    assert html_title("<title>Minutes of the March meeting</title><h1>Agenda</h1>") == "Minutes of the March meeting"


def test_html_without_title_or_h1_takes_the_first_headline_line_of_its_text():
    page = (b"<body><div>Share</div><div>Subscribe to our newsletter for updates</div>"
            b"<p>Rainfall records broken in Kerala</p><p>Heavy rain fell on Monday across the state.</p></body>")
    assert parse_bytes(page, "d.html")[1] == "Rainfall records broken in Kerala"


def _with_metadata(pdf: bytes, title: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_title_comes_from_its_metadata_unless_that_is_a_file_name():
    pdf = make_pdf("Solar output rose by a third in 2024 across the northern provinces")
    assert parse_bytes(_with_metadata(pdf, "Solar Power Review 2024"), "r.pdf")[1] == "Solar Power Review 2024"
    for junk in ("Microsoft Word - draft3.docx", "untitled", "report_final.pdf"):
        title = parse_bytes(_with_metadata(pdf, junk), "r.pdf")[1]
        assert title.startswith("Solar output rose"), junk


def test_markdown_title_is_its_first_heading_even_below_a_badge_line():
    md = ("[![build](https://ci.example/badge.svg)](https://ci.example)\n\n# Deployment guide\n\n"
          "## Requirements\n\nPython 3.11.\n")
    assert parse_bytes(md.encode(), "guide.md")[1] == "Deployment guide"
    front = "---\ntitle: Release notes 2.0\n---\n\nSome text.\n\n# Changes\n"
    assert parse_bytes(front.encode(), "notes.md")[1] == "Release notes 2.0"
    underlined = "Install steps\n=============\n\nRun the script.\n"
    assert parse_bytes(underlined.encode(), "steps.markdown")[1] == "Install steps"


@pytest.mark.parametrize("junk", [
    "COMING SOON: A New Way to Earn Passive Income with DeFi in 2025 LEARN MORE",
    "Share", "Share this article", "Subscribe", "2023/01/05", "March 3, 2024", "https://example.com/news/1",
    "By Jane Smith", "Advertisement", "Sign up for our daily newsletter here",
])
def test_plain_text_title_passes_over_furniture_lines(junk):
    text = f"{junk}\n\nFloods close schools in Valencia\n\nSchools across Valencia closed on Monday after floods.\n"
    assert text_title(text) == "Floods close schools in Valencia"


def test_site_name_after_a_bar_is_dropped_but_a_dash_in_a_headline_stays():
    assert text_title("Food packaging contains dangerous chemicals, report says | CNN\n\nBody.") == (
        "Food packaging contains dangerous chemicals, report says")
    assert text_title("Dahmer - Monster: The Jeffrey Dahmer Story wins\n\nBody.") == (
        "Dahmer - Monster: The Jeffrey Dahmer Story wins")


# ---- furniture --------------------------------------------------------------------------------
def test_furniture_found_in_the_banner_seed_and_the_reference_list_kept():
    banner = furniture_text((SEEDS / BANNER_SEED).read_text(encoding="utf-8"))
    assert banner[0].startswith("COMING SOON") and "Share link:" in banner and "Subscribe to CryptoPolitan" in banner
    assert any(line.startswith("See also") for line in banner)
    assert not any(line.startswith("In this post") for line in banner)  # the article's own summary stays
    refs = furniture_text((SEEDS / "002_5cb3d4ab21543548.txt").read_text(encoding="utf-8"))
    assert len(refs) == 2 and "subscribe for updates" in refs[0] and refs[1].startswith("China AI self-sufficiency,")
    # the reference list is asked about ("which outlets are cited?"): indexed, and evidence.py never quotes it
    assert not any(line.startswith(("References", "3. France 24")) for line in refs)
    for name in ("000_50d618d39dec71f2.txt", "003_0a604f4358db9a5d.txt", "004_37bcc427096d2522.txt"):
        assert furniture_text((SEEDS / name).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line", [
    "Officials want to learn more about the outbreak.",
    "More than 2 million people subscribe to the service, the company said.",
    "Current season subscribers can renew their season tickets now.",
    '"Join us in support of the team," the club wrote in a tweet.',
    "Oreo and Ritz giving away free cookie-cracker snack",
    "Related to this, the ministry said exports fell.",
    "Share prices fell 3% on Monday as investors sold bank stocks.",
])
def test_prose_that_mentions_such_words_is_not_furniture(line):
    assert not is_boilerplate(line)


def test_a_page_that_is_all_furniture_is_still_indexed_whole():
    text = "Share\n\nSubscribe to our newsletter here\n"
    assert content_regions(text) == [(0, len(text.rstrip()))]


PAGE = """COMING SOON: Earn Passive Income with Crypto Staking in 2025 LEARN MORE

Port of Rotterdam opens hydrogen terminal

Share this article

The Port of Rotterdam opened a hydrogen import terminal on Tuesday. The terminal can handle four
million tonnes of hydrogen a year by 2030, the port authority said.

See also  Ten ways to earn passive income with crypto staking

Shipping firms Maersk and MSC signed the first contracts for the terminal.

Share link:

Subscribe to our newsletter and get passive income tips straight to your inbox.
"""
FURNITURE = ["COMING SOON", "LEARN MORE", "Share this article", "See also", "Share link", "Subscribe", "inbox"]


@pytest.fixture(scope="module")
def page_bot(tmp_path_factory):
    from rag import RAG

    root = tmp_path_factory.mktemp("furniture")
    docs = root / "docs"
    docs.mkdir()
    (docs / "rotterdam.txt").write_text(PAGE, encoding="utf-8")
    shutil.copy(SEEDS / BANNER_SEED, docs / BANNER_SEED)
    shutil.copy(SEEDS / "002_5cb3d4ab21543548.txt", docs / "002_5cb3d4ab21543548.txt")
    bot = RAG(docs_dir=docs, store_dir=root / "store", generator="extractive")
    bot.index()
    return bot


def test_furniture_is_in_no_chunk_and_offsets_point_into_the_shown_text(page_bot):
    docs = page_bot.settings.docs_dir
    by_doc = {e.doc_id: e for e in page_bot.documents()}
    assert by_doc["rotterdam.txt"].title == "Port of Rotterdam opens hydrogen terminal"
    assert by_doc[BANNER_SEED].title == _lines(BANNER_SEED)[1]
    for doc_id in by_doc:
        text = load_document(docs / doc_id, docs, 10**7).text
        sources = page_bot.retrieve("passive income crypto staking share subscribe newsletter", top_k=50,
                                    doc_ids=[doc_id])
        assert sources
        for s in sources:
            assert text[s.start:s.end] == s.text  # citation offsets point into the document as shown
            assert not any(word in s.text for word in FURNITURE), s.text
            assert s.title == by_doc[doc_id].title


def test_answers_never_cite_furniture(page_bot):
    for question in ("How can I earn passive income with crypto staking?", "Who signed contracts for the terminal?",
                     "How much hydrogen can the Rotterdam terminal handle?",
                     "What new way to earn passive income with DeFi is coming soon?"):
        answer = page_bot.ask(question)
        cited = " ".join(s.text for s in answer.sources)
        assert not any(word in answer.answer or word in cited for word in FURNITURE), (question, answer.answer)
    answer = page_bot.ask("Who signed the first contracts for the hydrogen terminal?")
    assert answer.answered and "Maersk" in answer.answer


def test_a_reference_list_is_searchable_and_quoted_only_when_sources_are_asked_for(page_bot):
    question = "Which outlets are listed as references for “Xi says China must overcome AI chip challenges”?"
    retrieved = " ".join(s.text for s in page_bot.retrieve(question, top_k=5))
    assert "France 24" in retrieved and "Inquirer Business" in retrieved
    answer = page_bot.ask(question)
    assert "Link" not in answer.answer and ", “" in answer.answer, answer.answer  # "Outlet, “Title.”"
    other = page_bot.ask("What does China want to embed AI into?")
    assert "France 24" not in other.answer and "Link" not in other.answer, other.answer


def test_a_first_line_opening_like_a_weekday_is_no_date_and_takes_no_time():
    from rag.titles import looks_like_furniture

    # "Mon..." once let the date pattern split every following word every way (a hang on SciFact)
    line = "Montelukast is a leukotriene receptor antagonist used in asthma and allergic rhinitis worldwide"
    assert not looks_like_furniture(line)
    assert looks_like_furniture("Monday, March 3, 2025 10:30 am EST")
