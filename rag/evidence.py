"""What a generator reads: the few pieces of the retrieved passages that answer the question, each
with the structure that gives it meaning.

A sentence alone often proves nothing: a list item needs its lead-in ("three key areas:"), a table
row needs its header, a quote needs the neighbouring sentence that names its speaker, a sentence
opening with "They" (or "Analysts say it ...") needs the one before it, even across a paragraph
break, and that one the one before it when it refers back too. Passages are cut into such units
first, then ranked. On 2 cores the local model reads ~65 prompt tokens a second, so every unit
left out is time to first token saved."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

from .models import Source
from .named import descriptions
from .text import (
    INSTRUCTION,
    LIST_ITEM,
    SENTENCE_END,
    TABLE_ROW,
    TABLE_RULE,
    abbreviate,
    acronym_phrases,
    content_terms,
    split_sentences,
)

_ANAPHOR = re.compile(
    r"^(they|them|their|this|these|those|that|it|its|he|she|his|her|such|the move|the plan|both|the two)\b"
    # "Analysts say it is a sign that ...": what "it" is stands in the sentence before.
    r"|^([\w’'-]+\s+){1,4}?(say|says|said|believe|believes|think|thinks|argue|argues|see|sees|call|calls|"
    r"warn|warns|note|notes)\s+(that\s+)?(it|this|these|they|those|such)\b", re.I)
_CHAIN = 2  # sentences a reference is followed back through ("That breakthrough ..." -> "Analysts say it ...")
_SPEECH = re.compile(r"\b(said|says|say|explains?|explained|told|according to|noted|notes|added|adds|stated|"
                     r"argued|argues|warned|warns|wrote|writes|urged|urges|called|calls)\b", re.I)
_QUOTE = re.compile(r"[“\"].{12,}[”\"]")
# Lists under these headings are a page's furniture, not its content.
_FURNITURE = re.compile(r"^\W*(references|sources|further reading|related( articles| posts)?|read more|see also|"
                        r"notes|in this (post|article)|share( this)?|tags)\W*$", re.I)
# "3. France 24. “Xi says China must overcome AI chip challenges.” Link": an entry of a reference list.
_REFERENCE = re.compile(r"[”\"]\s*(Link|Retrieved\b.*|\(\d{4}\))?\s*$|\bLink\s*$|https?://\S+\s*$")
_REFERENCE_TAIL = re.compile(r"\s*(\bLink|https?://\S+)\s*$")
_REFERENCE_STOP = re.compile(r"\.\s+(?=[“\"])")
_LONG_LIST = 8  # items; a longer list is read item by item, each with its lead-in
_LEAD_IN = re.compile(
    r":\s*$|\b(two|three|four|five|six|several|following|these|key|main|core)\s+(\w+\s+)?"
    r"(areas|ways|factors|steps|priorities|pillars|reasons|goals|fields|sectors|challenges|measures|"
    r"points|technologies|aspects|initiatives|components|elements)\b", re.I)


@dataclass
class Unit:
    """A piece of a passage that reads on its own: a sentence with the context it needs."""

    marker: int
    title: str
    rank: int  # the passage's retrieval rank
    order: int  # position in the passage
    parts: list[str]  # what the generator reads: the piece and its context, in passage order
    key: str  # the text that is scored against the question (the sentence or row itself)
    complete: bool  # a full sentence, a row with its header or a list with its lead-in
    furniture: bool = False  # a reference entry or a page's summary box: readable, never quoted
    lead_in: bool = False  # "Several factors will shape it." read with the sentences that name them

    @property
    def text(self) -> str:
        return " ".join(self.parts)


@dataclass
class Selection:
    passages: list[tuple[int, str, str]]  # (marker, title, text) for the prompt
    focus: list[tuple[int, str, str]]  # the single best unit, same form
    strength: float  # share of the question's rare words the best unit holds (0..1)
    units: list[Unit]  # the chosen units, best first
    quotable: bool = False  # chosen as the extractive answer would quote them


# ---- passages -> units -------------------------------------------------------------------------
def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def table_data(rows: list[str]) -> list[str]:
    """The rows of a pipe table without its rule line (the first is the header)."""
    return [r for r in rows if not TABLE_RULE.match(r)]


def _table_units(rows: list[str], caption: str) -> list[tuple[str, str]]:
    """(text, key) for each data row: "Header: cell; Header: cell", never a row without its header.
    The key holds the caption and header too: questions name the table ("the comparison table")."""
    data = table_data(rows)
    if len(data) < 2:
        return [(r.strip(), r.strip()) for r in data]
    header, out = _cells(data[0]), []
    for row in data[1:]:
        cells = _cells(row)
        pairs = [f"{h}: {c}" for h, c in zip(header, cells) if c]
        heads = " | ".join(h for h in header if h)
        out.append((f"Table ({heads}), row: " + "; ".join(pairs) + ".", f"{caption} table {heads} {row.strip()}"))
    return out


def table_rows(text: str) -> list[tuple[int, int, str]]:
    """(start, end, reading) of each data row of the tables in a passage: where the row is, and the
    row read with its header as a unit reads it. A claim taken from a row is checked against this
    reading (rag/citations.py): the bare row holds the cells but not the column names."""
    if "|" not in text:
        return []
    out: list[tuple[int, int, str]] = []
    table: list[tuple[int, int, str]] = []
    caption, pos = "", 0

    def flush() -> None:
        if len(table) >= 2:
            readings = _table_units([line for _, _, line in table], caption)
            data = [t for t in table if not TABLE_RULE.match(t[2])][1:]
            out.extend((s, e, reading) for (s, e, _), (reading, _) in zip(data, readings))
        table.clear()

    for line in text.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        stripped = line.strip()
        if not stripped:
            continue
        if TABLE_ROW.match(stripped):
            table.append((start, start + len(line.rstrip()), stripped))
        else:
            flush()
            caption = stripped
    flush()
    return out


def line_blocks(text: str) -> list[tuple[str, list[str]]]:
    """The passage's lines grouped into ("table"|"list"|"prose", lines)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        kind = ("table" if TABLE_ROW.match(line) else
                "list" if LIST_ITEM.match(line) else "prose")
        if blocks and blocks[-1][0] == kind and kind != "prose":
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    return blocks


