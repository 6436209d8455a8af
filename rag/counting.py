"""Questions that count what a table or list enumerates ("How many aspects does the comparison
table compare?", "How many references are listed?"). No sentence states the count, so neither
quoting nor the local model (which miscounts) answers them; the rows and items are counted here,
and the citation check accepts a count its passage enumerates (enumeration_counts), the same
count as the answer's."""

from __future__ import annotations

import re
from typing import Optional

from .evidence import line_blocks, table_data
from .models import Source
from .text import LIST_ITEM, content_terms

_SHORT = re.compile(r"[.:;]\s")  # "France 24. “Title.” Link" is named as "France 24"
_HOW_MANY = re.compile(r"\bhow many ([a-z][\w-]*)", re.I)
# The question must point at an enumeration, not at a quantity a sentence could state.
_ENUMERATED = re.compile(r"\b(table|list|listed|lists|listing|references|sources|items|rows|entries|"
                         r"bullet|points|enumerat\w*|compare[sd]?)\b", re.I)


def enumerations(text: str) -> list[tuple[str, str, list[str]]]:
    """(kind, context, items) for each table (items: the first cell of each data row) and list
    (items: the list items) in the text; context is the line before it plus a table's header."""
    found: list[tuple[str, str, list[str]]] = []
    before = ""
    for kind, lines in line_blocks(text):
        if kind == "table":
            rows = table_data(lines)
            if len(rows) >= 2:
                firsts = [r.strip().strip("|").split("|")[0].strip() for r in rows[1:]]
                found.append(("table", f"{before} {rows[0]}", firsts))
        elif kind == "list" and len(lines) >= 2:
            found.append(("list", before, [LIST_ITEM.sub("", ln).strip() for ln in lines]))
        else:
            before = lines[-1]
    return found


def enumeration_counts(text: str) -> set[str]:
    """How many rows each table and items each list in the text has: a passage supports "the table
    has 5 aspects" though no "5" is written in it."""
    return {str(len(items)) for _, _, items in enumerations(text)}


def count_answer(question: str, sources: list[Source]) -> Optional[str]:
    """"The table compares 5 aspects: A, B, C, D and E [2]." for a counting question whose table or
    list is among the passages, else None."""
    asked = _HOW_MANY.search(question)
    if not asked or not _ENUMERATED.search(question):
        return None
    noun = asked.group(1).lower()
    terms = content_terms(question)
    best: tuple[int, Optional[Source], str, list[str]] = (0, None, "", [])
    for src in sources:
        for kind, context, items in enumerations(src.text):
            overlap = len(terms & content_terms(f"{kind} {src.title} {context}"))
            if overlap > best[0]:
                best = (overlap, src, kind, items)
    overlap, chosen, kind, items = best
    if chosen is None or overlap < 2:
        return None
    short = [_SHORT.split(item, maxsplit=1)[0][:60] for item in items]
    named = ", ".join(short[:-1]) + f" and {short[-1]}" if len(short) > 1 else short[0]
    return f"The {kind} has {len(items)} {noun}: {named} [{chosen.marker}]."
