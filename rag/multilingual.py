"""Questions in another language than the documents: detect the question's language, translate it
into English for retrieval, and translate a cited English answer back sentence by sentence so that
every translated sentence keeps the citation its English sentence earned."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Iterator, Optional

from . import prompts
from .errors import GeneratorError
from .text import MARKER, markers_in, split_sentences

# Non-Latin scripts, checked in this order (kana before Han: Japanese mixes both).
_SCRIPTS = [
    ("Japanese", re.compile(r"[\u3040-\u30ff]")),
    ("Korean", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("Chinese", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")),
    ("Russian", re.compile(r"[\u0400-\u04ff]")),
    ("Arabic", re.compile(r"[\u0600-\u06ff]")),
    ("Hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("Hindi", re.compile(r"[\u0900-\u097f]")),
    ("Thai", re.compile(r"[\u0e00-\u0e7f]")),
    ("Greek", re.compile(r"[\u0370-\u03ff]")),
]
# Latin-script languages by their commonest function words (an English question has none of them).
_FUNCTION_WORDS = {
    "French": "le la les des est une qui que quel quelle quels quelles pour dans avec sur du au aux ont sont été "
              "où comment pourquoi selon",
    "Spanish": "el los las es una qué cuál cuáles para con por del está son han fue cómo dónde quién según sobre",
    "German": "der die das ist ein eine und nicht mit für auf wer was welche welcher wie haben sind den dem "
              "des hat sich wo warum laut",
    "Portuguese": "os as é um uma qual quais para com do da dos das não são foi como onde quem segundo",
    "Italian": "il lo gli è una che quale quali per con del della sono ha come dove chi secondo",
}
_ENGLISH_WORDS = frozenset(
    "the an is are was were what which who whom where when why how of to in on for with by from "
    "does do did has have about according".split()
)
_WORDS = re.compile(r"(?u)[^\W\d_]+")


def language_of(text: str) -> Optional[str]:
    """The question's language when it is not English (as far as cheap evidence tells), else None."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    joined = "".join(letters)
    for language, script in _SCRIPTS:
        # Names in Latin letters ("DeepSeek") are common in these questions; a third is plenty.
        if len(script.findall(joined)) >= max(1, len(letters) // 3):
            return language
    words = [w.lower() for w in _WORDS.findall(text)]
    if any(w in _ENGLISH_WORDS for w in words):
        return None
    hits = {lang: sum(w in set(fw.split()) for w in words) for lang, fw in _FUNCTION_WORDS.items()}
    language, best = max(hits.items(), key=lambda kv: kv[1])
    return language if best >= 2 else None


def _clean(reply: str) -> str:
    reply = reply.strip().strip('"“”').strip()
    return reply.splitlines()[0].strip() if reply else reply


def english_question(question: str, gen) -> str:
    """The question in English, translated by the generator's model; the question itself when it is
    English already or no model can translate it."""
    if language_of(question) is None or not getattr(gen, "can_complete", False):
        return question
    try:
        return _to_english(gen, question)
    except GeneratorError:
        return question  # retrieval with the original words still works for names and numbers


@lru_cache(maxsize=256)
def _to_english(gen, question: str) -> str:
    """Cached per model and question: condensing, retrieval and answering translate it once.
    A failure raises, so it is not cached."""
    messages = [{"role": "system", "content": prompts.TRANSLATE_TO_ENGLISH}]
    for asked, english in prompts.TRANSLATION_EXAMPLES:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": english}]
    english = _clean(gen.complete(messages + [{"role": "user", "content": question}], max_tokens=64))
    return english or question


def translate_cited(answer: str, language: str,
                    stream_chat: Callable[[list[dict], int], Iterator[str]]) -> Iterator[str]:
    """Translate a checked English answer sentence by sentence; each translation ends with the markers
    of its English sentence, so the citations stay attached to what they support."""
    joiner = "" if language in ("Chinese", "Japanese") else " "
    first = True
    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        markers = list(dict.fromkeys(markers_in(sentence)))
        plain = MARKER.sub("", sentence).strip()
        if not plain:
            continue
        if not first and joiner:
            yield joiner
        first = False
        messages = [{"role": "system", "content": prompts.translate_from_english(language)},
                    {"role": "user", "content": plain}]
        pending = ""
        for delta in stream_chat(messages, 160):
            pending += delta
            # Hold back a marker the model may have copied, and the closing punctuation, which the
            # citation goes in front of.
            cut = pending.rfind("[")
            cut = cut if cut >= 0 else max(0, len(pending) - 2)
            ready, pending = pending[:cut], pending[cut:]
            if ready:
                yield MARKER.sub("", ready)
        yield _with_markers(MARKER.sub("", pending).rstrip(), markers)


_END = re.compile(r"[.!?。！？]+[\"'”’)」]*$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _with_markers(tail: str, markers: list[int]) -> str:
    if not markers:
        return tail
    mark = "".join(f"[{m}]" for m in markers)
    end = _END.search(tail)
    at = end.start() if end else len(tail)
    sep = "" if at == 0 or _CJK.match(tail[at - 1]) else " "
    return f"{tail[:at]}{sep}{mark}{tail[at:]}"
