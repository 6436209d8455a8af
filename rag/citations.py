"""Checks an answer's citations against the retrieved passages.

A sentence is supported by a passage when what it *adds* beyond the question (its new content words,
names and numbers) is in that passage, and the passage does not contradict it (a number tied to
another year or name, "not" where the passage affirms). Every marker, whether the model wrote it or
the code adds it, is checked that way: a marker on an unsupported sentence is removed, an uncited
supported sentence gets the passage that supports it. A sentence that adds nothing to the question
is an echo and gets no citation; an answer made only of echoes and unsupported sentences is not an
answer. Refusals become the fixed NOT_FOUND sentence with no citations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .counting import enumeration_counts
from .evidence import table_rows
from .models import Source
from .prompts import NOT_FOUND
from .text import (
    MARKER,
    NUMBER,
    STOPWORDS,
    WORD,
    content_terms,
    markers_in,
    numbers_in,
    split_sentences,
    without_instructions,
)

__all__ = ["MARKER", "markers_in", "numbers_in", "content_terms", "added_terms", "is_echo", "support",
           "supports", "best_support", "support_spans", "is_refusal", "check", "check_answer",
           "Checked", "claims", "asked_statement", "affirmation", "verdict_of"]

# Share of a sentence's added content words a passage must hold to support it.
MIN_SUPPORT = 0.6
# Words that add nothing a reader could check: an answer that adds only these restates the question.
_VAGUE = frozenset(content_terms(
    "now currently also still just really very many various several some certain significant important "
    "key main major overall generally new recent recently deliver delivered make made take taken give "
    "given get got happen happened discuss discussed mention mentioned talk talked describe described "
    "state stated note noted report reported article articles document documents passage passages text "
    "question answer yes more less beyond itself suggest suggests suggested indicate indicates show shows "
    "play plays role crucial ability way ways thing things aspect aspects"
))
_NEGATION = re.compile(r"\b(not|no|never|neither|nor|none|cannot|without)\b|n't\b", re.IGNORECASE)
_REFUSAL = re.compile(
    r"(do(es)?\s*n[o']t|does not|do not)\s+(contain|mention|provide|include|say|specify|state|cover|have)"
    r"|\bno (information|mention|details?)\b|not (mentioned|provided|specified|stated|found|available|covered)\b"
    r"|\bcannot (be )?(answer|determine|find)|\bunable to (answer|determine|find)"
    r"|无法|没有提(到|及)|未提(到|及)|不包含",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w&'-]*[A-Za-z]|\b[A-Z]{2,}\b")


# ---- what a sentence adds ------------------------------------------------------------------------
def added_terms(sentence: str, question: str = "") -> frozenset[str]:
    """Content terms of the sentence that the question does not already hold."""
    return content_terms(MARKER.sub(" ", sentence)) - content_terms(question)


def is_echo(sentence: str, question: str) -> bool:
    """True when the sentence only restates the question (adds no checkable word or number)."""
    plain = MARKER.sub(" ", sentence)
    if numbers_in(plain) - numbers_in(question):
        return False
    return not (added_terms(plain, question) - _VAGUE)


def _names(text: str) -> set[str]:
    """Capitalised words that are not at a sentence start: the names a sentence relies on."""
    return {w.lower() for w in _NAME.findall(text)}


_CAPITALISED = re.compile(r"\b[A-Z][\w&'-]*")


def _capitalised_terms(text: str) -> frozenset[str]:
    """Stemmed capitalised words, those opening a sentence too: "German Chancellor ..." names Germany."""
    return content_terms(" ".join(_CAPITALISED.findall(text)))


def _same_name(a: str, b: str) -> bool:
    """Forms of one name: "germani"/"german", "brazil"/"brazilian", "china"/"chines" (stems). Apart
    from a shared beginning of at least four letters the shorter may differ in one letter at most, so
    "austria" is not "australia"."""
    short, common = min(len(a), len(b)), 0
    while common < short and a[common] == b[common]:
        common += 1
    return common >= 4 and short - common <= 1


def _name_forms_held(terms: frozenset[str], sentence: str, passage: str) -> frozenset[str]:
    """The sentence's name terms that the passage holds in another form: "Germany will send tanks"
    rests on "German Chancellor Olaf Scholz said his country would provide tanks"."""
    names = terms & _capitalised_terms(sentence)
    if not names:
        return frozenset()
    theirs = _capitalised_terms(passage)
    return frozenset(t for t in names if any(_same_name(t, p) for p in theirs))


def _spelled_out(acronym: str, passage: str) -> bool:
    """"AI" stands in a passage that says "artificial intelligence"."""
    if not 2 <= len(acronym) <= 6 or not acronym.isalpha():
        return False
    words = [w for w in _tokens(passage) if w not in STOPWORDS]
    n = len(acronym)
    return any("".join(w[0] for w in words[i:i + n]) == acronym for i in range(len(words) - n + 1))


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in WORD.findall(text)]


_CLAUSE = re.compile(r"[,;:]\s|\s(?:and|but|while|whereas|versus|vs\.?|compared with|up from|down from)\s|[()]")


_TIE = 5  # words either side of a number: a name further off is another fact of the clause


def _anchors(text: str, names: set[str]) -> set[str]:
    return {t for t in _tokens(text) if t[0].isdigit() or t in names}


def _tied(clause: str, names: set[str]) -> set[str]:
    """The numbers of the clause and the names near them ("Huawei sold 20 million phones")."""
    toks = _tokens(clause)
    near = {j for i, t in enumerate(toks) if t[0].isdigit() for j in range(i - _TIE, i + _TIE + 1)}
    return {t for j, t in enumerate(toks) if t[0].isdigit() or (t in names and j in near)}


def _anchors_agree(sentence: str, passage: str) -> bool:
    """Numbers must stand with the same numbers and names as in the passage: "$15 billion in 2022"
    is not supported by "$10 billion in 2022 and $15 billion in 2023". Each clause of the sentence
    that ties a number to another number or name needs a passage clause holding the same ones, or a
    passage sentence holding them and no other number (nothing there could have been swapped)."""
    if not NUMBER.search(sentence):
        return True
    # Sentence-initial capitals count here ("Huawei sold ..."): a stray common word only makes the
    # clause need one more passage word, which a faithful sentence has.
    names = {w.lower() for w in re.findall(r"\b[A-Z][\w&'-]*", sentence)} - STOPWORDS
    in_passage = set(_tokens(passage))
    p_sentences = [passage[s:e] for s, e in split_sentences(passage)]
    p_clauses = [set(_tokens(c)) for ps in p_sentences for c in _CLAUSE.split(ps)]
    p_whole = [(set(_tokens(ps)), _anchors(ps, set())) for ps in p_sentences]
    # A name the passage never writes beside a number cannot have had its number swapped.
    numbered = set().union(*(toks for toks, nums in p_whole if nums))
    for clause in _CLAUSE.split(sentence):
        tied = _tied(clause, names) & in_passage & numbered
        if len(tied) < 2 or not any(t[0].isdigit() for t in tied):
            continue
        if any(tied <= c for c in p_clauses):
            continue
        numbers = {t for t in tied if t[0].isdigit()}
        if not any(tied <= toks and nums <= numbers for toks, nums in p_whole):
            return False
    return True


def _window(sentence_terms: frozenset[str], passage: str) -> str:
    """The one or two adjacent passage sentences that hold most of the sentence's terms: negation
    is compared against what the passage says about the same thing, not anywhere in it."""
    spans = split_sentences(passage) or [(0, len(passage))]
    texts = [passage[s:e] for s, e in spans]
    windows = texts + [f"{a} {b}" for a, b in zip(texts, texts[1:])]
    return max(windows, key=lambda w: (len(sentence_terms & content_terms(w)), -len(w)))


def _negates(text: str, about: frozenset[str]) -> bool:
    """Does a "not"/"no"/"never" in the text bear on these terms (one of them within four words after
    it)? A passage's "not just the powerful" says nothing against a claim about education."""
    for m in _NEGATION.finditer(text):
        following = " ".join(WORD.findall(text[m.end():])[:4])
        if content_terms(following) & about:
            return True
    return False


