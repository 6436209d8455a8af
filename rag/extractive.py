"""The extractive generator: no model, it quotes the passage units that answer the question, each
with its marker. Also the fallback when a model declines wrongly or writes what no passage supports,
so it quotes only what carries the kind of thing the question asks for (a number for "how many", a
name or role for "who", a name for "which company", a date for "when") and says "not found" otherwise."""

from __future__ import annotations

import math
import re
from typing import Callable, Iterator, Optional

from . import prompts
from .citations import added_terms, affirmation, asked_statement, is_echo, supports
from .counting import count_answer
from .evidence import Unit, passage_units, rank_units
from .generators import Generator, register
from .models import Source
from .settings import Settings
from .text import MARKER, NUMBER, STOPWORDS, WORD, content_terms, split_sentences

_LITTLE = 3  # added content words under which a sentence needs the one after it
_NEAR = 0.7  # a next sentence scoring this share of the best one's score is part of the answer
# The reason usually follows the claim: "Experts warn X is difficult. It requires Y."
_ASKS_REASON = re.compile(r"^\s*why\b|\bwhat (makes|made|causes|caused)\b|\bfor what reason\b", re.I)
# Reference lists are furniture, except to a question about them.
_ASKS_SOURCES = re.compile(r"\b(sources?|references?|cited|cites|outlets?|bibliography|listed at the end)\b", re.I)

_NEEDS = [
    ("number", re.compile(r"\bhow (many|much|large|big|long|far|old)\b"
                          r"|\bwhat (percentage|share|number|amount|proportion)\b"
                          r"|\b(the|exact|total) number of\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\b(what|which) (year|month|day|date|week)\b|\bin what (year|month)\b", re.I)),
    # "Which company / lab / university ...": a name answers it; "tech giants and state labs" does not.
    ("name", re.compile(r"\b(which|what) (\w+ ){0,2}?(universit(y|ies)|compan(y|ies)|organi[sz]ations?|firms?|"
                        r"institutions?|agenc(y|ies)|outlets?|newspapers?|ministr(y|ies)|labs?|laborator(y|ies)|"
                        r"startups?|institutes?|brands?|countr(y|ies)|cit(y|ies))\b", re.I)),
    # News quizzes: "Which team ...", "Which US state's governor ...", "Which former pope ...". Only after
    # "which": "what does the state fund?" asks for no name.
    ("name", re.compile(r"\bwhich (?!(does|did|do|is|are|was|were|has|have|had|will|would|can|could)\b)"
                        r"(\w+ ){0,2}?(states?|nations?|capitals?|regions?|islands?|towns?|teams?|clubs?|"
                        r"airlines?|chains?|retailers?|banks?|networks?|films?|movies?|shows?|series|bands?|"
                        r"singers?|stars?|artists?|actors?|actress(es)?|players?|athletes?|politicians?|"
                        r"figures?|popes?|billionaires?|part(y|ies)|tournaments?|apps?|platforms?|websites?)\b",
                        re.I)),
    ("who", re.compile(r"^\s*(who|whom|whose)\b|\b(by|to|from|according to) whom\b|[,;] who\b"
                       r"|\b(which|what) (person|people|group|official|officials|leader|leaders)\b", re.I)),
]
_NUMBER_WORDS = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|dozens|hundreds?|thousands?|"
    r"millions?|billions?|trillions?|half|percent)\b", re.I)
_DATE = re.compile(
    r"\b(1[89]\d\d|20\d\d)\b|\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|last (week|month|year))\b")
# Who: a name (a capitalised word not opening a sentence or a quote) or a role.
_NAME = re.compile(r"(?<![.!?“\"]\s)(?<![.!?“\"])(?<!^)\b[A-Z][\w&-]*[a-z][\w&-]*\b")
_ROLE = re.compile(
    r"\b(analysts?|scientists?|officials?|experts?|researchers?|leaders?|government|ministry|lawmakers?|"
    r"legislat\w+|congress|premier|president|founders?|executives?|companies|company|firms?|body|agency|"
    r"commission|council|authorities|entrepreneurs?|engineers?|spokesm[ae]n|spokeswoman|ceo|chairman|minister|"
    r"regulators?|universit(y|ies)|institutes?)\b", re.I)


