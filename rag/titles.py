"""A document's title: its real headline, the one every citation shows.

HTML says it in `og:title`, `<h1>` or `<title>` (the last often with the site's name appended),
a PDF in its metadata (when that is not "Microsoft Word - draft3.docx"), Markdown in its first
heading. Plain text says it nowhere: the title is the first line that reads like a headline,
passing over what scraped pages put above it (an ad banner, "Share", a date, a URL, a byline).
A text with no such line (it starts straight into its first paragraph) is titled by its first
sentence."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from .boilerplate import is_boilerplate
from .text import split_sentences

_MAX_TITLE = 200
_SCAN_LINES = 12  # a headline further down than this is not the page's headline
_HEADLINE_CHARS = 150
_HEADLINE_WORDS = 25

_DATE = re.compile(
    r"^\W*(\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|(mon|tue|wed|thu|fri|sat|sun)\w*,?|"
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)\w*\.? \d{1,2},? \d{4}|"
    r"\d{1,2} (jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)\w* \d{4})"
    # each trailing part after a separator and whole: "[\s,]*" let "Montelukast ..." split every way
    r"([\s,]+(\d{1,2}:\d{2}\s*(am|pm)?|\d{1,2}(st|nd|rd|th)?|\d{4}|[A-Z]{2,4}|updated|published|"
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?)\b)*\W*$", re.I)
_URL = re.compile(r"^\W*(https?://|www\.)\S+\W*$|^\S+\.(com|org|net|io|co\.uk)\S*$", re.I)
_BYLINE = re.compile(r"^\W*(by|posted by|written by|photo:|image:|credit:)\s", re.I)
_NAV = re.compile(r"^\W*(home|menu|search|share|subscribe|sign in|log in|skip to( main)? content|close)\W*$", re.I)
# " | CNN", " | The Week UK": a site name after a bar; pages rarely put a bar in a headline itself.
_SITE_BAR = re.compile(r"\s+\|\s+([^|]{1,40})$")
# " - Site Name" after an HTML <title> (short, no colon): "Budget approved - Springfield Herald".
_SITE_DASH = re.compile(r"\s+[-–—]\s+([^-–—:|]{1,30})$")
_PDF_JUNK = re.compile(r"^(microsoft (word|powerpoint|excel) - |untitled\b|document\d*$|slide \d+$|"
                       r"(powerpoint )?presentation\d*$|title$|no title$)|"
                       r"\.(docx?|pptx?|xlsx?|pdf|odt|tex|indd|qxd)$", re.I)


def clean(title: str) -> str:
    """One line, no Markdown heading marks, no trailing site name after a bar, at most 200 chars."""
    title = " ".join(title.replace("\u00a0", " ").split()).strip()
    title = re.sub(r"^#+\s*", "", title).strip()
    m = _SITE_BAR.search(title)
    if m and len(title[: m.start()].split()) >= 3 and len(m.group(1).split()) <= 4:
        title = title[: m.start()].rstrip()
    if len(title) > _MAX_TITLE:
        title = title[:_MAX_TITLE].rsplit(" ", 1)[0] + "…"
    return title


def looks_like_furniture(line: str) -> bool:
    """A line that is not a headline wherever it stands: a banner, a share or subscribe line, a
    date, a URL, a byline, a navigation word."""
    line = line.strip()
    return bool(is_boilerplate(line) or _DATE.match(line) or _URL.match(line) or _BYLINE.match(line)
                or _NAV.match(line))


def _is_headline(line: str) -> bool:
    words = line.split()
    if not 2 <= len(words) <= _HEADLINE_WORDS or len(line) > _HEADLINE_CHARS:
        return False
    # Headlines may hold two short sentences ("Prices are up. Here's why"); a paragraph is longer.
    if line.endswith(".") and not line.endswith("...") and len(line) > 100 and len(split_sentences(line)) > 1:
        return False
    return not looks_like_furniture(line)


def _first_sentence(line: str) -> str:
    spans = split_sentences(line)
    return line[spans[0][0]: spans[0][1]] if spans else line


def text_title(text: str) -> str:
    """The first line that reads like a headline, passing over furniture; when a paragraph comes
    first, that paragraph's first sentence; failing all, the first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines[:_SCAN_LINES]:
        if looks_like_furniture(line):
            continue
        if _is_headline(re.sub(r"^#+\s*", "", line)):
            return clean(line)
        return clean(_first_sentence(line))  # the body has begun: no headline above it
    return clean(lines[0]) if lines else ""


