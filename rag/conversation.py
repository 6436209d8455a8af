"""Follow-up questions: the conversation so far + the latest question -> a standalone question to
retrieve with ("what about Huawei?" after a question on chips -> a question about Huawei's chips).

With a model-backed generator the model rewrites the question (prompts.CONDENSE_*); the extractive
generator has no model, so a heuristic appends the earlier question's key terms to a follow-up."""

from __future__ import annotations

import re
from typing import Optional

from . import prompts
from .text import MARKER, STOPWORDS

_WORD = re.compile(r"(?u)\w[\w'’-]*")
# Words that carry no topic: question words, pronouns, fillers. A question made only of these and
# a name or two ("what about Huawei?") leans on the earlier question for its topic.
_FILLER = STOPWORDS | frozenset(
    "so regarding concerning tell us more too else again here it's theirs him hers one ones same other "
    "others such thing things any some all both each yes ok okay please thanks mean".split()
)
# References that point back into the conversation.
_ANAPHORA = re.compile(
    r"^\s*(and|but|so|also|what about|how about|what of|same for|and for|then)\b"
    r"|\b(it|its|they|them|their|he|him|his|she|her|these|those|this one|that one|the same)\b",
    re.IGNORECASE,
)
_MAX_TERMS = 8  # terms carried over from the earlier question
_MAX_TURN_CHARS = 400  # of each earlier turn shown to the model


def key_terms(text: str) -> list[str]:
    """Content words in order of appearance, without repeats (case-insensitive)."""
    seen, out = set(), []
    for word in _WORD.findall(MARKER.sub(" ", text)):
        low = word.lower().strip("'’-")
        if len(low) < 2 or low in _FILLER or low in seen:
            continue
        seen.add(low)
        out.append(word.strip("'’-"))
    return out


def is_follow_up(question: str) -> bool:
    """Does the question lean on the conversation for its topic?"""
    terms = key_terms(question)
    if len(terms) <= 2:
        return True
    return bool(_ANAPHORA.search(question)) and len(terms) <= 5


def _user_turns(history: list[dict]) -> list[str]:
    return [str(t.get("content") or "").strip() for t in history
            if t.get("role") == "user" and str(t.get("content") or "").strip()]


def heuristic_standalone(question: str, history: list[dict]) -> str:
    """A follow-up gets the key terms of the latest earlier question that had a topic of its own
    (earlier follow-ups are themselves expanded, so a chain of follow-ups keeps its topic)."""
    earlier = _user_turns(history)
    if not earlier or not is_follow_up(question):
        return question
    previous = heuristic_standalone(earlier[-1], [{"role": "user", "content": q} for q in earlier[:-1]])
    have = {t.lower() for t in key_terms(question)}
    carried = [t for t in key_terms(previous) if t.lower() not in have][:_MAX_TERMS]
    if not carried:
        return question
    return f"{question.rstrip()} ({' '.join(carried)})"


def _clean_model_reply(reply: str, question: str) -> Optional[str]:
    text = reply.strip().strip("`").strip()
    text = re.sub(r"^(standalone question|question|rewritten question)\s*:\s*", "", text, flags=re.I)
    text = text.strip().strip('"“”').strip()
    text = text.splitlines()[0].strip() if text else ""
    # A reply that is empty, a refusal or an essay is no question to search with.
    if not text or len(text) > max(300, 4 * len(question)):
        return None
    return text


def standalone_question(question: str, history: Optional[list[dict]], gen=None) -> str:
    """The question to retrieve with, made understandable without the conversation.
    gen: the generator in use; if it has .complete(messages, max_tokens) the model rewrites."""
    history = [t for t in (history or []) if t.get("role") in ("user", "assistant")]
    if not _user_turns(history):
        return question
    complete = getattr(gen, "complete", None)
    if complete is None:
        return heuristic_standalone(question, history)
    turns = [(t["role"], MARKER.sub("", str(t.get("content") or "")).strip()[:_MAX_TURN_CHARS])
             for t in history[-6:]]
    messages = [
        {"role": "system", "content": prompts.CONDENSE_SYSTEM},
        {"role": "user", "content": prompts.condense_message(turns, question)},
    ]
    try:
        rewritten = _clean_model_reply(complete(messages, max_tokens=96), question)
    except Exception:  # the model failing must not cost the user the answer
        rewritten = None
    if rewritten is None or (is_follow_up(question) and not _adds_terms(rewritten, question)):
        # A small model often repeats a follow-up unchanged: then the heuristic does better.
        return heuristic_standalone(question, history)
    return rewritten


def _adds_terms(rewritten: str, question: str) -> bool:
    return bool({t.lower() for t in key_terms(rewritten)} - {t.lower() for t in key_terms(question)})