# Capitalised words that open sentences without naming anyone.
_OPENERS = frozenset(
    "however despite meanwhile although though while after before since today yesterday last many most some "
    "several such instead still yet also according as if when where because overall first second third "
    "finally recently currently now later earlier indeed".split())


def _proper_names(text: str) -> set[str]:
    """Names in the text, those opening a sentence too ("Huawei, a key player ..., is leading",
    "France 24, “Title.”"), unless the word only opens it ("However", "Analysts") or a quote."""
    found = {m.group(0).lower() for m in _NAME.finditer(text)}
    for start, _ in split_sentences(text):
        first = re.match(r"\(?([A-Z][\w&-]*)", text[start:])  # not a quote's first word: “Building ...”
        word = first.group(1).lower() if first else ""
        if word and word not in STOPWORDS and word not in _OPENERS and not _ROLE.fullmatch(word):
            found.add(word)
    return found


def _agents(text: str) -> set[str]:
    return {m.group(0).lower() for m in _NAME.finditer(text)} | {m.group(0).lower() for m in _ROLE.finditer(text)}


def question_need(question: str) -> Optional[str]:
    """What kind of answer the question asks for: "number", "date", "name", "who", or None."""
    for need, pattern in _NEEDS:
        if pattern.search(question):
            return need
    return None


def carries(text: str, need: Optional[str], question: str) -> bool:
    """Does the text hold something of the asked kind that the question does not already hold?"""
    if need is None:
        return True
    text = MARKER.sub(" ", text)  # "[1]" is no number
    if need == "number":
        found = set(NUMBER.findall(text)) | {w.lower() for w in _NUMBER_WORDS.findall(text)}
        asked = set(NUMBER.findall(question)) | {w.lower() for w in _NUMBER_WORDS.findall(question)}
        return bool(found - asked)
    if need == "date":
        return bool({m.group(0) for m in _DATE.finditer(text)} - {m.group(0) for m in _DATE.finditer(question)})
    if need == "name":
        return bool(_proper_names(text) - {w.lower() for w in WORD.findall(question)})
    return bool(_agents(text) - _agents(question) - {w.lower() for w in WORD.findall(question)})


