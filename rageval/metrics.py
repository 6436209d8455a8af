"""Scores, by hand and small enough to check: IR metrics (graded nDCG, recall, MRR, as trec_eval
computes them), SQuAD-style answer metrics, and how well an answer's citations hold up."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Optional, Sequence

from rag.models import Source
from rag.prompts import EXTRACTIVE_PREFIX
from rag.text import MARKER, markers_in, split_sentences


# ---- retrieval -----------------------------------------------------------------------------------
def ndcg_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with graded relevance (gain = rel, as in trec_eval)."""
    dcg = sum(relevance.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevance: dict[str, int], k: int) -> float:
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if relevance.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    xs = sorted(values)
    if not xs:
        return 0.0
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def rate(values: Sequence[Optional[bool]]) -> Optional[float]:
    """Share of true among the values that are not None; None when there are none."""
    known = [v for v in values if v is not None]
    return round(sum(bool(v) for v in known) / len(known), 4) if known else None


# ---- answers against a gold text (SQuAD v1.1 evaluation script) ---------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def answer_text(answer: str) -> str:
    """The answer as a reader sees it: markers and the extractive lead-in are not part of it."""
    text = MARKER.sub("", answer).strip()
    return text[len(EXTRACTIVE_PREFIX):] if text.startswith(EXTRACTIVE_PREFIX) else text


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, gold: str) -> bool:
    return normalize(answer_text(answer)) == normalize(gold)


def f1(answer: str, gold: str) -> float:
    pred, ref = normalize(answer_text(answer)).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_in(text: str, gold: str) -> bool:
    """The normalised gold is a substring of the normalised text (an empty gold is in nothing)."""
    g = normalize(gold)
    return bool(g) and g in normalize(answer_text(text))


# ---- citations -----------------------------------------------------------------------------------
def citation_figures(answer: str, sources: Sequence[Source], question: str) -> dict:
    """Per answer: citation precision over the (sentence, marker) pairs written in it, citation
    recall over its sentences that add something, and its echo rate, with the counts behind each
    so that totals over many answers can be pooled. A marker with no source is an unsupported pair."""
    from rag.citations import asked_statement, claims, supports, verdict_of

    if answer.startswith(EXTRACTIVE_PREFIX):
        answer = answer[len(EXTRACTIVE_PREFIX):]  # the app's lead-in, not a claim of the answer
    answer = answer.replace(f". {EXTRACTIVE_PREFIX}", ". ")  # "True [3]. From the documents: ..."
    by_marker = {s.marker: s for s in sources}
    # A true-or-false or yes/no question: "True [1]." claims the statement; restating it is no echo.
    statement = asked_statement(question)
    pairs = supported = sentences = echoes = contentful = cited = 0
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        written = list(dict.fromkeys(markers_in(sentence)))
        verdict = verdict_of(sentence) if statement else None
        if statement and verdict is not None:
            sentences, contentful, cited = sentences + 1, contentful + 1, cited + bool(written)
            read = "\n".join(by_marker[m].text for m in written if m in by_marker)
            pairs += len(written)
            supported += len(written) * (bool(read) and supports(statement, read) == verdict)
            continue
        found = claims(sentence, sources, "" if statement else question)
        if not found:
            continue  # no words (a bullet, a lone marker): not a sentence a reader checks
        plain = MARKER.sub("", sentence).strip()
        sentences += 1
        echoes += found[0].echo
        if not found[0].echo:
            contentful += 1
            cited += bool(written)
        for m in written:
            pairs += 1
            supported += m in by_marker and supports(plain, by_marker[m].text, "" if statement else question)
    return pooled_citations({"pairs": pairs, "supported_pairs": supported, "sentences": sentences,
                             "echo_sentences": echoes, "content_sentences": contentful,
                             "cited_content_sentences": cited})


def pooled_citations(counts: dict) -> dict:
    """The three rates from the counts (one answer's or summed over answers); None where the
    denominator is zero."""

    def share(num: str, den: str) -> Optional[float]:
        return round(counts[num] / counts[den], 4) if counts[den] else None

    return {**counts,
            "citation_precision": share("supported_pairs", "pairs"),
            "citation_recall": share("cited_content_sentences", "content_sentences"),
            "echo_rate": share("echo_sentences", "sentences")}


CITATION_COUNTS = ("pairs", "supported_pairs", "sentences", "echo_sentences", "content_sentences",
                   "cited_content_sentences")
