"""Stage 6: a question -> a checked, cited Answer, as a pipeline of small steps:

    condense follow-up -> translate -> retrieve -> gate -> generate -> check citations
    -> fall back -> translate back

Each step is a method that can be read, tested and timed alone. `run` strings them together and
streams text as it is generated; the last item it yields is the checked Answer."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Union

from . import citations, multilingual, prompts
from .counting import count_answer
from .errors import GeneratorError
from .extractive import carries, question_need
from .generators import Generator, local_available, make_generator, resolve_name
from .models import Answer, Source
from .named import descriptions, named_documents, opening_sentences

if TYPE_CHECKING:
    from .api import RAG

# "What do the articles say about X?", "according to the review and the article on Y": answered per
# document, each part cited to its own document.
_MULTI_DOCUMENT = re.compile(
    r"\b(the|both|all|which|each|these|those|two|three|several|different) (articles|documents|reports|sources|"
    r"stories|texts|files|pieces)\b|\b(article|review|report|document)\b[^?]*\band the (article|review|report|"
    r"document)\b", re.IGNORECASE)
# Documents judged for a question about several of them, the passages each brings, and how close to
# the best document's score another must come to be answered from too.
_DOCUMENTS_JUDGED = 8
_PASSAGES_PER_DOCUMENT = 3
_DOCUMENT_NEAR = 0.75
_OPENINGS_POOL = 30  # passages searched for the documents whose opening may name a described one
# ", and on which day ...", "? When ...": where a second question starts.
_COMPOUND = re.compile(
    r",?\s+and\s+(?=(?:on|in|at|for|by|to|from|with|since)?\s*(?:which|what|who|whom|whose|when|where|how|why)\b)"
    r"|(?<=\?)\s+(?=(?:Which|What|Who|Whom|Whose|When|Where|How|Why)\b)", re.IGNORECASE)


@dataclass
class Turn:
    """What the steps know about one question so far."""

    asked: str  # as the user typed it
    question: str = ""  # standalone (follow-ups resolved)
    english: str = ""  # what retrieval and the generator see
    language: Optional[str] = None  # the question's language when not English
    # The documents the question is limited to (None: all). Kept on the turn so every search made for
    # it (the condensed, translated question, and each part of a question in parts) is limited alike.
    doc_ids: Optional[list[str]] = None
    sources: list[Source] = field(default_factory=list)
    # The passages as the generator read them (None: as retrieved); its answer is checked against these.
    read: Optional[list[Source]] = None
    generator: str = "extractive"
    fallback: Optional[str] = None
    text: str = ""
    checked: Optional[citations.Checked] = None  # set by a step that checked its parts itself
    # A question in parts ("on which day did X ..., and on which day did Y ...?"): each part with the
    # sources retrieved for it, answered one by one.
    parts: list[tuple[str, list[Source]]] = field(default_factory=list)


class Pipeline:
    def __init__(self, bot: "RAG"):
        self.bot = bot
        self.settings = bot.settings

    # ---- the steps -----------------------------------------------------------------------------
    def pick_generator(self, turn: Turn, requested: Optional[str]) -> Optional[Generator]:
        turn.generator, _ = resolve_name(self.settings, requested)
        try:
            return self._make(turn.generator)
        except GeneratorError as exc:
            turn.fallback = f"{exc}; answered with the extractive generator instead"
            turn.generator = "extractive"
            return None

    def condense(self, turn: Turn, history: list[dict], gen: Optional[Generator]) -> None:
        """A follow-up ("what about Huawei?") becomes a standalone question."""
        turn.question = turn.asked
        if history:
            from .conversation import standalone_question

            turn.question = standalone_question(turn.asked, history, gen)

    def translate(self, turn: Turn, gen: Optional[Generator]) -> None:
        """Questions in another language are answered in English (the documents' language); without
        a model to answer with (extractive), the local model translates when it is installed."""
        turn.language = multilingual.language_of(turn.question)
        if turn.language:
            turn.english = multilingual.english_question(turn.question, self._translator(gen))
        else:
            turn.english = turn.question
        if turn.english == turn.question:
            turn.language = None  # nothing could translate it: answer as asked

    def retrieve(self, turn: Turn, top_k: Optional[int]) -> None:
        """The passages for the question; for a question in parts, each part's passages, merged and
        numbered once, so every part is searched for rather than the part with the rarer words."""
        questions = split_compound(turn.english)
        named = self._named_documents(turn)
        if len(questions) == 1 and (is_multi_document(turn.english) or len(named) > 1):
            turn.sources = self._across_documents(turn, top_k, named)
            return
        if len(questions) == 1:
            # "according to the article on X": from that article, not the longest one on the topic
            turn.sources = self.bot.retrieve(turn.english, top_k=top_k, doc_ids=named or turn.doc_ids)
            return
        per_part = max(2, (top_k or self.settings.top_k) // len(questions) + 1)
        merged: dict[str, Source] = {}
        for question in questions:
            found = [merged.setdefault(s.chunk_id or f"{s.doc_id}:{s.start}", s)
                     for s in self.bot.retrieve(question, top_k=per_part, doc_ids=turn.doc_ids)]
            turn.parts.append((question, found))
        turn.sources = list(merged.values())
        for n, source in enumerate(turn.sources, start=1):
            source.marker = n

    def _named_documents(self, turn: Turn) -> list[str]:
        """The documents the question names by what they are about (rag/named.py)."""
        if not descriptions(turn.english):
            return []
        allowed = set(turn.doc_ids) if turn.doc_ids is not None else None
        about = {d: e.title for d, e in self.bot.store.catalog().items() if allowed is None or d in allowed}
        named = named_documents(turn.english, about)
        if len(named) < len(descriptions(turn.english)):
            # "the article on China's call to develop its own AI": a title says little ("China's push
            # for AI independence is reaching new heights."), its opening sentences say what it is
            # about. Read for the documents a search for the question finds, not for the whole store.
            pool = self.bot.retrieve(turn.english, top_k=_OPENINGS_POOL, doc_ids=turn.doc_ids)
            found = list(dict.fromkeys(s.doc_id for s in pool))[:_DOCUMENTS_JUDGED]
            for doc_id, opening in self.bot.store.openings(found).items():
                about[doc_id] = f"{about.get(doc_id, '')} {opening_sentences(opening)}"
            named = named_documents(turn.english, about)
        return named

    def _across_documents(self, turn: Turn, top_k: Optional[int], named: list[str]) -> list[Source]:
        """For "what do the articles say about X": the documents that each say something about it,
        best first, with their own best passages. A plain top-k fills up with one long article, so a
        deeper pool is grouped by document and each document is judged by its best quotable sentence
        (rare question words, its title at half weight, and meaning). Documents the question names
        come first, searched one by one; when it names two or more, they are the answer's documents."""
        k = top_k or self.settings.top_k
        by_doc: dict[str, list[Source]] = {
            d: self.bot.retrieve(turn.english, top_k=_PASSAGES_PER_DOCUMENT, doc_ids=[d]) for d in named}
        pool = [] if len(named) > 1 else self.bot.retrieve(turn.english, top_k=max(6 * k, 30), doc_ids=turn.doc_ids)
        for s in pool:
            if len(by_doc.setdefault(s.doc_id, [])) < _PASSAGES_PER_DOCUMENT:
                by_doc[s.doc_id].append(s)
        ranker = self._make("extractive")
        scored = []
        for doc_id, sources in list(by_doc.items())[:_DOCUMENTS_JUDGED]:
            ranked = ranker.rank(turn.english, sources)  # type: ignore[attr-defined]
            scored.append((doc_id in named, ranked[0][0] if ranked else 0.0, sources))
        scored.sort(key=lambda t: (not t[0], -t[1]))
        best = max((score for _, score, _ in scored), default=0.0)
        kept = [src for was_named, score, src in scored if was_named or score >= _DOCUMENT_NEAR * best]
        sources = [s for group in kept[: self.settings.max_documents_per_answer] for s in group] or pool[:k]
        for n, source in enumerate(sources, start=1):
            source.marker = n
        return sources

    def gate(self, turn: Turn) -> bool:
        """Is anything retrieved close enough to ground an answer on?"""
        return bool(turn.sources) and max(s.similarity for s in turn.sources) >= self.settings.min_similarity

    def generate(self, turn: Turn, gen: Generator) -> Iterator[str]:
        counted = count_answer(turn.english, turn.sources)
        if counted is not None:  # rows and items are counted, not generated: a model miscounts
            turn.text = counted
            yield counted
            return
        if turn.parts:
            yield from self._in_parts(turn, gen, turn.parts)
            return
        if is_multi_document(turn.english) and len({s.doc_id for s in turn.sources}) > 1:
            by_doc: dict[str, list[Source]] = {}
            for s in turn.sources:
                by_doc.setdefault(s.doc_id, []).append(s)
            documents = list(by_doc.values())[: self.settings.max_documents_per_answer]
            yield from self._in_parts(turn, gen, [(turn.english, sources) for sources in documents])
            return
        for delta in gen.stream(turn.english, turn.sources):
            turn.text += delta
            yield delta
        turn.read = gen.read(turn.english, turn.sources)

    def check(self, turn: Turn) -> citations.Checked:
        if turn.checked is not None:
            return turn.checked
        read = turn.read if turn.read is not None else turn.sources
        return citations.check_answer(turn.text, read, turn.english, self.settings.min_support)

    def fall_back(self, turn: Turn, reason: str) -> Iterator[str]:
        """Quotes instead of a model answer; they too say "not found" when nothing carries what the
        question asks for."""
        turn.fallback, turn.generator = reason, "extractive"
        turn.read = None  # the quotes are taken from the whole passages
        turn.checked = None  # the quotes are checked afresh, not as the model's parts were
        yield f"\n\n[{reason}]\n\n"
        turn.text = "".join(self._make("extractive").stream(turn.english, turn.sources))
        yield turn.text

    def translate_back(self, turn: Turn, checked: citations.Checked, gen: Optional[Generator]) -> Iterator[str]:
        if turn.language is None or not checked.answered or gen is None or not gen.can_complete:
            if turn.language is not None:
                yield checked.answer  # held back while the English answer was checked
            return

        def stream_chat(messages: list[dict], max_tokens: int) -> Iterator[str]:
            yield gen.complete(messages, max_tokens)

        turn.text = checked.answer  # the checked English, which the sources are highlighted for
        translated = "".join(multilingual.translate_cited(checked.answer, turn.language, stream_chat))
        checked.answer = translated
        yield translated

    def mark_support(self, turn: Turn, checked: citations.Checked) -> None:
        """Each cited source learns which of its sentences the answer rests on (shown highlighted)."""
        if not checked.answered:
            return
        cited = set(citations.markers_in(checked.answer))
        for s in turn.sources:
            if s.marker in cited:
                # A translated answer is matched through the English it was checked as.
                s.spans = citations.support_spans(turn.text if turn.language else checked.answer, s, turn.english)

    # ---- the pipeline ----------------------------------------------------------------------------
    def run(self, question: str, generator: Optional[str], top_k: Optional[int],
            history: list[dict], doc_ids: Optional[list[str]] = None) -> Iterator[Union[str, Answer]]:
        """doc_ids: the ids of the documents to answer from (None: all), as RAG.select_documents gives them."""
        t0 = time.perf_counter()
        self.bot.ensure_indexed()
        turn = Turn(asked=question, doc_ids=doc_ids)
        gen = self.pick_generator(turn, generator)
        self.condense(turn, history, gen)
        self.translate(turn, gen)
        self.retrieve(turn, top_k)
        checked = yield from self._answer(turn, gen)
        yield from self.translate_back(turn, checked, gen if turn.generator != "extractive" else None)
        self.mark_support(turn, checked)
        yield Answer(question=turn.asked, answer=checked.answer, answered=checked.answered,
                     generator=turn.generator, sources=turn.sources, seconds=time.perf_counter() - t0,
                     fallback_reason=turn.fallback)

    def _answer(self, turn: Turn, gen: Optional[Generator]):
        """generate -> check -> fall back; streams English text unless it will be translated."""
        show = turn.language is None
        if not self.gate(turn):
            turn.text = prompts.NOT_FOUND
            if show:
                yield turn.text
            return citations.check_answer(turn.text, turn.sources, turn.english, self.settings.min_support)
        if gen is None:
            yield from self._shown(self.fall_back(turn, turn.fallback or "no generator"), show)
            return self.check(turn)
        try:
            yield from self._shown(self.generate(turn, gen), show)
        except GeneratorError as exc:
            turn.text = ""
            yield from self._shown(self.fall_back(turn, f"{exc}; answered with the extractive generator instead"),
                                   show)
            return self.check(turn)
        checked = self.check(turn)
        if turn.generator != "extractive" and (
                (not checked.answered and checked.claims)
                or (checked.answered and not carries(checked.answer, question_need(turn.english), turn.english))):
            # The model wrote something, but nothing it wrote is supported by a passage (made up, only
            # restating the question, or a document's planted instructions obeyed), or it answered a
            # "how many" without a number, a "who" without a name.
            reason = (f"the {turn.generator} model's answer was not supported by the documents; "
                      "answered with the extractive generator instead")
            yield from self._shown(self.fall_back(turn, reason), show)
            checked = self.check(turn)
        elif (turn.generator != "extractive" and not checked.answered and not turn.parts
              and self._quotable(turn.english, turn.sources)):
            # The model declined, but a passage holds a sentence that carries what is asked: on the
            # dev sets the quotes' "not found" is the better judge (seedqa-dev: 6/6 unanswerable
            # declined, 38/38 answerable answered, against the 1.5B model's misses both ways).
            reason = (f"the {turn.generator} model found no answer in the passages; these sentences "
                      "from them carry what the question asks for")
            yield from self._shown(self.fall_back(turn, reason), show)
            checked = self.check(turn)
        if turn.generator != "extractive" and turn.read is not None and turn.checked is None and show:
            completed = self.add_left_out(gen, turn.english, turn.sources, checked)
            if completed is not checked:
                yield completed.answer[len(checked.answer):]
                checked = completed
        return checked

    def add_left_out(self, gen: Generator, question: str, sources: list[Source],
                     checked: citations.Checked) -> citations.Checked:
        """The model's checked answer with what it was shown as answering but left out quoted after
        it: the 1.5B model, shown two passages, answers from one. Not for a translated answer: the
        quotes would be translated, and a translated quote is no quote."""
        extra = gen.left_out(question, sources, checked.answer) if checked.answered else ""
        quoted = citations.check_answer(extra, sources, question, self.settings.min_support) if extra else None
        if quoted is None or not quoted.answered:
            return checked
        return citations.Checked(f"{checked.answer}\n\n{prompts.ALSO_IN_PASSAGES} {quoted.answer}", True,
                                 checked.claims + quoted.claims)

    def _quotable(self, question: str, sources: list[Source]) -> bool:
        return bool(self._make("extractive").choose(question, sources))  # type: ignore[attr-defined]

    @staticmethod
    def _shown(deltas: Iterator[str], show: bool) -> Iterator[str]:
        for delta in deltas:
            if show:
                yield delta

    def _in_parts(self, turn: Turn, gen: Generator, groups: list[tuple[str, list[Source]]]) -> Iterator[str]:
        """One answer per (question, sources) group, each checked against and cited to its own
        sources only; the parts that are answered are joined."""
        parts, claims = [], []
        for question, sources in groups:
            text = "".join(gen.stream(question, sources)).removeprefix(prompts.EXTRACTIVE_PREFIX)
            checked = citations.check_answer(text, gen.read(question, sources), question, self.settings.min_support)
            if not checked.answered and gen.name != "extractive" and self._quotable(question, sources):
                # the model declined or was unsupported where the passages hold a quotable answer
                text = "".join(self._make("extractive").stream(question, sources))
                checked = citations.check_answer(text.removeprefix(prompts.EXTRACTIVE_PREFIX), sources,
                                                 question, self.settings.min_support)
            elif gen.name != "extractive" and turn.language is None:
                checked = self.add_left_out(gen, question, sources, checked)
            claims += checked.claims
            if checked.answered:
                parts.append(checked.answer)
                yield ("\n\n" if len(parts) > 1 else "") + checked.answer
        turn.text = "\n\n".join(parts) if parts else prompts.NOT_FOUND
        turn.checked = citations.Checked(turn.text, bool(parts), claims)
        if not parts:
            yield turn.text

    def _translator(self, gen: Optional[Generator]) -> Optional[Generator]:
        if gen is not None and gen.can_complete:
            return gen
        if local_available(self.settings) is None:
            try:
                return self._make("local")
            except GeneratorError:
                return None
        return None

    def _make(self, name: str) -> Generator:
        bot = self.bot
        return make_generator(name, self.settings, bot.embedder, bot.retriever.lexical.idf)


def is_multi_document(question: str) -> bool:
    return bool(_MULTI_DOCUMENT.search(question))


def split_compound(question: str) -> list[str]:
    """The parts of a question that asks two things ("On which day did X speak, and on which day
    did Y?"); the question itself when it asks one."""
    parts = [p.strip(" ,;") for p in _COMPOUND.split(question) if p and p.strip(" ,;")]
    return parts if len(parts) > 1 and all(len(p.split()) >= 4 for p in parts) else [question]