@register("extractive")
class ExtractiveGenerator(Generator):
    """Quotes the units that best answer the question, each with its marker."""

    name = "extractive"

    def __init__(self, settings: Optional[Settings] = None, embedder=None,
                 idf: Optional[Callable[[str], float]] = None, min_score: float = 0.35, max_quotes: int = 2):
        self.settings = settings or Settings()
        self.embedder = embedder
        self.min_score = min_score
        self.max_quotes = max_quotes

    def rank(self, question: str, sources: list[Source],
             units: Optional[list[Unit]] = None) -> list[tuple[float, Unit]]:
        """Units that add something of the asked kind, best first: rare question words and meaning.
        units: the sources' units, when the caller has cut them already."""
        need = question_need(question)
        if units is None:
            units = [u for rank, src in enumerate(sources) for u in passage_units(src, rank)]
        asks_sources = bool(_ASKS_SOURCES.search(question))
        # a sentence restating what a yes/no question asks about answers it: no echo
        echoed = "" if asked_statement(question) else question
        ranked = rank_units(question, units, self.embedder,
                            keep=lambda u: self._quotable(u, need, echoed, asks_sources))
        return [(score, units[i]) for score, i in ranked]

    @staticmethod
    def _quotable(unit: Unit, need: Optional[str], question: str, asks_sources: bool = False) -> bool:
        """A full sentence (not a heading; a reference entry only when sources are asked for) that
        adds something of the asked kind. A lead-in ("Several factors will shape it.") is judged
        with the sentences that name what it announces."""
        said = unit.text if unit.lead_in else unit.key
        return (unit.complete and (asks_sources or not unit.furniture) and len(unit.key) >= 25
                and carries(said, need, question) and not is_echo(said, question)
                and bool(added_terms(said, question)))

    @staticmethod
    def _continuation(best: Unit, units: list[Unit], question: str,
                      scores: Optional[dict[tuple[int, int], float]] = None) -> Optional[Unit]:
        """The sentence after the best one, when the answer goes on there: it holds question words
        the best one lacks ("...met with Xi. The meeting underscored that they uphold ..."), it
        answers nearly as well itself, or the best one says little beyond the question ("Experts
        warn independence is difficult.")."""
        nxt = next((u for u in units if u.marker == best.marker and u.rank == best.rank
                    and u.order == best.order + 1), None)
        if nxt is None or nxt.furniture or not nxt.complete or best.lead_in or nxt.parts[0] in best.parts:
            return None
        missing = content_terms(question) - content_terms(best.text)
        own = scores.get((best.rank, best.order), math.inf) if scores is not None else math.inf
        near = scores is not None and scores.get((nxt.rank, nxt.order), 0.0) >= _NEAR * own
        if (missing & content_terms(nxt.key) or len(added_terms(best.key, question)) <= _LITTLE
                or _ASKS_REASON.search(question) or near):
            return nxt
        return None

    def choose(self, question: str, sources: list[Source]) -> list[Unit]:
        """The units the answer quotes, in answer order: the best and a runner-up scoring near it,
        each with the sentence it goes on into; none when nothing quotable scores min_score."""
        units = [u for rank, src in enumerate(sources) for u in passage_units(src, rank)]
        ranked = self.rank(question, sources, units)
        if not ranked or ranked[0][0] < self.min_score:
            return []
        best = ranked[0][0]
        chosen = [u for score, u in ranked[: self.max_quotes] if score >= 0.8 * best]
        scores = {(u.rank, u.order): score for score, u in ranked}
        out: list[Unit] = []
        for unit in chosen:
            out += [u for u in self._going_on(unit, units, question, scores) if u not in out]
        return out

    def _going_on(self, unit: Unit, units: list[Unit], question: str,
                  scores: dict[tuple[int, int], float]) -> list[Unit]:
        """The unit and the sentence its answer goes on into ("The stakes extend beyond technology.
        AI leadership impacts ..."). Overlapping chunks hold the same sentence; the answer may go on
        only in the copy where the chunk does not end with it."""
        for copy in [unit] + [u for u in units if u.key == unit.key and u is not unit]:
            follow = self._continuation(copy, units, question, scores)
            if follow is not None:
                return [copy, follow]
        return [unit]

    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        counted = count_answer(question, sources)
        if counted is not None:
            yield counted
            return
        chosen = self.choose(question, sources)
        if not chosen:
            yield prompts.NOT_FOUND
            return
        statement = asked_statement(question)
        if statement and supports(statement, " ".join(u.text for u in chosen)):
            yield f"{affirmation(question)}. "  # "False" would need more than quotes: a model's reading
        yield prompts.EXTRACTIVE_PREFIX + quote(chosen)


def quote(units: list[Unit]) -> str:
    """Each sentence of the units once, in quotes, with its marker; a sentence already quoted
    (overlapping chunks, or the context of another unit) is not quoted twice."""
    quotes: list[str] = []
    seen: set[str] = set()
    for unit in units:
        for part in unit.parts:
            if part not in seen:
                seen.add(part)
                quoted = part if "“" in part or '"' in part else f"“{part}”"  # no quotes in quotes
                quotes.append(f"{quoted} [{unit.marker}]")
    return " ".join(quotes)
