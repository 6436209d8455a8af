"""Documents a question names by what they are about: "according to the article on Xi's AI push
amid US rivalry", "the 2025 review and the article on ...". Such a question is answered from the
documents it names; a plain search would let the longest article on the topic crowd them out.

A description names a document when that document's title holds most of the description's words
and no other title holds as many: "the article on China" names nothing in a corpus of articles on
China. When no title decides, the opening sentences of the documents a search finds are read beside
their titles: an article is often described by what it opens with."""

from __future__ import annotations

import re
from typing import Mapping

from .text import content_terms, split_sentences

_KIND = r"(?:article|review|report|story|piece|paper|post|interview|analysis|document|feature|profile|editorial)s?"
# "the [2025] review", "the article on|about|titled X" up to where the question goes on.
_REFERENCE = re.compile(
    rf"\b(?:the|this|that)\s+((?:[\w’'-]+\s+){{0,3}}?){_KIND}\b"
    rf"(?:\s+(?:on|about|titled|called|covering|from|describing)\s+(.+?))?"
    r"(?=\s*[,;?:]|\s+(?:and|say|says|said|do|does|did|is|are|was|were|mention|mentions|describe|describes|"
    r"report|reports|claim|claims|state|states|note|notes|argue|argues)\b|$)",
    re.IGNORECASE)
_WORDS_OF_KIND = content_terms("article review report story piece paper post interview analysis document "
                               "feature profile editorial articles reviews reports stories")
_HOLD = 0.6  # share of the description's words the title must hold
_OPENING_SENTENCES = 3  # the first is often the headline again


def opening_sentences(text: str) -> str:
    """The first sentences of a document's opening (a headline line counts as one)."""
    found = [text[s:e] for s, e in split_sentences(text)][:_OPENING_SENTENCES]
    return " ".join(found)


def descriptions(question: str) -> list[frozenset[str]]:
    """The content words of each document description in the question."""
    out = []
    for m in _REFERENCE.finditer(question):
        terms = content_terms(f"{m.group(1) or ''} {m.group(2) or ''}") - _WORDS_OF_KIND
        if terms:
            out.append(terms)
    return out


def named_documents(question: str, titles: Mapping[str, str]) -> list[str]:
    """Ids of the documents the question names, in the order it names them. titles: each document's
    title, or the title with its opening sentences."""
    found: list[str] = []
    described = descriptions(question)
    if not described:
        return found
    title_terms = {doc_id: content_terms(title) for doc_id, title in titles.items()}
    for terms in described:
        held = sorted(((len(terms & t) / len(terms), doc_id) for doc_id, t in title_terms.items()), reverse=True)
        if not held or held[0][0] < _HOLD or (len(held) > 1 and held[1][0] >= held[0][0]):
            continue
        if held[0][1] not in found:
            found.append(held[0][1])
    return found
