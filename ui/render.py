"""Answers, sources and the document list as HTML for the browser, from the Jinja2 templates in
ui/templates/ (autoescaped).

Every piece of text that comes from a document, a question or a model passes through `esc` (the
templates' `|text` filter; autoescape catches any that does not), so a `<script>` or
`<img onerror>` in a document shows as text and never runs. Chat messages are single HTML blocks
with no blank line inside: the chatbot's Markdown renderer then leaves them alone, so Markdown in a
document (`[x](javascript:...)`, `*`, `$$`) is inert too. To keep them so, template lines are
joined with their indentation removed (`_OneLine`): every template renders one line of HTML."""

import html
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2.ext import Extension
from markupsafe import Markup

NOT_FOUND_HINT = "Try other words, or add a document that covers it in the Documents tab."
TEMPLATES = Path(__file__).resolve().parent / "templates"


def esc(text) -> str:
    """Text -> inert HTML on one line (newlines become <br>)."""
    return html.escape(str(text or ""), quote=True).replace("\r", "").replace("\n", "<br>")


def source_anchor(turn: int, marker: int) -> str:
    return f"src-{turn}-{marker}"


class _OneLine(Extension):
    """Joins each template's source lines with their indentation removed, so the templates can be
    laid out on several lines and still render one line of HTML (a blank line would end the chat
    message's HTML block and hand the rest to the Markdown renderer)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return "".join(line.strip() for line in source.splitlines())


def _cut(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """text as (piece, inside one of spans) pieces, in order."""
    out, last = [], 0
    for s, e in spans:
        out += [(text[last:s], False), (text[s:e], True)]
        last = e
    return out + [(text[last:], False)]


def document_url(source) -> str:
    """Where a citation's source opens (ui/files.py): a PDF at its page (`#page=7`), an image as it
    is, any other file as its text with the passage marked and scrolled to. Relative to the page."""
    url = "document/" + quote(source.doc_id)
    suffix = PurePosixPath(source.doc_id).suffix.lower()
    if suffix == ".pdf":
        return url + (f"#page={source.page}" if source.page else "")
    if suffix in (".png", ".jpg", ".jpeg"):
        return url
    return f"{url}?start={source.start}&end={source.end}#passage"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, extensions=[_OneLine],
                          undefined=jinja2.StrictUndefined)
_ENV.filters["text"] = lambda value: Markup(esc(value))
_ENV.globals.update(anchor=source_anchor, cut=_cut, when=_when, not_found_hint=NOT_FOUND_HINT,
                    document_url=document_url)


def _render(template: str, macro: str, *args: Any) -> str:
    """A macro of ui/templates/<template> as a plain str (a Markup would escape what it is joined with)."""
    return str(getattr(_ENV.get_template(template).module, macro)(*args))


# ---- chat messages ----------------------------------------------------------------------------
def question_html(question: str) -> str:
    return _render("chat.html", "question", question)


def pending_html(note: str = "Searching the documents…") -> str:
    return _render("chat.html", "pending", note)


def streaming_html(text: str) -> str:
    return _render("chat.html", "streaming", text)


def stopped_html(previous: str) -> str:
    """The answer bubble of a question the user stopped: what had streamed in stays, marked."""
    if 'class="answer streaming"' in previous:
        return (previous.replace('class="answer streaming"', 'class="answer stopped"', 1)
                .replace('<span class="cursor"></span>', ' <span class="stopped-note">(stopped)</span>'))
    return _render("chat.html", "stopped")


def error_html(message: str) -> str:
    return _render("chat.html", "error", message)


def answer_html(answer, turn: int) -> str:
    """The checked answer: [n] markers link to their passages; a not-found answer looks different."""
    return _render("chat.html", "answer", answer, turn)


# ---- sources panel ----------------------------------------------------------------------------
def passage_html(text: str, spans: list[tuple[int, int]]) -> str:
    """The passage with its supporting sentences (spans) marked."""
    return _render("sources.html", "passage", text, spans)


def sources_html(answers: list, current: int | None = None) -> str:
    """The passages behind every answer of the session (turn n = answers[n-1]); only `current`
    (default: the latest) is shown until a citation of another answer is clicked."""
    return _render("sources.html", "panel", answers, current or len(answers))


# ---- documents panel --------------------------------------------------------------------------
def documents_html(entries: list) -> str:
    return _render("documents.html", "table", entries)


# ---- a cited document's text (ui/files.py) -------------------------------------------------------
def document_html(doc, span: tuple[int, int] | None, current: bool) -> str:
    """A whole page: the document's text as the index read it, the span [start, end) marked with
    id="passage" (the link's #passage scrolls to it); current: the file is the version indexed."""
    text = doc.text
    pieces = [(text, False)]
    if span is not None:
        start, end = max(0, min(span[0], len(text))), max(0, min(span[1], len(text)))
        if end > start:
            pieces = [(text[:start], False), (text[start:end], True), (text[end:], False)]
    return _render("document.html", "page", doc, pieces, current)


def status_html(info: dict) -> str:
    gen = info.get("generator", "")
    if info.get("model"):
        gen += f" ({info['model']})"
    store_bytes = info.get("store_bytes")
    size = f" · {store_bytes / 1e6:.1f} MB on disk" if store_bytes is not None else ""
    rows = [
        ("Index", f"{info.get('documents', 0)} documents, {info.get('chunks', 0)} chunks{size}"),
        ("Embedding model", info.get("embedding_model", "")),
        ("Generator", gen + (f" — {info['note']}" if info.get("note") else "")),
        ("Documents folder", info.get("docs_dir", "")),
        ("Store", info.get("store", "")),
    ]
    if str(info.get("store", "")).startswith("chroma server"):  # shared: which version, who writes it
        rows.append(("Index version", str(info.get("index_version", ""))))
    if info.get("writing"):
        rows.append(("Being indexed by", info["writing"]))
    return _render("status.html", "summary", rows)


def progress_text(stage: str, done: int, total: int) -> str:
    if stage == "embed":
        return f"reading and embedding {done}/{total} documents" if total else "no new or changed documents"
    if stage == "bm25":
        return "updating the keyword index"
    if stage == "ocr":
        return f"reading scanned pages by OCR: {done}/{total}"
    return "checking the documents folder"


def progress_html(label: str, stage: str, done: int, total: int) -> str:
    pct = int(100 * done / total) if total else 0
    return _render("status.html", "progress", label, progress_text(stage, done, total), pct)


def banner_html(kind: str, text: str) -> str:
    return _render("status.html", "banner", kind, text)
