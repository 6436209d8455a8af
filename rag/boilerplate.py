"""Web furniture in a document's text: ad banners, share/subscribe/newsletter lines, "See also",
"More:" and "Most read" links, author social lines, cookie notices, disclaimers and tag lines.
Scraped articles carry them, and indexed like body text they win retrieval for the wrong reasons
(a "See also" link repeats another article's headline, a banner repeats its keywords) and end up
quoted in answers.

They are found line by line, by what the whole line says, and left out of the chunks (rag/chunks.py
chunks only the content between them). The document text itself is untouched, so chunk offsets keep
pointing into the text the UI shows. Two kinds of furniture stay indexed because questions are asked
about them ("which outlets does the article cite?"): an article's reference list and its "In this
post:" summary box. rag/evidence.py marks those: readable by the model, never quoted."""

from __future__ import annotations

import re
from typing import Iterable

_MAX_LINE = 400  # a line longer than this is prose, whatever words it holds

# Ads and video-player chrome.
_AD = re.compile(
    r"^(advertisement|sponsored( content)?|ad feedback|promoted( content)?|paid content)\W*$"
    r"|^coming soon\b|\bhow relevant is this ad\b"
    r"|\bvideo player was slow to load\b|\bad froze or did not finish loading\b", re.I)
_LEARN_MORE = re.compile(r"(LEARN MORE|Learn More)\W*$")  # a button's capitals: "to learn more." is prose
# Calls to subscribe: a newsletter or inbox spoken of to the reader, a sign-up with what it brings,
# a plea for subscriptions, or a line that opens with the imperative.
_NEWSLETTER = re.compile(r"\b(newsletters?|inbox)\b", re.I)
_TO_READER = re.compile(r"\b(you|your|our|us|here|now|today|join|get|please|free|sign up|subscribe)\b", re.I)
_SIGN_UP = re.compile(r"\b(sign up|subscribe|subscribing)\b.{0,60}?\b(here|now|today|for (free|our|the|updates)|"
                      r"to (get|receive|our|the)|newsletters?|texts?|alerts?)\b", re.I)
_PLEA = re.compile(r"\bsupport (local|our|quality|strong local|important community|independent) journalism\b|"
                   r"\bconsider a subscription\b|\bdigital subscriber\b|\bsubscriber-only\b", re.I)
_IMPERATIVE = re.compile(r"^\W*([\w ’'-]{1,40}:\s*)?(subscribe|sign up|join (now|us|our)|get (our|the latest)|"
                         r"don['’]t miss)\b", re.I)
_REPORTED = re.compile(r"\b(said|says|told|according to|reported)\b|[“”\"]", re.I)
# Share buttons: a line of nothing but share words.
_SHARE_WORD = (r"(share|shares|this|article|story|post|page|link|links|on|via|copy|email|e-mail|print|tweet|"
               r"facebook|twitter|x|linkedin|whatsapp|pinterest|reddit|telegram|flipboard|messenger)")
_SHARE = re.compile(rf"^\W*(share|tweet|copy link)(\W+{_SHARE_WORD})*\W*$", re.I)
# Social and contact lines of the author or the site.
_SOCIAL = re.compile(
    r"^\W*follow\b.{0,80}\b(on (twitter|x|instagram|facebook|tiktok|threads|linkedin|bluesky)|@\w+)"
    r"|\b(reach|contact|email|e-mail) (her|him|them|me|us|the (reporter|author|writer))\b.{0,60}(@|twitter)"
    r"|^\W*(contact|reach)\b.{0,60}\S+@\S+\.\w+", re.I)
# Links to other pages: a heading word, then a colon, a wide gap, a separator or nothing.
_RELATED = re.compile(
    r"^\W*(see also|read more|also read|read next|more from [\w .]{1,40}|most (read|popular|viewed)|"
    r"editor['’]?s (choice|picks)|you (may|might) also like|recommended( for you| reading| stories)?|"
    r"related( articles?| stories| posts?| coverage| content| links| reading| news)?|trending( now| stories)?|"
    r"top stories|more stories|popular now|don['’]t miss|more(?=:))(\s*:|\s{2,}|\s*$|\s+[-–—|»›]\s)", re.I)
_CHROME = re.compile(
    r"^\W*loading\b.{0,60}(\.\.\.|…)\W*$|^\W*(prev(ious)?|next)(\s+(prev(ious)?|next))?\W*$"
    r"|^\W*(skip to (main )?content|back to top)\W*$"
    r"|^\W*(disclaimer)\s*[.:]|\ball rights reserved\b|^\W*(©|copyright\s*(©|\(c\))?)\s*(\d{4}|[A-Z])", re.I)
