"""The chat column (kept conversations, question box, the documents picker, streamed answers, Stop,
New chat, feedback) and the Settings tab whose top-k and generator every question uses."""

import logging
import threading
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import gradio as gr

from rag import RAG, Answer, QuestionError, Settings

from . import conversations, render
from .jobs import IndexJob

log = logging.getLogger("rag.ui")
ANSWER_CONCURRENCY = 4  # questions answered at once; the `ask` API shares the limit ("answer")


@dataclass
class ChatView:
    chat: gr.Chatbot
    box: gr.Textbox
    docs: gr.Dropdown  # the documents the next questions are limited to; empty: all
    ask_btn: gr.Button
    stop_btn: gr.Button
    clear_btn: gr.Button  # New chat
    kept: conversations.ConversationsView  # the list of kept conversations above the chat
    exports: conversations.ExportView  # the conversation shown as a Markdown or JSON file, beside Stop
    feedback: conversations.FeedbackView  # thumbs up/down on the latest answer, below it


def layout(settings: Settings) -> ChatView:
    """The kept conversations, the chat, the question box and its buttons, in the column this is called in."""
    kept = conversations.layout(settings)
    chat = gr.Chatbot(
        elem_id="chat", height=560, latex_delimiters=[], buttons=[], feedback_options=None,
        group_consecutive_messages=False, show_label=False,
        placeholder="Ask a question about your documents. Answers cite their sources as [1], [2]: "
                    "click one to see the passage.",
    )
    with gr.Row(equal_height=True):
        box = gr.Textbox(placeholder="Ask a question…", show_label=False, lines=1, max_lines=5,
                         scale=5, autofocus=True, elem_id="question", max_length=settings.max_question_chars)
        ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
    # Custom values: a glob ("reports/*.pdf") can be typed; the engine checks every entry and says
    # which one names no indexed document.
    docs = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True, elem_id="doc-filter",
                       label="Answer only from", info="Empty: all documents. Pick documents, or type a "
                       "glob such as reports/*.pdf and press Enter.")
    with gr.Row(equal_height=True):
        stop_btn = gr.Button("Stop", size="sm", variant="secondary")
        exports = conversations.export_layout(settings)
    feedback = conversations.feedback_layout(settings)
    return ChatView(chat, box, docs, ask_btn, stop_btn, kept.new_btn, kept, exports, feedback)


def settings_tab(bot: RAG) -> tuple[gr.Slider, gr.Radio]:
    """The Settings tab's controls, in the tab this is called in: top-k and the answer generator."""
    choices, default_gen = bot.generator_choices()
    top_k = gr.Slider(*bot.top_k_range(), value=bot.settings.top_k, step=1, label="Passages per answer (top-k)",
                      elem_id="top-k")
    generator = gr.Radio(choices, value=default_gen, label="Answer generator",
                         info="extractive quotes the passages; openai/local write with a model",
                         elem_id="generator")
    # Says back what the next answer will use, once the server has the new value (a question asked in
    # the same instant as a slider move could otherwise go out with the old one).
    in_use = gr.Markdown(_in_use(bot.settings.top_k, default_gen), elem_id="settings-in-use")
    for control in (top_k, generator):
        control.change(_in_use, [top_k, generator], in_use, queue=False, api_visibility="private",
                       show_progress="hidden")
    return top_k, generator


def _in_use(top_k, generator) -> str:
    return f"Next answers: {int(top_k)} passages, {generator} generator."


