"""Answers, sources and the document list as HTML for the browser.

Every piece of text that comes from a document, a question or a model passes through `esc`, so a
`<script>` or `<img onerror>` in a document shows as text and never runs. Chat messages are single
HTML blocks with no blank line inside: the chatbot's Markdown renderer then leaves them alone, so
Markdown in a document (`[x](javascript:...)`, `*`, `$$`) is inert too."""

import html
import re
import time

from rag.citations import MARKER, markers_in, support
from rag.sentences import split_sentences

NOT_FOUND_HINT = "Try other words, or add a document that covers it in the Documents tab."


def esc(text) -> str:
    """Text -> inert HTML on one line (newlines become <br>)."""
    return html.escape(str(text or ""), quote=True).replace("\r", "").replace("\n", "<br>")


def source_anchor(turn: int, marker: int) -> str:
    return f"src-{turn}-{marker}"


def _cite_link(turn: int, marker: int, label: str = "") -> str:
    return (f'<a class="cite" href="#{source_anchor(turn, marker)}" title="Show passage {marker}">'
            f"&#91;{marker}&#93;{label}</a>")


def _with_links(text: str, turn: int) -> str:
    """Escaped text whose [n] / [n, m] markers are links to the passages in the sources panel."""
    out, last = [], 0
    for m in MARKER.finditer(text):
        out.append(esc(text[last:m.start()]))
        nums = [int(n) for n in re.split(r"\s*,\s*", m.group(1))]
        out.append(" " + "".join(_cite_link(turn, n) for n in nums))
        last = m.end()
    out.append(esc(text[last:]))
    return "".join(out)


def question_html(question: str) -> str:
    return f'<div class="q">{esc(question)}</div>'


def pending_html(note: str = "Searching the documents…") -> str:
    return f'<div class="answer pending"><span class="dots"></span> {esc(note)}</div>'


def streaming_html(text: str) -> str:
    return f'<div class="answer streaming">{esc(text)}<span class="cursor"></span></div>'


def stopped_html(previous: str) -> str:
    """The answer bubble of a question the user stopped: what had streamed in stays, marked."""
    if 'class="answer streaming"' in previous:
        return (previous.replace('class="answer streaming"', 'class="answer stopped"', 1)
                .replace('<span class="cursor"></span>', ' <span class="stopped-note">(stopped)</span>'))
    return '<div class="answer stopped"><span class="stopped-note">Stopped.</span></div>'


def error_html(message: str) -> str:
    return f'<div class="answer error" role="alert">{esc(message)}</div>'


def answer_html(answer, turn: int) -> str:
    """The checked answer: [n] markers link to their passages; a not-found answer looks different."""
    note = f'<div class="note">Note: {esc(answer.fallback_reason)}</div>' if answer.fallback_reason else ""
    meta = f'<span class="meta">{esc(answer.generator)} · {answer.seconds:.1f} s</span>'
    if not answer.answered:
        return (f'<div class="answer notfound" data-answered="false"><div class="nf-title">Not found in the documents</div>'
                f'<div>{esc(answer.answer)}</div><div class="hint">{esc(NOT_FOUND_HINT)}</div>{note}'
                f'<div class="foot">{meta}</div></div>')
    cited = [s for s in answer.sources if s.marker in set(markers_in(answer.answer))]
    refs = "".join(f'<li>{_cite_link(turn, s.marker, " " + esc(s.title or s.file_name))}</li>' for s in cited)
    return (f'<div class="answer found" data-answered="true"><div class="text">{_with_links(answer.answer, turn)}</div>{note}'
            f'<div class="foot"><ol class="refs">{refs}</ol>{meta}</div></div>')


# ---- sources panel ----------------------------------------------------------------------------
def _plain(text: str) -> str:
    return MARKER.sub("", text).strip().strip("“”\"").strip()