_PRIVACY = re.compile(r"\b(privacy policy|cookie (policy|settings)|(use|accept|uses) cookies|terms of (use|service))\b",
                      re.I)
_CONSENT = re.compile(r"\b(agree|consent|accept|you have shared|processing|manage your)\b", re.I)
_TAGS = re.compile(r"^\W*(tags|topics|keywords|filed under)\s*:", re.I)
_SHORT = 60  # a line this short between two furniture lines is furniture too ("Get ahead.")


def is_boilerplate(line: str) -> bool:
    """Whether one line, on its own, is page furniture rather than content."""
    line = line.strip()
    if not line or len(line) > _MAX_LINE:
        return False
    if _AD.search(line) or _LEARN_MORE.search(line) or _SHARE.match(line) or _SOCIAL.search(line):
        return True
    if _RELATED.match(line) or _CHROME.search(line) or _TAGS.match(line):
        return True
    if _PRIVACY.search(line) and (_CONSENT.search(line) or len(line) < 80):
        return True
    if _PLEA.search(line):
        return True
    if _REPORTED.search(line):  # someone quoted or reported: content, whatever it speaks of
        return False
    return bool(_IMPERATIVE.match(line) or _SIGN_UP.search(line)
                or (_NEWSLETTER.search(line) and _TO_READER.search(line)))


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, without its newline."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def _is_tag_line(line: str) -> bool:
    """"China AI, Xi Jinping, US-China rivalry, ...": short comma-separated phrases, no sentence."""
    items = [i.strip() for i in line.split(",")]
    return (len(items) >= 5 and not re.search(r"[.!?]\s*$", line)
            and all(0 < len(i.split()) <= 4 for i in items))


def furniture_lines(text: str) -> list[bool]:
    """For each line of text (split at "\\n"), whether it is furniture."""
    spans = _lines(text)
    lines = [text[s:e].strip() for s, e in spans]
    marks = [is_boilerplate(line) for line in lines]
    filled = [i for i, line in enumerate(lines) if line]
    if filled and _is_tag_line(lines[filled[-1]]):
        marks[filled[-1]] = True
    _mark_short_runs_between(lines, marks, filled)
    return marks


def _mark_short_runs_between(lines: list[str], marks: list[bool], filled: list[int]) -> None:
    """A few short lines between two furniture lines are furniture: "Markets move fast." / "We move
    faster." between two newsletter lines. After the last one they are not: a line added at the end
    of a page is as likely content as a sign-off."""
    run: list[int] = []
    before = False
    for n in filled + [None]:
        if n is None or marks[n]:
            after = n is not None and marks[n]
            if run and before and after and len(run) <= 4 and all(len(lines[k]) <= _SHORT for k in run):
                for k in run:
                    marks[k] = True
            run, before = [], n is not None
        else:
            run.append(n)


def content_regions(text: str) -> list[tuple[int, int]]:
    """Character spans of text between furniture lines, whitespace trimmed; the whole text when
    every line would go (a page that is all furniture is still indexed as it is)."""
    regions: list[tuple[int, int]] = []
    start = None
    for (s, _e), furniture in zip(_lines(text), furniture_lines(text)):
        if furniture and start is not None:
            regions.append((start, s))
        start = None if furniture else (s if start is None else start)
    if start is not None:
        regions.append((start, len(text)))
    trimmed = [_trim(text, s, e) for s, e in regions]
    trimmed = [(s, e) for s, e in trimmed if e > s]
    if not trimmed and text.strip():
        return [_trim(text, 0, len(text))]
    return trimmed


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    piece = text[s:e]
    return s + len(piece) - len(piece.lstrip()), e - (len(piece) - len(piece.rstrip()))


def without_furniture(text: str, regions: Iterable[tuple]) -> list[tuple]:
    """The chunker's regions ((start, end, *what else it keeps) of text) cut to the content in them:
    each furniture line splits the region it falls in and is left out."""
    content = content_regions(text)
    out = []
    for start, end, *rest in regions:
        for s, e in content:
            s, e = max(s, start), min(e, end)
            if e > s:
                s, e = _trim(text, s, e)
                if e > s:
                    out.append((s, e, *rest))
    return out


def furniture_text(text: str) -> list[str]:
    """The furniture lines themselves (for reports and tests)."""
    return [text[s:e].strip() for (s, e), m in zip(_lines(text), furniture_lines(text)) if m and text[s:e].strip()]
