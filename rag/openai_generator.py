"""The OpenAI-compatible generator: chat completions, streamed, from any endpoint that speaks the
API (OpenAI, Ollama, vLLM, a llama.cpp server)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator, cast

from . import prompts
from .errors import GeneratorError
from .generators import Generator, register
from .models import Source
from .settings import Settings

if TYPE_CHECKING:
    from openai import Stream
    from openai.types.chat import ChatCompletionChunk

# Sent with every request: a rag-chat server (ui/openai_api.py, same name) refuses it with 508, so
# OPENAI_BASE_URL pointed at a rag-chat server ends in one refused hop, not an endless loop.
HOP_HEADER = "X-RAG-Chat-Hop"


@register("openai")
class OpenAIGenerator(Generator):
    """Chat completions, streamed, from any OpenAI-compatible endpoint."""

    name = "openai"
    can_complete = True

    def __init__(self, settings: Settings, **_context):
        from openai import OpenAI

        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        self.client = OpenAI(api_key=key, base_url=settings.openai_base_url,
                             timeout=settings.llm_timeout, max_retries=0, default_headers={HOP_HEADER: "1"})
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
            stream = cast("Stream[ChatCompletionChunk]", self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True,  # type: ignore[arg-type]
                max_tokens=self.settings.max_answer_tokens, temperature=self.settings.temperature,
            ))
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
                model=self.model, messages=messages, max_tokens=max_tokens, temperature=0,  # type: ignore[arg-type]
            )
        except Exception as exc:
            raise GeneratorError(_describe_error(exc)) from exc
        return (resp.choices[0].message.content or "").strip()


def _describe_error(exc: Exception) -> str:
    """A one-line reason that never includes request headers (and so never the key)."""
    import httpx
    import openai

    # mid-stream, httpx errors arrive unwrapped
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return "the LLM endpoint timed out"
    if isinstance(exc, httpx.TransportError):
        return "the connection to the LLM endpoint broke"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot connect to the LLM endpoint"
    if isinstance(exc, openai.AuthenticationError):
        return "the LLM endpoint refused the API key (401)"
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 508:
        return "OPENAI_BASE_URL points at a rag-chat server (its /v1), not at an LLM (HTTP 508)"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM endpoint returned HTTP {exc.status_code}"
    return f"the LLM endpoint failed ({type(exc).__name__})"
