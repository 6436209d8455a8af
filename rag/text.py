"""Text primitives every stage shares: words, content terms (stopwords removed, stemmed), sentences,
citation markers and numbers. One definition each, so BM25, citation checks, passage selection,
conversation and the CLI agree on what a word, a sentence and a marker are."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

# ---- words ---------------------------------------------------------------------------------------
WORD = re.compile(r"(?u)\w+")
# BM25 tokens: words of two or more characters; a CJK character counts as a word.
INDEX_TOKEN = re.compile(r"(?u)\b\w\w+\b|[\u4e00-\u9fff]")
STOPWORDS = frozenset(
    "a an the and or but of to in on at for from by with as is are was were be been being it its "
    "this that these those what which who whom whose when where why how do does did has have had "
    "not no can could will would should may might must shall than then there their they them he "
    "she his her we our you your i me my about into over under after before also said says say "
    "according".split()
)


@lru_cache(maxsize=1)
def stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    return WORD.findall(text)


@lru_cache(maxsize=8192)
def content_terms(text: str) -> frozenset[str]:
    """Stemmed, lower-cased words that carry meaning (no stopwords, no one-letter words)."""
    low = [w.lower() for w in WORD.findall(text)]
    return frozenset(stemmer().stemWords([w for w in low if w not in STOPWORDS and len(w) > 1]))


# ---- citation markers ----------------------------------------------------------------------------
MARKER = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")


def markers_in(text: str) -> list[int]:
    """Every n of every [n] and [n, m] in text, in order."""
    out: list[int] = []
    for m in MARKER.finditer(text):
        out.extend(int(n) for n in re.split(r"\s*,\s*", m.group(1)))
    return out


def strip_markers(text: str) -> str:
    return MARKER.sub("", text)


# ---- numbers -------------------------------------------------------------------------------------
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


# ---- acronyms -----------------------------------------------------------------------------------
_ACRONYM = re.compile(r"\b[A-Z]{2,5}\b")


def acronym_phrases(texts: Sequence[str]) -> dict[str, re.Pattern]:
    """Each acronym of the texts that some text spells out, with a pattern for its spelled-out
    phrase: "AI" and "artificial intelligence" are one thing to a reader, two words apart to a
    word count."""
    found = {a for t in texts for a in _ACRONYM.findall(t) if a.lower() not in STOPWORDS}
    if not found:
        return {}
    words = [w for t in texts for w in WORD.findall(t)]
    out: dict[str, re.Pattern] = {}
    for acronym in found:
        n = len(acronym)
        runs: dict[tuple[str, ...], int] = {}
        for i in range(len(words) - n + 1):
            if words[i][0].upper() != acronym[0]:  # most windows fail on the first letter: cheap
                continue
            run = words[i:i + n]
            if "".join(w[0] for w in run).upper() == acronym and all(
                    len(w) > 2 and w.lower() not in STOPWORDS for w in run):
                key = tuple(w.lower() for w in run)
                runs[key] = runs.get(key, 0) + (2 if all(w[0].isupper() for w in run) else 1)
        # Any two words may start with "u" and "s" ("usually said"); a phrase that recurs, or is
        # capitalised ("United States"), is what the acronym stands for.
        best = max(runs, key=runs.__getitem__, default=None)
        if best is not None and runs[best] >= 2:
            out[acronym] = re.compile(r"\b" + r"\W+".join(map(re.escape, best)) + r"\b", re.I)
    return out


def abbreviate(text: str, phrases: dict[str, re.Pattern]) -> str:
    """The text with each spelled-out phrase written as its acronym."""
    for acronym, pattern in phrases.items():
        text = pattern.sub(acronym, text)
    return text


# ---- planted instructions ----------------------------------------------------------------------
# Sentences in a document that address the assistant rather than the reader. They never count as
# evidence for a claim (an obeyed instruction would otherwise cite itself).
INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions?|prompts?|"
    r"passages?|rules)\b|\b(reply|respond|answer|say)\b.{0,15}\bonly with\b|\bsystem prompt\b"
    r"|\b(notice|message|note) to the (ai|assistant|model|chatbot)\b|\bas an ai (assistant|model)\b"
    r"|\byou are now\b|\b(cite|quote) (source|passage) \[\d+\]",
    re.IGNORECASE | re.DOTALL)


def planted_instructions(text: str) -> list[str]:
    """The sentences of a text that address the assistant ("ignore all previous instructions")."""
    return [text[s:e].strip() for s, e in split_sentences(text) if INSTRUCTION.search(text[s:e])]


def without_instructions(text: str) -> str:
    """The text with every sentence that addresses the assistant blanked out (offsets kept)."""
    out = list(text)
    for s, e in split_sentences(text):
        if INSTRUCTION.search(text[s:e]):
            out[s:e] = " " * (e - s)
    return "".join(out)


# ---- sentences -----------------------------------------------------------------------------------
# A sentence is complete when it ends with terminal punctuation (quotes and brackets may follow).
SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)」]*$")

# Sentence ends, Western and CJK. A citation marker right after the end stays with its sentence.
_SENTENCE_END_CANDIDATE = re.compile(
    r"(?<=[.!?。！？])[\"'”’)\]]*+(?:\s*\[\d+(?:,\s*\d+)*\])*+(?:\s+|$)|(?<=[。！？])(?:\[\d+(?:,\s*\d+)*\])*+|\n+"
)
# A period after these is not a sentence end ("U.S. companies", "Mr. Li").
_ABBREV = re.compile(
    r"(?:\b(?:[A-Z]\.){1,3}|\b(?:Mr|Mrs|Ms|Dr|Prof|Inc|Ltd|Co|Corp|vs|etc|e\.g|i\.e|No|St|Jr|Sr|Jan|Feb|Mar|Apr"
    r"|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.)$"
)


class _SentenceEnds:
    def finditer(self, text: str):
        for m in _SENTENCE_END_CANDIDATE.finditer(text):
            head = text[max(0, m.start() - 12) : m.start()]
            if m.group(0).strip() == "" or "\n" not in m.group(0):
                if _ABBREV.search(head):
                    continue
            yield m


_SENTENCE_END = _SentenceEnds()


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in text, whitespace trimmed."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > start:
            spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg) - len(seg.rstrip())
        s, e = s + lead, e - trail
        if e > s:
            out.append((s, e))
    return out


TABLE_ROW = re.compile(r"^[^|\n]*\|[^|\n]*\|")  # two or more cells: a Markdown table line
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")  # |---|---|
LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+")
# A table or a list glued to its header or lead-in stays one piece up to this size.
_MAX_GLUED_CHARS = 1200


def _glues_to_previous(piece: str) -> bool:
    line = piece.strip()
    return bool(TABLE_ROW.match(line) or LIST_ITEM.match(line))


def chunking_pieces(text: str) -> list[str]:
    """Sentences for the chunker, except that table rows stay with their header and list items with
    their lead-in: a row or an item cut off from them means nothing."""
    # Pieces must concatenate back to the text so llama-index can find chunk offsets.
    pieces, last = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > last:
            pieces.append(text[last : m.end()])
            last = m.end()
    if last < len(text):
        pieces.append(text[last:])
    glued: list[str] = []
    for piece in pieces:
        if glued and _glues_to_previous(piece) and len(glued[-1]) + len(piece) <= _MAX_GLUED_CHARS:
            glued[-1] += piece
        else:
            glued.append(piece)
    return glued