_RESTATED = 4  # words in a row copied from the question: its own words, restated, not a claim


def _unrestated(sentence: str, question: str) -> str:
    """The sentence without the runs of words it copies from the question ("According to the 2025
    review and the article on X, China ..."): a number inside them is the question's, not a claim."""
    asked = [w.lower() for w in WORD.findall(question)]
    runs = {tuple(asked[i:i + _RESTATED]) for i in range(len(asked) - _RESTATED + 1)}
    words = list(WORD.finditer(sentence))
    copied = [False] * len(words)
    for i in range(len(words) - _RESTATED + 1):
        if tuple(m.group(0).lower() for m in words[i:i + _RESTATED]) in runs:
            copied[i:i + _RESTATED] = [True] * _RESTATED
    if not any(copied):
        return sentence
    out, last = [], 0
    for m, drop in zip(words, copied):
        if drop:
            out.append(sentence[last:m.start()])
            last = m.end()
    out.append(sentence[last:])
    return "".join(out)


def support(sentence: str, passage: str, question: str = "") -> float:
    """Share of what the sentence adds beyond the question that the passage holds (0..1); 0 when
    the passage disagrees with it (numbers, names tied to numbers, negation). Sentences of the
    passage that address the assistant ("ignore previous instructions ...") are no evidence."""
    plain = MARKER.sub(" ", sentence)
    passage = without_instructions(passage)
    # table rows read with their header too: "Quantity: 731" is what the row says under its column
    passage += "".join(f"\n{reading}" for _, _, reading in table_rows(passage))
    added = added_terms(plain, question) - _VAGUE  # "the article says" is not a claim to check
    if not added:
        return 0.0
    claimed = _unrestated(plain, question)
    if (not numbers_in(claimed) <= numbers_in(passage) | enumeration_counts(passage)
            or not _anchors_agree(claimed, passage)):
        return 0.0
    held = added & content_terms(passage)
    held |= _name_forms_held(added - held, plain, passage)
    if len(held) / len(added) < 0.5:  # clearly unsupported: the finer checks cannot change that
        return len(held) / len(added)
    window = _window(added, passage)
    if _negates(plain, added) != _negates(window, added):
        return 0.0
    # Names the sentence adds must be the passage's names, not merely its topic words.
    in_passage = content_terms(passage)
    missing_names = {n for n in _names(plain) - _names(question)
                     if not content_terms(n) <= in_passage | held and not _spelled_out(n, passage)}
    if missing_names:
        return 0.0
    return len(held) / len(added)


