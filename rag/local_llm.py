"""The bundled offline LLM at run time: llama.cpp (xllamacpp) in-process, answering from the passage
units that rag.evidence selects. The weights come from rag.local_weights."""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from dataclasses import replace
from typing import Iterator, Optional

from . import evidence, prompts
from .errors import GeneratorError
from .extractive import ExtractiveGenerator, quote
from .generators import Generator, register
from .local_weights import model_file, unavailable_reason
from .models import Source
from .settings import Settings

# A second look at the best unit alone when it holds at least this share of the question's rare words.
FOCUS_STRENGTH = 0.5
_READINGS_KEPT = 16  # questions whose chosen sentences are kept for checking the answer


def answer_messages(question: str, passages: list[tuple[int, str, str]],
                    system: str = prompts.LOCAL_SYSTEM) -> list[dict]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.local_user_message(question, passages)},
    ]


# ---- the generator ---------------------------------------------------------------------------------

_DONE = object()


@register("local")
class LocalGenerator(Generator):
    """One llama.cpp server per process, in-process (no HTTP on the answer path). Calls are
    serialized: on 2 cores two generations at once would each run at less than half speed."""

    name = "local"
    can_complete = True
    _shared: Optional["LocalGenerator"] = None
    _shared_lock = threading.Lock()

    def __init__(self, settings: Settings, embedder=None, idf=None):
        self.settings = settings
        self.model_path = model_file(settings)
        self._lock = threading.Lock()
        self._readings: dict[tuple, evidence.Selection] = {}
        self._readings_lock = threading.Lock()
        t0 = time.perf_counter()
        try:
            import xllamacpp
        except ImportError as exc:
            raise GeneratorError(unavailable_reason(settings) or str(exc)) from exc
        p = xllamacpp.CommonParams()
        p.model.path = str(self.model_path)
        p.n_ctx = settings.llm_context
        p.n_parallel = 1  # one slot: its prompt cache keeps the system prompt between questions
        threads = min(settings.llm_threads, os.cpu_count() or 1)  # more threads than cores only spin
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.ui = False
        p.offline = True
        p.verbosity = -1
        # llama.cpp always listens on a random loopback port; a random key keeps other local users off.
        self.api_key = secrets.token_urlsafe(24)
        p.api_keys = [self.api_key]
        try:
            self._server = xllamacpp.Server(p)
        except Exception as exc:
            raise GeneratorError(f"the local model failed to load from {self.model_path} ({exc})") from exc
        self.load_seconds = time.perf_counter() - t0
        self.base_url = f"{self._server.listening_address}/v1"
        # Read the system prompt once now, in the background: llama.cpp keeps it in the slot's prompt
        # cache, so the first question's time to first token is spent on its passages only.
        threading.Thread(target=self._warm, name="local-llm-warm", daemon=True).start()

    def _warm(self) -> None:
        try:
            for _ in self.chat_stream(answer_messages("?", []), 1):
                pass
        except GeneratorError:
            pass  # the first real question will report what is wrong

    @classmethod
    def shared(cls, settings: Settings) -> "LocalGenerator":
        """The process's model, loaded on first use; settings that change what is loaded reload it."""
        reason = unavailable_reason(settings)
        if reason:
            raise GeneratorError(reason)
        with cls._shared_lock:
            current = cls._shared
            if current is None or current._key() != cls._key_of(settings):
                loaded = cls(settings)  # raises before the current model is let go
                if current is not None:
                    with current._lock:
                        current.close()
                cls._shared = current = loaded
            return current

    @classmethod
    def unload(cls) -> None:
        """Let the process's model go (memory back; the next shared() loads it again)."""
        with cls._shared_lock:
            current, cls._shared = cls._shared, None
            if current is not None:
                with current._lock:
                    current.close()

    @staticmethod
    def _key_of(settings: Settings):
        return (settings.local_model_path, settings.local_cache_dir, settings.llm_threads, settings.llm_context)

    def _key(self):
        return self._key_of(self.settings)

    def close(self) -> None:
        self._server = None  # the C++ server stops when its last reference goes

    # ---- generation ----------------------------------------------------------------------------
    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        yield from self.answer_stream(question, sources)

    def answer_stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        """The model's answer from the selected sentences. A reply that is the not-found sentence
        is held back while it could still be one; when the best sentence holds most of the
        question's rare words, the model gets a second look at that sentence alone: this model
        sometimes declines what a passage plainly answers (on the seed questions such a sentence
        held 0.49-1.0 of the question's rare words, against 0.17-0.48 for unanswerable ones)."""
        selection = self._reading(question, sources)
        max_tokens = self.settings.max_answer_tokens
        held: Optional[str] = ""
        for delta in self.chat_stream(answer_messages(question, selection.passages), max_tokens):
            if held is None:
                yield delta
            elif prompts.NOT_FOUND.startswith((held + delta).lstrip()):
                held += delta
            else:
                yield held + delta
                held = None
        if held is None:
            return
        if selection.strength >= FOCUS_STRENGTH:
            second = answer_messages(question, selection.focus, prompts.LOCAL_SECOND_LOOK)
            yield from self.chat_stream(second, max_tokens)
        else:
            yield held

    def left_out(self, question: str, sources: list[Source], answer: str) -> str:
        """The chosen sentences the answer leaves out, quoted. Shown two passages, this model answers
        from one (one area of three, one measure of two); the quotes say what the other holds. Only
        sentences chosen as quotable: those chosen otherwise may not answer at all."""
        selection = self._reading(question, sources)
        return quote(evidence.unsaid(selection.units, question, answer)) if selection.quotable else ""

    def read(self, question: str, sources: list[Source]) -> list[Source]:
        """Each passage the model is shown, as it is shown: the chosen sentences (and the context each
        needs). Its title is shown too, but a headline's words are no evidence for a claim."""
        shown = {marker: text for marker, _, text in self._reading(question, sources).passages}
        return [replace(s, text=shown[s.marker]) for s in sources if s.marker in shown]

    def _reading(self, question: str, sources: list[Source]) -> evidence.Selection:
        """What the model reads: the sentences the extractive answer would quote (with the context
        each needs), so both generators rest on one choice of evidence, measured on the dev sets;
        when none is quotable, the best units by the question's words, which the model may decline.
        Kept for the last few questions: the answer is checked against the same choice."""
        key = (question, tuple((s.marker, s.chunk_id, s.text) for s in sources))
        with self._readings_lock:
            if key in self._readings:
                return self._readings[key]
        chosen = ExtractiveGenerator(self.settings, embedder=self._embedder()).choose(question, sources)
        if not chosen:
            selection = evidence.select(question, sources, self._embedder(),
                                        budget_chars=self.settings.local_budget_chars)
        else:
            selection = evidence.Selection(evidence.as_passages(chosen), evidence.as_passages(chosen[:1]), 1.0,
                                           chosen, quotable=True)
        with self._readings_lock:
            self._readings[key] = selection
            while len(self._readings) > _READINGS_KEPT:
                self._readings.pop(next(iter(self._readings)))
        return selection

    def _embedder(self):
        """The process's embedding model (already loaded for retrieval) to pick sentences with."""
        from .embeddings import get_embedder

        try:
            return get_embedder(self.settings)
        except Exception:  # noqa: BLE001 - an endpoint embedder may be down: words alone will do
            return None

    def complete(self, messages: list[dict], max_tokens: int = 128) -> str:
        return "".join(self.chat_stream(messages, max_tokens))

    def chat_stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        """Stream one chat completion. llama.cpp calls back from inside a blocking call, so that call
        runs in a worker thread and the deltas come through a queue; stopping early (the consumer
        closes the generator) tells llama.cpp to stop at its next token."""
        server = self._server
        if server is None:
            raise GeneratorError("the local model was unloaded")
        request = {
            "messages": messages, "max_tokens": max_tokens, "temperature": self.settings.temperature,
            "stream": True, "cache_prompt": True,
        }
        deltas: queue.Queue = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk) -> bool:
            if not isinstance(chunk, dict) or "choices" not in chunk:
                error = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
                message = error.get("message") if isinstance(error, dict) else str(error)
                deltas.put(GeneratorError(f"the local model failed: {message}"))
                return True
            for choice in chunk["choices"]:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    deltas.put(content)
            return stop.is_set()

        def work():
            try:
                with self._lock:
                    server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # noqa: BLE001 - reported to the consumer, never lost
                deltas.put(GeneratorError(f"the local model failed ({type(exc).__name__}: {exc})"))
            finally:
                deltas.put(_DONE)

        threading.Thread(target=work, name="local-llm", daemon=True).start()
        try:
            while True:
                try:
                    item = deltas.get(timeout=self.settings.llm_timeout)
                except queue.Empty:
                    raise GeneratorError(
                        f"the local model produced nothing for {self.settings.llm_timeout:.0f} s (RAG_LLM_TIMEOUT)"
                    ) from None
                if item is _DONE:
                    return
                if isinstance(item, GeneratorError):
                    raise item
                yield item
        finally:
            stop.set()