class Chat:
    """The chat's event handlers. Outputs of respond: question box, chat, conversation, answers,
    sources panel."""

    def __init__(self, bot: RAG, job: IndexJob):
        self.bot = bot
        self.job = job
        self._stops: dict[str, threading.Event] = {}  # per browser session: the Stop button was pressed

    def respond(self, message, chat, conv, answers, top_k, generator, doc_ids, request: gr.Request):
        question = (message or "").strip()
        if not question:
            return
        stop = self._stops.setdefault(request.session_hash or "", threading.Event())
        stop.clear()
        chat = list(chat or []) + [
            {"role": "user", "content": render.question_html(question)},
            {"role": "assistant", "content": render.pending_html()},
        ]
        yield "", chat, conv, answers, gr.skip()
        for item in self._bubbles(question, int(top_k), generator, conv, stop, list(doc_ids or []) or None):
            if isinstance(item, Answer):
                answers = answers + [item]
                conv = conv + [{"role": "user", "content": question}, {"role": "assistant", "content": item.answer}]
                chat[-1] = {"role": "assistant", "content": render.answer_html(item, len(answers))}
                yield gr.skip(), chat, conv, answers, render.sources_html(answers)
                return
            chat[-1] = {"role": "assistant", "content": item}
            yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()

    def _bubbles(self, question: str, top_k: int, generator, conv, stop: threading.Event,
                 doc_ids: Optional[list[str]] = None) -> Iterator[Union[str, Answer]]:
        """The answer bubble's HTML as it changes, then the checked Answer (none when stopped or failed)."""
        # Only a first start waits: once something is indexed, the engine answers from a
        # consistent index (old or new version of each document) while a re-index runs.
        for progress in (self.job.follow() if not self.bot.documents() else ()):
            if stop.is_set():
                yield render.stopped_html("")
                return
            yield render.pending_html("Waiting for indexing to finish…") + progress
        try:
            stream = self.bot.ask_stream(question, generator=generator, top_k=top_k, history=conv, doc_ids=doc_ids)
            text = ""
            for delta in stream:
                text += delta
                if stop.is_set():
                    yield render.stopped_html(render.streaming_html(text))
                    return
                yield render.streaming_html(text)
            assert stream.answer is not None  # set once the stream is exhausted
            yield stream.answer
        except QuestionError as exc:
            yield render.error_html(str(exc))
        except Exception as exc:
            log.exception("answering failed")
            yield render.error_html(f"Sorry, answering failed: {type(exc).__name__}: {exc}")

    def stop_answer(self, request: gr.Request):
        # A flag the answer loop checks rather than Gradio's cancel: a cancelled run cannot be
        # interrupted while it runs in a worker thread, and the page's cancel request waits for it.
        if request.session_hash in self._stops:
            self._stops[request.session_hash].set()

    def document_choices(self, chosen=None):
        """The picker as the index is now: every indexed document, and what was chosen that is still
        indexed (or a typed glob)."""
        choices = self._documents()
        ids = {doc_id for _, doc_id in choices}
        kept = [c for c in (chosen or []) if c in ids or any(ch in c for ch in "*?[")]
        return gr.update(choices=choices, value=kept)

    def refresh_choices(self):
        """The indexed documents only, the choice left alone: the picker is open and in use."""
        return gr.update(choices=self._documents())

    def _documents(self) -> list[tuple[str, str]]:
        return [(f"{e.title or e.file_name} — {e.doc_id}", e.doc_id) for e in self.bot.documents()]

    @staticmethod
    def new_chat():
        return [], [], [], render.sources_html([]), ""


def wire(view: ChatView, handlers: Chat, conv: gr.State, answers: gr.State, top_k: gr.Slider,
         generator: gr.Radio, sources: gr.HTML) -> list:
    """Returns the question events (a question's answer is kept after them, ui/conversations.py)."""
    inputs = [view.box, view.chat, conv, answers, top_k, generator, view.docs]
    outputs = [view.box, view.chat, conv, answers, sources]
    asked = [trigger(handlers.respond, inputs, outputs, api_visibility="private", concurrency_limit=ANSWER_CONCURRENCY,
                     concurrency_id="answer", show_progress="hidden")
             for trigger in (view.box.submit, view.ask_btn.click)]
    view.stop_btn.click(handlers.stop_answer, None, None, api_visibility="private", show_progress="hidden")
    cleared = [view.chat, conv, answers, sources, view.box]
    view.clear_btn.click(handlers.new_chat, None, cleared, api_visibility="private")
    view.chat.clear(handlers.new_chat, None, cleared, api_visibility="private")
    return asked


def wire_picker(view: ChatView, handlers: Chat, documents_table: gr.HTML, demo: gr.Blocks) -> None:
    """The documents picker follows the index: when a page opens, whenever the Documents tab's list
    changes (indexing, an upload, a delete), and when it is opened (another page may have changed it)."""
    for trigger in (demo.load, documents_table.change):
        trigger(handlers.document_choices, [view.docs], [view.docs], api_visibility="private", queue=False,
                show_progress="hidden")
    view.docs.focus(handlers.refresh_choices, None, [view.docs], api_visibility="private", queue=False,
                    show_progress="hidden")