def supports(sentence: str, passage: str, question: str = "", min_support: float = MIN_SUPPORT) -> bool:
    return support(sentence, passage, question) >= min_support


def best_support(sentence: str, sources: Sequence[Source], question: str = "") -> tuple[float, Optional[int]]:
    """(support, marker) of the source that best supports the sentence."""
    best: tuple[float, Optional[int]] = (0.0, None)
    for s in sources:
        score = support(sentence, s.text, question)
        if score > best[0]:
            best = (score, s.marker)
    return best


def support_spans(answer: str, source: Source, question: str = "") -> list[tuple[int, int]]:
    """Character spans of the passage's sentences that support the answer sentences citing it: a
    quoted sentence found verbatim, else the passage sentence that best supports the claim."""
    claims = [MARKER.sub("", answer[s:e]).strip().strip("“”\"").strip() for s, e in split_sentences(answer)
              if source.marker in markers_in(answer[s:e])]
    spans = set()
    sentences = split_sentences(source.text)
    for claim in filter(None, claims):
        at = source.text.find(claim)
        if at >= 0:
            spans.add((at, at + len(claim)))
            continue
        scored = [(support(claim, source.text[s:e], question), s, e) for s, e in sentences]
        scored += [(support(claim, reading, question), s, e) for s, e, reading in table_rows(source.text)]
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