def _sentences(line: str) -> list[str]:
    # A sentence addressing the assistant ("ignore previous instructions") is never shown to it.
    return [line[s:e].strip() for s, e in split_sentences(line) if not INSTRUCTION.search(line[s:e])]


def _antecedents(sentences: list[str], i: int, before: list[str]) -> list[str]:
    """The sentences a sentence that refers back needs, followed back while each refers back too.
    News paragraphs are often one or two sentences, so the chain may go on into the paragraph
    before (`before`: its sentences)."""
    out: list[str] = []
    earlier = before + sentences[:i]
    at = len(before) + i
    while at > 0 and len(out) < _CHAIN and _ANAPHOR.match(sentences[i] if not out else out[0]):
        at -= 1
        if at < len(before) and not SENTENCE_END.search(earlier[at]):
            break  # a heading above the paragraph is not what "it" means
        out.insert(0, earlier[at])
    return out


def _prose_units(sentences: list[str], before: Optional[list[str]] = None) -> list[tuple[list[str], str, bool]]:
    out = []
    for i, sent in enumerate(sentences):
        prev = sentences[i - 1] if i > 0 else None
        nxt = sentences[i + 1] if i + 1 < len(sentences) else None
        parts = _antecedents(sentences, i, before or []) + [sent]
        if _QUOTE.search(sent) and not _SPEECH.search(sent):
            # A quote's speaker is often named in the sentence before or after it.
            if nxt and _SPEECH.search(nxt):
                parts.append(nxt)
            elif prev and _SPEECH.search(prev) and prev not in parts:
                parts.insert(0, prev)
        lead_in = bool(_LEAD_IN.search(sent) and nxt)
        if lead_in:
            parts.extend(sentences[i + 1: i + 4])
        out.append((parts, sent, lead_in))
    return out


def passage_units(source: Source, rank: int) -> list[Unit]:
    units: list[Unit] = []
    last_prose: list[str] = []
    last_line = ""
    last_kind = ""

    def add(parts: list[str], key: str, complete: bool, furniture: bool = False, lead_in: bool = False) -> None:
        units.append(Unit(source.marker, source.title, rank, len(units), parts, key, complete, furniture, lead_in))

    for kind, lines in line_blocks(source.text):
        before, last_kind = (last_prose if last_kind == "prose" else []), kind
        if kind == "table":
            for text, key in _table_units(lines, last_line):
                add([text], key, True)
        elif kind == "list":
            items = [LIST_ITEM.sub("", item).strip() for item in lines]
            lead = last_prose[-1] if last_prose else ""
            # A reference list is read entry by entry: as a whole it matches every question a little.
            furniture = bool(_FURNITURE.match(last_line)) or all(_REFERENCE.search(i) for i in items)
            if furniture:
                # "France 24. “Title.” Link" reads as one sentence: "France 24, “Title.”"
                for item in items:
                    entry = _REFERENCE_STOP.sub(", ", _REFERENCE_TAIL.sub("", item)).strip()
                    add([entry], entry, True, True)
                continue
            groups = [items] if len(items) <= _LONG_LIST else [[item] for item in items]
            for group in groups:
                listing = "; ".join(group)
                add([f"{lead} {listing}.".strip()], f"{lead} {listing}", True)
        else:
            last_line = lines[-1].strip()
            last_prose = _sentences(" ".join(lines))
            for parts, key, lead_in in _prose_units(last_prose, before):
                add(parts, key, bool(SENTENCE_END.search(key)), lead_in=lead_in)
    return units


