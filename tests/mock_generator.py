"""A scripted generator for pipeline tests: it answers from a queue of replies, records what it was
asked, and can translate (complete) by table lookup. Registered as "mock"."""

from __future__ import annotations

from typing import Iterator

from rag.generators import Generator, register


@register("mock")
class MockGenerator(Generator):
    name = "mock"
    can_complete = True
    replies: list[str] = []  # answers, first in first out; the last one repeats
    completions: dict[str, str] = {}  # user message -> reply (translations)
    asked: list[tuple[str, list[int]]] = []  # (question, markers of the sources it was given)

    def stream(self, question: str, sources) -> Iterator[str]:
        type(self).asked.append((question, [s.marker for s in sources]))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        for word in reply.split(" "):
            yield word + " "

    def complete(self, messages: list[dict], max_tokens: int = 128) -> str:
        return self.completions.get(messages[-1]["content"], messages[-1]["content"])

    @classmethod
    def script(cls, *replies: str, completions: dict[str, str] | None = None) -> None:
        cls.replies, cls.completions, cls.asked = list(replies), dict(completions or {}), []


@register("mock-reader")
class ReadingMock(MockGenerator):
    """Reads only each passage's first sentence, as the local model reads only chosen sentences, and
    reports `left` as what its answer left out of what it read."""

    name = "mock-reader"
    left: str = ""

    def read(self, question: str, sources):
        from dataclasses import replace

        from rag.text import split_sentences

        return [replace(s, text=s.text[slice(*split_sentences(s.text)[0])]) for s in sources]

    def left_out(self, question: str, sources, answer: str) -> str:
        return self.left