# ---- answers -------------------------------------------------------------------------------------
def is_refusal(answer: str) -> bool:
    text = MARKER.sub("", answer).strip()
    if not text:
        return True
    if NOT_FOUND.lower().rstrip(".") in text.lower():
        return True
    spans = split_sentences(text)
    first = text[: spans[0][1]] if spans else text
    return bool(_REFUSAL.search(first))


def _cite(sentence: str, markers: list[int]) -> str:
    """The sentence with its markers before the final full stop (after a closing quote)."""
    body = MARKER.sub("", sentence).rstrip()
    if not markers:
        return body
    mark = "".join(f" [{m}]" for m in markers)
    end = re.search(r"[.!?。！？]+$", body)
    if end:
        return f"{body[: end.start()]}{mark}{body[end.start():]}"
    return f"{body}{mark}"


@dataclass
class Claim:
    """One answer sentence and what the check found."""

    text: str  # without markers
    markers: list[int]  # the markers it keeps
    echo: bool
    supported: bool


# Where to go or pay: what a planted instruction wants an answer to carry ("send payment to IBAN
# DE89 ...", "visit http://evil.example"). Never part of an answer unless the question asks for it.
_CONTACT = re.compile(r"https?://|\bwww\.\w|\b[\w.+-]+@[\w-]+\.\w{2,}\b|\bIBAN\b|\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,}"
                      r"|\b(account (number|no\.?|#)|bank account|routing number|sort code|wallet address|"
                      r"bitcoin address|password|passcode)", re.I)
_ASKS_CONTACT = re.compile(r"\b(url|link|website|web site|site|address|e-?mail|contact|iban|account|routing|"
                           r"sort code|wallet|bitcoin|password|passcode|pay|payment)s?\b", re.I)


def unasked_contact(sentence: str, question: str) -> bool:
    """Does the sentence carry a link, address, account or password the question did not ask for?"""
    return bool(_CONTACT.search(sentence)) and not _ASKS_CONTACT.search(question)


def _claim(sentence: str, sources: Sequence[Source], question: str,
           min_support: float = MIN_SUPPORT) -> Optional[Claim]:
    """What the check finds for one sentence; None for a piece with no words (a heading mark)."""
    plain = MARKER.sub("", sentence).strip()
    if not re.search(r"\w", plain):
        return None
    if is_echo(plain, question):
        return Claim(plain, [], True, False)
    if unasked_contact(plain, question):
        return Claim(plain, [], False, False)
    by_marker = {s.marker: s for s in sources}
    written = [m for m in dict.fromkeys(markers_in(sentence)) if m in by_marker]
    kept = [m for m in written if supports(plain, by_marker[m].text, question, min_support)]
    if not kept:
        score, marker = best_support(plain, sources, question)
        if marker is not None and score >= min_support:
            kept = [marker]
    return Claim(plain, kept, False, bool(kept))


def claims(answer: str, sources: Sequence[Source], question: str = "") -> list[Claim]:
    """The answer's sentences, each with the markers that survive the check: a marker the model
    wrote stays when its passage supports the sentence; otherwise the best supporting passage's."""
    found = (_claim(answer[s:e], sources, question) for s, e in split_sentences(answer))
    return [c for c in found if c is not None]


# ---- true or false, yes or no ---------------------------------------------------------------------
_TRUE_OR_FALSE = re.compile(r"\btrue\s+or\s+false\b\s*[:?.]?", re.I)
# "Can you list ...?" is a request, not a yes/no question
_YES_NO = re.compile(r"^\s*(is|are|was|were|does|do|did|has|have|had|can|could|will|would|should)\b"
                     r"(?!\s+(you|we|i)\b)", re.I)
_VERDICT = re.compile(r"^\W*(yes|no|true|false)\b[\s,.:;!—–-]*", re.I)


def asked_statement(question: str) -> Optional[str]:
    """The statement a "true or false" or yes/no question asks about ("Punxsutawney Phil saw his
    shadow. True or false?"); None for other questions. Restating it is the answer to such a
    question, not an echo, so its every word is a claim to check."""
    if _TRUE_OR_FALSE.search(question):
        return _TRUE_OR_FALSE.sub(" ", question).strip(" :?.")
    if _YES_NO.match(question):
        return question.strip().rstrip("?")
    return None