# ---- ranking -------------------------------------------------------------------------------------
# Words with which a question points at the documents rather than at what it asks ("what do the
# articles say about X", "how does the report describe Y"): no sentence holds them, and as the rarest
# words they would outweigh the ones that matter.
_FRAME = content_terms("article articles document documents say says said describe describes described "
                       "mention mentions mentioned according text texts story stories piece pieces")


_NAMING_WEIGHT = 0.5  # a question word that names the document ("the article on X's push")


def _idf_weights(question: str, keys: list[frozenset[str]]) -> dict[str, float]:
    """Each question word's weight: rare among the units' words, half for words naming the document."""
    df: dict[str, int] = {}
    for key in keys:
        for t in key:
            df[t] = df.get(t, 0) + 1
    # "according to the article on China's call for homegrown AI": those words say which document,
    # not what the answer says; weighed, they pick the article's opening sentence.
    named = frozenset().union(*descriptions(question))
    asked = content_terms(question) - _FRAME
    return {t: math.log(1 + len(keys) / df.get(t, 0.5)) * (_NAMING_WEIGHT if t in named else 1.0)
            for t in asked or content_terms(question)}


_TITLE_WEIGHT = 0.5  # a question word found only in the unit's document title
# ... or only in the context the unit is read with: the sentence "it" refers to, a quote's speaker, the
# items a lead-in announces. "Analysts say it is a sign ..." is about the supernode named before it.
_CONTEXT_WEIGHT = 0.5
_TYPO_WEIGHT = 0.8  # a question word the unit spells with one letter more or less


@lru_cache(maxsize=65536)
def _deletions(term: str) -> frozenset[str]:
    return frozenset(term[:i] + term[i + 1:] for i in range(len(term)))


def _spelled_alike(term: str, terms: frozenset[str]) -> bool:
    """One letter more or less in a long word ("Analyts say" for analysts, "semiconducter"): news
    copy and questions have typos that neither BM25 nor word overlap forgive."""
    if len(term) < 6:
        return False
    dels = _deletions(term)
    return any(k in dels or (len(k) == len(term) + 1 and term in _deletions(k)) for k in terms if len(k) >= 5)


def _compounded(term: str, terms: frozenset[str]) -> bool:
    """The word inside a longer one: "world" in "worldwide", "nation" in "nationwide"."""
    return len(term) >= 5 and any(len(k) >= len(term) + 3 and k.startswith(term) for k in terms)


def word_scores(question: str, units: list[Unit]) -> list[float]:
    """Share of the question's rare words each unit holds, those only in its document's title or in
    the context it is read with at half weight (questions name the article: "the article on
    Beijing's open-source push"; "it" stands for what the sentence before names); fragments and
    later passages lose ties."""
    phrases = acronym_phrases([question] + [u.key for u in units])

    def terms(text: str) -> frozenset[str]:  # "artificial intelligence" counts as "AI"
        return content_terms(abbreviate(text, phrases) if phrases else text)

    keys = [terms(u.key) for u in units]
    weight = _idf_weights(abbreviate(question, phrases), keys)
    total = sum(weight.values()) or 1.0

    def held(u: Unit, key: frozenset[str]) -> float:
        title = terms(u.title)
        around = terms(" ".join(p for p in u.parts if p != u.key)) if len(u.parts) > 1 else frozenset()
        return sum(w if t in key else _TYPO_WEIGHT * w if _spelled_alike(t, key) or _compounded(t, key)
                   else _CONTEXT_WEIGHT * w if t in around else _TITLE_WEIGHT * w if t in title else 0.0
                   for t, w in weight.items())

    return [(held(u, key) / total) * (1.0 if u.complete else 0.6) - 0.01 * u.rank for u, key in zip(units, keys)]


def _in_context(unit: Unit) -> str:
    """What a unit's meaning is judged on: the sentence under its document's title, so a sentence
    that leaves its topic to the article ("discussions on standards are gaining urgency") is not
    outscored by any sentence that merely names the topic."""
    said = unit.key
    if _ANAPHOR.match(unit.key) and unit.parts[0] != unit.key:
        said = " ".join(unit.parts[: unit.parts.index(unit.key) + 1])  # "it" read with what it is
    return f"{unit.title}: {said}" if unit.title else said