def markdown_title(text: str) -> str:
    """Front matter `title:`, else the first `#` heading (or `===` underlined line) near the top."""
    front = re.match(r"\A---\s*\n(.*?)\n---\s*\n", text, re.S)
    if front:
        m = re.search(r"^title:\s*[\"']?(.+?)[\"']?\s*$", front.group(1), re.M)
        if m:
            return clean(m.group(1))
    lines = text.splitlines()[:60]
    for i, line in enumerate(lines):
        if re.match(r"^#\s+\S", line):
            return clean(line)
        if i + 1 < len(lines) and line.strip() and re.match(r"^=+\s*$", lines[i + 1]):
            return clean(line)
    for line in lines:
        if re.match(r"^#{2,6}\s+\S", line):
            return clean(line)
    return ""


class _HeadParts(HTMLParser):
    """og:title / twitter:title, <title> and the first <h1> of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: list[str] = []
        self.h1: list[str] = []
        self._in: str | None = None
        self._h1_done = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or "").lower()
            if key in ("og:title", "twitter:title") and a.get("content"):
                self.meta.setdefault(key, a["content"])
        elif tag == "title" and not self.title:
            self._in = "title"
        elif tag == "h1" and not self._h1_done:
            self._in = "h1"

    def handle_endtag(self, tag):
        if tag == self._in:
            self._h1_done = self._h1_done or tag == "h1"
            self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title.append(data)
        elif self._in == "h1":
            self.h1.append(data)


def html_title(source: str) -> str:
    """og:title, else the <h1> when the <title> is that headline plus the site's name (or is
    missing or furniture), else the <title> without a trailing site name."""
    parser = _HeadParts()
    try:
        parser.feed(source)
        parser.close()
    except Exception:  # noqa: BLE001 - a broken page still has its text; the title falls back
        return ""
    og = clean(parser.meta.get("og:title") or parser.meta.get("twitter:title") or "")
    if og and not looks_like_furniture(og):
        return og
    title = " ".join("".join(parser.title).split())
    h1 = clean("".join(parser.h1))
    if h1 and not looks_like_furniture(h1) and (
            not title or h1.lower() in title.lower() or looks_like_furniture(title)
            or _SITE_BAR.search(title) or _SITE_DASH.search(title)):
        return h1
    m = _SITE_DASH.search(title)
    if m and len(title[: m.start()].split()) >= 3 and len(m.group(1).split()) <= 4:
        title = title[: m.start()]
    return clean(title) if title else h1


def pdf_title(data: bytes) -> str:
    """The title in a PDF's metadata, unless it is a file name or a placeholder."""
    try:
        from pypdf import PdfReader

        meta = PdfReader(io.BytesIO(data)).metadata
        title = str(meta.get("/Title") or "") if meta is not None else ""
    except Exception:  # noqa: BLE001 - a PDF whose metadata cannot be read is titled by its text
        return ""
    title = clean(title)
    if not title or _PDF_JUNK.search(title) or looks_like_furniture(title) or not re.search(r"\w", title):
        return ""
    return title


def document_title(file_name: str, text: str, data: bytes | None = None, html_source: str | None = None,
                   declared: str = "") -> str:
    """The title of a document by its type: HTML from its head and <h1>, PDF from its metadata, an
    Office file from what its reader found declared (core properties) unless it is a placeholder;
    failing those, and for every other kind, the first Markdown heading (not in .txt) or headline."""
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    title = ""
    if suffix in ("html", "htm") and html_source is not None:
        title = html_title(html_source)
    elif suffix == "pdf" and data is not None:
        title = pdf_title(data)
    if not title and declared and suffix not in ("html", "htm"):
        declared = clean(declared)
        title = "" if _PDF_JUNK.search(declared) or looks_like_furniture(declared) else declared
    if not title and suffix != "txt":
        title = markdown_title(text)
    return title or text_title(text)