def _verdict(sentence: str) -> Optional[tuple[bool, str, str]]:
    """(affirms, the sentence without markers, what follows the verdict word) for a sentence opening
    with "Yes"/"True" or "No"/"False"; None otherwise."""
    plain = MARKER.sub("", sentence).strip()
    m = _VERDICT.match(plain)
    return None if m is None else (m.group(1).lower() in ("yes", "true"), plain, plain[m.end():].strip())


def verdict_of(sentence: str) -> Optional[bool]:
    """True for a sentence opening with "Yes"/"True", False for "No"/"False", None otherwise."""
    found = _verdict(sentence)
    return None if found is None else found[0]


def affirmation(question: str) -> str:
    """How the question's statement is affirmed: "True" or "Yes"."""
    return "True" if _TRUE_OR_FALSE.search(question) else "Yes"


def _verdict_claim(sentence: str, statement: str, sources: Sequence[Source]) -> Optional[Claim]:
    """A sentence opening with "True"/"Yes" or "False"/"No". "True" stands when a passage supports
    the statement, and cites it; "False" only when none does, and rests on what the answer goes on
    to say (checked as the answer's other sentences). None for a sentence without a verdict."""
    found = _verdict(sentence)
    if found is None:
        return None
    positive, plain, rest = found
    held, cite = _statement_support(statement, sources)
    agrees = held == positive
    if rest and agrees:
        said = _claim(rest, sources, "")
        if said is None or not said.supported:
            return Claim(plain, [], False, False)
        return Claim(plain, said.markers, False, True)
    return Claim(plain, cite if positive and agrees else [], False, agrees)


def _statement_support(statement: str, sources: Sequence[Source]) -> tuple[bool, list[int]]:
    """Whether a passage supports the statement, or one document's passages read together do (its
    parts may stand in neighbouring chunks), and the markers to cite for it."""
    score, marker = best_support(statement, sources)
    if marker is not None and score >= MIN_SUPPORT:
        return True, [marker]
    by_doc: dict[str, list[Source]] = {}
    for s in sources:
        by_doc.setdefault(s.doc_id, []).append(s)
    for parts in by_doc.values():
        parts = sorted(parts, key=lambda s: s.start)
        if len(parts) > 1 and supports(statement, "\n".join(s.text for s in parts)):
            return True, [s.marker for s in parts]
    return False, []


@dataclass
class Checked:
    answer: str
    answered: bool
    claims: list[Claim]


def check_answer(answer: str, sources: Sequence[Source], question: str = "",
                 min_support: float = MIN_SUPPORT) -> Checked:
    """The checked answer: supported sentences with their markers, in place; echoes and unsupported
    sentences dropped. Not answered when no sentence is supported."""
    if is_refusal(answer) or not sources:
        return Checked(NOT_FOUND, False, [])
    statement = asked_statement(question)
    pieces, found, last = [], [], 0
    for start, end in split_sentences(answer):
        pieces.append(answer[last:start])
        last = end
        claim = None if statement is None else _verdict_claim(answer[start:end], statement, sources)
        if claim is None:
            # restating the statement answers a yes/no question: every word of it is a claim
            claim = _claim(answer[start:end], sources, "" if statement is not None else question, min_support)
        if claim is None:
            pieces.append(answer[start:end])
            continue
        found.append(claim)
        if claim.supported:
            pieces.append(_cite(answer[start:end], claim.markers))
    pieces.append(answer[last:])
    if not any(c.supported and c.markers for c in found):  # a bare "False." is no answer
        return Checked(NOT_FOUND, False, found)
    text = re.sub(r"[ \t]{2,}", " ", "".join(pieces))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Checked(text, True, found)


def check(answer: str, sources: Sequence[Source], question: str = "") -> tuple[str, bool]:
    """(checked answer, answered). A refusal becomes the plain NOT_FOUND sentence."""
    result = check_answer(answer, sources, question)
    return result.answer, result.answered
