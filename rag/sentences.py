"""Sentence splitting shared by chunking, citation checking and extractive answers."""

from __future__ import annotations

import re

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


def chunking_pieces(text: str) -> list[str]:
    # Pieces must concatenate back to the text so llama-index can find chunk offsets.
    pieces, last = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > last:
            pieces.append(text[last : m.end()])
            last = m.end()
    if last < len(text):
        pieces.append(text[last:])
    return pieces
