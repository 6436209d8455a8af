"""The API for scripts (gradio_client): `ask`, with the streamed answer and then the checked one.

    Client(url).predict(question, top_k, generator, history, api_name="/ask")
    Client(url).predict(question, doc_ids=["report.pdf", "notes/*.md"], api_name="/ask")
"""

import time
from typing import Callable, Optional

import gradio as gr

from rag import RAG, QuestionError

from .chat import ANSWER_CONCURRENCY
from .jobs import IndexJob


def ask_function(bot: RAG, job: IndexJob) -> Callable:
    """The `ask` endpoint over bot. Its signature, annotations and docstring are what gr.api publishes
    (it reads the return annotation as the type of each streamed item, so that stays `dict`)."""

    def ask(question: str, top_k: int = 0, generator: str = "",  # type: ignore[misc]
            history: Optional[list] = None, doc_ids: Optional[list] = None) -> dict:
        """Answer a question from the documents. While the answer is written, yields
        {"question", "answer" (text so far), "done": false}; then the checked answer:
        {"question", "answer", "answered", "generator", "sources": [{"marker", "doc_id", "file_name",
        "title", "text", "start", "end", "score", "page", "location"}], "seconds", "done": true}. Every
        [n] in "answer" is the "marker" of one of "sources"; "page" is a PDF page or slide number (or
        null), "location" where in the file ("p. 7", "slide 3", "sheet Sales", or "").
        history: earlier turns as [{"role", "content"}].
        doc_ids: answer from these documents only, each a document id or a glob ("reports/*.pdf");
        empty or null: all documents. An unknown id or a glob matching nothing is an error."""
        try:
            k = int(top_k or 0)
        except (TypeError, ValueError):
            raise gr.Error(f"top_k must be a whole number, not {top_k!r}") from None
        # Only a first start waits, as in the chat: once something is indexed, the engine answers
        # from a consistent index (old or new version of each document) while a re-index runs.
        while job.running and not bot.documents():
            time.sleep(0.2)
        try:
            stream = bot.ask_stream(question, generator=generator or None, top_k=k or None,
                                    history=[t for t in (history or []) if isinstance(t, dict)],
                                    doc_ids=doc_ids or None)
            text = ""
            for delta in stream:
                text += delta
                yield {"question": question, "answer": text, "done": False}
        except QuestionError as exc:
            raise gr.Error(str(exc)) from None
        answer = stream.answer
        assert answer is not None  # set once the stream is exhausted
        yield {**answer.to_dict(), "done": True}

    return ask


def register(bot: RAG, job: IndexJob) -> None:
    """Add /ask to the gr.Blocks this is called in; it shares the chat's concurrency limit."""
    gr.api(ask_function(bot, job), api_name="ask", concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer")
