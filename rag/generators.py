"""Stage 5: passages -> answer text. Every generator is a `Generator` registered under a name:
extractive (quotes, no model), openai (any OpenAI-compatible endpoint) and local (the bundled model).
Tests and plugins register more (`register("mock")`)."""

from __future__ import annotations

import importlib
from typing import Callable, Iterator, Optional

from .errors import GeneratorError
from .models import Source
from .settings import Settings

# Where the built-in generators live: imported only when asked for, so choosing extractive never
# loads openai or llama.cpp.
_BUILTIN = {"extractive": "rag.extractive", "openai": "rag.openai_generator", "local": "rag.local_llm"}
_REGISTRY: dict[str, type["Generator"]] = {}
AUTO = "auto"


class Generator:
    """Writes an answer to a question from numbered passages. A generator backed by a model also
    does small text tasks (`complete`: translate, condense a follow-up) and says so with
    `can_complete`."""

    name = "base"
    can_complete = False

    def __init__(self, settings: Settings, embedder=None, idf: Optional[Callable[[str], float]] = None):
        self.settings = settings

    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        raise NotImplementedError

    def read(self, question: str, sources: list[Source]) -> list[Source]:
        """The passages as this generator reads them for the question; its answer is checked against
        these. A generator shown only some sentences of each passage narrows them: a claim resting
        on text it never saw came from the model, not from the documents."""
        return sources

    def left_out(self, question: str, sources: list[Source], answer: str) -> str:
        """Quotes of what the generator was shown as answering the question that its answer leaves
        out, each with its marker ("" when nothing is left out)."""
        return ""

    def complete(self, messages: list[dict], max_tokens: int = 128) -> str:
        raise GeneratorError(f"the {self.name} generator has no model to complete text with")


def register(name: str) -> Callable[[type[Generator]], type[Generator]]:
    def add(cls: type[Generator]) -> type[Generator]:
        _REGISTRY[name] = cls
        return cls

    return add


def names() -> list[str]:
    """Every generator name a user may choose, "auto" first."""
    return [AUTO, *dict.fromkeys([*_BUILTIN, *_REGISTRY])]


def generator_class(name: str) -> type[Generator]:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise ValueError(f"unknown generator {name!r}: use {', '.join(names())}")
    return _REGISTRY[name]


def local_available(settings: Optional[Settings] = None) -> Optional[str]:
    """None when the bundled local model (or RAG_LOCAL_MODEL_PATH) can run here, else why not."""
    from .local_weights import unavailable_reason

    return unavailable_reason(settings)


def resolve_name(settings: Settings, requested: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(generator name, why auto did not pick something better)."""
    name = requested or settings.generator
    if name != AUTO:
        return name, None
    if settings.openai_configured():
        return "openai", None
    reason = local_available(settings)
    if reason is None:
        return "local", None
    return "extractive", f"local model unavailable: {reason}"


def available(settings: Settings) -> list[str]:
    """The generators that can answer with these settings, the default first."""
    default, _ = resolve_name(settings)
    usable = ["extractive"] + (["openai"] if settings.openai_configured() else [])
    usable += ["local"] if local_available(settings) is None else []
    usable += [n for n in _REGISTRY if n not in _BUILTIN]
    return list(dict.fromkeys([default, *usable]))


def make_generator(name: str, settings: Settings, embedder=None,
                   idf: Optional[Callable[[str], float]] = None) -> Generator:
    cls = generator_class(name)
    shared = getattr(cls, "shared", None)
    if shared is not None:  # a model loaded once per process
        return shared(settings)
    return cls(settings, embedder=embedder, idf=idf)