def rank_units(question: str, units: list[Unit], embedder=None, keep=None,
               limit: int = 48) -> list[tuple[float, int]]:
    """(score, index) of the units, best first: half the share of rare question words held, half
    the similarity in meaning, which finds paraphrases that share no word ("instead of playing
    catch-up" for "rather than keeping pace"). Only the `limit` lexically best units are embedded:
    48 short sentences embed in about 0.1 s on 2 cores."""
    words = word_scores(question, units)
    order = [i for i in sorted(range(len(units)), key=lambda i: -words[i]) if keep is None or keep(units[i])]
    order = order[:limit]
    if embedder is None or not order:
        return [(words[i], i) for i in order]
    try:
        vecs = embedder.embed([question] + [_in_context(units[i]) for i in order])
    except Exception:  # noqa: BLE001 - an embedding endpoint may be down: words alone will do
        return [(words[i], i) for i in order]
    ranked = [(0.5 * float(sim) + 0.5 * words[i], i) for sim, i in zip(vecs[1:] @ vecs[0], order)]
    return sorted(ranked, key=lambda r: -r[0])


def _following(i: int, units: list[Unit]) -> Optional[int]:
    nxt = i + 1
    if nxt < len(units) and units[nxt].marker == units[i].marker and not units[nxt].furniture:
        return nxt
    return None


def select(question: str, sources: Sequence[Source], embedder=None, budget_chars: int = 900,
           keep_ratio: float = 0.8, max_units: int = 5) -> Selection:
    """The units that answer the question best, in passage order: the one holding the most rare
    question words and the sentence after it (answers often follow the sentence that names the topic:
    "X met Y. The meeting underscored ..."), the best in words and meaning together and the sentence
    after it, the runner-up, then near-ties of the first, while the budget lasts."""
    units = [u for rank, src in enumerate(sources) for u in passage_units(src, rank)]
    if not units:
        return Selection([], [], 0.0, [])
    words = word_scores(question, units)
    order = sorted(range(len(units)), key=lambda i: -words[i])
    best = order[0]
    ranked = [i for _, i in rank_units(question, units, embedder, keep=lambda u: u.complete)]
    picks = [best, _following(best, units)] + [i for pair in ranked[:2] for i in (pair, _following(pair, units))]
    picks += [i for i in order[1:] if words[i] >= keep_ratio * words[best]]
    chosen: list[int] = []
    seen: set[str] = set()
    used = 0
    for i in picks:
        if i is None:
            continue
        text = units[i].text
        if text in seen or (chosen and (used + len(text) > budget_chars or len(chosen) >= max_units)):
            continue  # overlapping chunks repeat sentences
        chosen.append(i)
        seen.add(text)
        used += len(text) + 1
    return Selection(as_passages([units[i] for i in chosen]), as_passages([units[best]]),
                     max(0.0, words[best]), [units[i] for i in chosen])


_SAID = 0.34  # share of the words a unit adds to the question that an answer holds when it says it
_DISTINCT = re.compile(r"\b[A-Z][\w&-]*|\b\d[\d,.]*")  # names, capitalised terms and numbers


def unsaid(units: list[Unit], question: str, answer: str) -> list[Unit]:
    """The units an answer leaves out: it holds none of the names and numbers each adds to the
    question and under a third of its other words (a lead-in read with the items it announces).
    "Huawei leads the coalition." says the sentence about Huawei leading it, details aside."""
    said = content_terms(answer)
    asked = content_terms(question)
    out = []
    for unit in units:
        text = unit.text if unit.lead_in else unit.key
        added = content_terms(text) - asked
        distinct = content_terms(" ".join(_DISTINCT.findall(text))) - asked
        if added and not distinct & said and len(added & said) / len(added) < _SAID:
            out.append(unit)
    return out


def as_passages(units: list[Unit]) -> list[tuple[int, str, str]]:
    """(marker, title, text), units of one passage joined in their original order, each sentence
    once (a unit's context may be another chosen unit)."""
    out: list[tuple[int, str, str]] = []
    shown: set[str] = set()
    for u in sorted(units, key=lambda u: (u.rank, u.order)):
        text = " ".join(p for p in u.parts if p not in shown)
        shown.update(u.parts)
        if not text:
            continue
        if out and out[-1][0] == u.marker:
            out[-1] = (u.marker, u.title, f"{out[-1][2]} {text}")
        else:
            out.append((u.marker, u.title, text))
    return out
