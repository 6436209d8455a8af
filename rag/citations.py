"""Checks an answer's citations against the retrieved passages: invented markers are removed,
uncited factual sentences get the passage that supports them, refusals carry no citations."""

from __future__ import annotations

import re
from functools import lru_cache

from .sentences import split_sentences
from .models import Source
from .prompts import NOT_FOUND

MARKER = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"(?u)\w+")
_STOP = frozenset(
    "a an the and or but of to in on at for from by with as is are was were be been being it its "
    "this that these those what which who whom whose when where why how do does did has have had "
    "not no can could will would should may might must shall than then there their they them he "
    "she his her we our you your i me my about into over under after before also said says say "
    "according".split()
)
_REFUSAL = re.compile(
    r"(do(es)?\s*n[o']t|does not|do not)\s+(contain|mention|provide|include|say|specify|state|cover|have)"
    r"|\bno (information|mention|details?)\b|not (mentioned|provided|specified|stated|found|available|covered)\b"
    r"|\bcannot (be )?(answer|determine|find)|\bunable to (answer|determine|find)"
    r"|无法|没有提(到|及)|未提(到|及)|不包含",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def content_terms(text: str) -> set[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    return set(_stemmer().stemWords([w for w in words if w not in _STOP and len(w) > 1]))


def support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains (0..1)."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    return len(terms & content_terms(passage)) / len(terms)


def is_refusal(answer: str) -> bool:
    text = MARKER.sub("", answer).strip()
    if not text:
        return True
    if NOT_FOUND.lower().rstrip(".") in text.lower():
        return True
    first = text[: split_sentences(text)[0][1]] if split_sentences(text) else text
    return bool(_REFUSAL.search(first))


def markers_in(answer: str) -> list[int]:
    out = []
    for m in MARKER.finditer(answer):
        out.extend(int(n) for n in re.split(r"\s*,\s*", m.group(1)))
    return out


def strip_invalid(answer: str, valid: set[int]) -> str:
    def keep(m: re.Match) -> str:
        nums = [n for n in re.split(r"\s*,\s*", m.group(1)) if int(n) in valid]
        return f" [{', '.join(nums)}]" if nums else ""

    return MARKER.sub(keep, answer)


def _cite(sentence: str, marker: int) -> str:
    body = sentence.rstrip()
    m = re.search(r"[.!?。！？]+[\"'”’)]*$", body)
    if m:
        return f"{body[: m.start()]} [{marker}]{body[m.start():]}"
    return f"{body} [{marker}]"


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def numbers_match(sentence: str, passage: str) -> bool:
    """A passage supports no sentence that states a number it does not contain: a small model
    puts plausible figures ("$100 million") next to words it copied from the passage."""
    return numbers_in(sentence) <= numbers_in(passage)


def attach_missing(answer: str, sources: list[Source], min_support: float = 0.5) -> str:
    """Give each uncited sentence that states something from a passage that passage's marker."""
    if not sources:
        return answer
    out, last = [], 0
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        out.append(answer[last:start])
        last = end
        if MARKER.search(sentence) or len(content_terms(sentence)) < 2:
            out.append(sentence)
            continue
        scored = [(support(sentence, s.text) if numbers_match(sentence, s.text) else 0.0, s.marker)
                  for s in sources]
        best, marker = max(scored)
        out.append(_cite(sentence, marker) if best >= min_support else sentence)
    out.append(answer[last:])
    return "".join(out)


def check(answer: str, sources: list[Source]) -> tuple[str, bool]:
    """(checked answer, answered). A refusal becomes the plain NOT_FOUND sentence."""
    if is_refusal(answer) or not sources:
        return NOT_FOUND, False
    answer = strip_invalid(answer, {s.marker for s in sources})
    answer = attach_missing(answer, sources)
    answer = re.sub(r"[ \t]{2,}", " ", answer).strip()
    return answer, True