def supporting_spans(answer_text: str, source) -> list[tuple[int, int]]:
    """Character spans of the passage's sentences that support the answer sentences citing it:
    a quoted sentence found verbatim, else the passage sentence sharing most content words."""
    claims = [_plain(answer_text[s:e]) for s, e in split_sentences(answer_text)
              if source.marker in markers_in(answer_text[s:e])]
    claims += [_plain(q) for q in re.findall(r"“([^”]+)”\s*\[[\d,\s]*\b" + str(source.marker) + r"\b", answer_text)]
    spans = set()
    sentences = split_sentences(source.text)
    for claim in filter(None, claims):
        at = source.text.find(claim)
        if at >= 0:
            spans.add((at, at + len(claim)))
            continue
        scored = [(support(claim, source.text[s:e]), s, e) for s, e in sentences]
        best = max(scored, default=(0.0, 0, 0))
        if best[0] >= 0.5:
            spans.add((best[1], best[2]))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def passage_html(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for s, e in spans:
        out.append(esc(text[last:s]))
        out.append(f"<mark>{esc(text[s:e])}</mark>")
        last = e
    out.append(esc(text[last:]))
    return "".join(out)


def _turn_html(answer, turn: int, current: bool) -> str:
    cited = set(markers_in(answer.answer)) if answer.answered else set()
    heading = (f'Passages retrieved for: <q>{esc(answer.question)}</q>' if answer.answered else
               f'Closest passages (none answers it) for: <q>{esc(answer.question)}</q>')
    items = []
    for s in answer.sources:
        spans = supporting_spans(answer.answer, s) if s.marker in cited else []
        badge = '<span class="badge">cited</span>' if s.marker in cited else ""
        items.append(
            f'<details class="source{" cited" if s.marker in cited else ""}" id="{source_anchor(turn, s.marker)}"'
            f'{" open" if s.marker in cited else ""}>'
            f'<summary><span class="num">[{s.marker}]</span> <span class="title">{esc(s.title or s.file_name)}</span>{badge}'
            f'<span class="file">{esc(s.doc_id)} · characters {s.start}–{s.end}{_similarity(s)}</span></summary>'
            f'<blockquote>{passage_html(s.text, spans)}</blockquote></details>'
        )
    body = "".join(items) or '<p class="empty">No passages were retrieved.</p>'
    return (f'<section class="turn{" current" if current else ""}" data-turn="{turn}">'
            f'<p class="for">{heading}</p>{body}</section>')


def _similarity(source) -> str:
    return f" · similarity {source.similarity:.2f}" if source.similarity else ""


def sources_html(answers: list, current: int | None = None) -> str:
    """The passages behind every answer of the session (turn n = answers[n-1]); only `current`
    (default: the latest) is shown until a citation of another answer is clicked."""
    if not answers:
        return ('<div class="sources-empty">Ask a question: the passages the answer is drawn from '
                'appear here. Click a citation like <span class="num">[1]</span> to jump to its passage.</div>')
    current = current or len(answers)
    return "".join(_turn_html(a, n, n == current) for n, a in enumerate(answers, start=1))


# ---- documents panel --------------------------------------------------------------------------
def documents_html(entries: list) -> str:
    if not entries:
        return '<p class="empty">No documents indexed yet. Add some below.</p>'
    rows = "".join(
        f"<tr><td><div class='title'>{esc(e.title or e.file_name)}</div><div class='file'>{esc(e.doc_id)}</div></td>"
        f"<td class='n'>{e.chunks}</td><td class='when'>{esc(_when(e.indexed_at))}</td></tr>"
        for e in entries
    )
    return (f'<table class="docs"><caption>{len(entries)} documents</caption><thead><tr><th>Document</th>'
            f"<th class='n'>Chunks</th><th>Indexed</th></tr></thead><tbody>{rows}</tbody></table>")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def status_html(info: dict, store_bytes: int | None) -> str:
    gen = info.get("generator", "")
    if info.get("model"):
        gen += f" ({info['model']})"
    size = f" · {store_bytes / 1e6:.1f} MB on disk" if store_bytes is not None else ""
    rows = [
        ("Index", f"{info.get('documents', 0)} documents, {info.get('chunks', 0)} chunks{size}"),
        ("Embedding model", info.get("embedding_model", "")),
        ("Generator", gen + (f" — {info['note']}" if info.get("note") else "")),
        ("Documents folder", info.get("docs_dir", "")),
        ("Store", info.get("store", "")),
    ]
    return '<dl class="status">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows) + "</dl>"


def progress_text(stage: str, done: int, total: int) -> str:
    if stage == "embed":
        return f"reading and embedding {done}/{total} documents" if total else "no new or changed documents"
    if stage == "bm25":
        return "updating the keyword index"
    return "checking the documents folder"


def progress_html(label: str, stage: str, done: int, total: int) -> str:
    pct = int(100 * done / total) if total else 0
    what = progress_text(stage, done, total)
    return (f'<div class="progress" role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" aria-valuemax="100">'
            f'<div class="label">{esc(label)} — {esc(what)}</div>'
            f'<div class="bar"><div style="width:{pct}%"></div></div></div>')


def banner_html(kind: str, text: str) -> str:
    return f'<div class="banner {kind}">{esc(text)}</div>'
