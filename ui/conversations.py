"""Kept conversations in the chat column: the list above the chat (reopen one, New chat, Delete),
Export as Markdown or JSON beside Stop, and thumbs up/down with a comment on the latest answer.

Each answered question is kept (RAG.record_turn) for its owner: the logged-in user with RAG_AUTH,
else the browser, by a random id the page keeps in its local storage (gr.BrowserState) and sends
with every event. The id is the key to that browser's conversations: 128 random bits, made here,
and one that is not of that form is replaced, never used."""

import atexit
import logging
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from rag import RAG, RagError, Settings

from . import render

log = logging.getLogger("rag.ui")
# Fixed, so the id stored in the browser can still be read after the server restarts. It only
# scrambles the stored value: the page is sent the key, so it protects nothing, and needs not to.
STORAGE_KEY = "rag-chat-browser"
STORAGE_SECRET = "rag-chat-browser-id"
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
CONFIRM_DELETE = ("(c, b) => (c && confirm('Delete this conversation? Its questions, answers and feedback "
                  "are removed for good.')) ? [c, b] : [null, b]")
MAX_LISTED = 200


@dataclass
class ConversationsView:
    browser: gr.BrowserState  # this browser's id
    kept: gr.State  # {"id", "turns"}: the conversation shown and how many of its turns are stored
    picker: gr.Dropdown
    new_btn: gr.Button
    delete_btn: gr.Button


@dataclass
class ExportView:
    md: gr.DownloadButton  # each holds the file of the conversation shown, as it is now
    json: gr.DownloadButton


@dataclass
class FeedbackView:
    up_btn: gr.Button
    down_btn: gr.Button
    comment: gr.Textbox
    note: gr.HTML


def layout(settings: Settings) -> ConversationsView:
    """The row above the chat; only New chat shows when conversations are not kept."""
    shown = settings.keep_conversations
    browser = gr.BrowserState("", storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    kept = gr.State(None)
    with gr.Row(equal_height=True, elem_id="conversation-bar"):
        picker = gr.Dropdown(choices=[], value=None, label="Conversations", show_label=False, scale=1,
                             elem_id="conversations", visible=shown, allow_custom_value=False,
                             filterable=True, container=False)
        new_btn = gr.Button("New chat", size="sm", variant="secondary", scale=0, min_width=90, elem_id="new-chat")
        delete_btn = gr.Button("Delete", size="sm", variant="secondary", scale=0, min_width=70,
                               elem_id="delete-conversation", visible=shown)
    return ConversationsView(browser, kept, picker, new_btn, delete_btn)


def export_layout(settings: Settings) -> ExportView:
    """The two export buttons, in the row this is called in (beside Stop); usable once an answer is kept."""
    shown = settings.keep_conversations
    md = gr.DownloadButton("Export .md", size="sm", scale=0, min_width=110, elem_id="export-md", visible=shown,
                           interactive=False)
    js = gr.DownloadButton("Export .json", size="sm", scale=0, min_width=110, elem_id="export-json", visible=shown,
                           interactive=False)
    return ExportView(md, js)


def feedback_layout(settings: Settings) -> FeedbackView:
    """Thumbs up/down and a comment on the latest answer, kept with it (below the chat)."""
    shown = settings.keep_conversations
    with gr.Row(equal_height=True, elem_id="feedback-bar", visible=shown):
        up_btn = gr.Button("👍 Helpful", size="sm", scale=0, min_width=110, elem_id="thumbs-up")
        down_btn = gr.Button("👎 Not helpful", size="sm", scale=0, min_width=130, elem_id="thumbs-down")
        comment = gr.Textbox(placeholder="Comment on the latest answer (optional)", show_label=False,
                             lines=1, max_lines=3, scale=1, container=False, elem_id="feedback-comment",
                             max_length=2000)
    note = gr.HTML("", elem_id="feedback-note", visible=shown)
    return FeedbackView(up_btn, down_btn, comment, note)


def _note(text: str) -> str:
    return f'<div class="feedback-note">{render.esc(text)}</div>' if text else ""


class Conversations:
    """The handlers. Exports are written to a folder of this server's, which Gradio serves them from."""

    def __init__(self, bot: RAG):
        self.bot = bot
        self.exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))
        atexit.register(shutil.rmtree, self.exports, ignore_errors=True)

    @staticmethod
    def owner(browser: Any, request: Optional[gr.Request]) -> Optional[str]:
        """Whose conversations: the logged-in user, else this browser (None before the page has an id)."""
        user = getattr(request, "username", None)
        if user:
            return f"user:{user}"
        return f"browser:{browser}" if isinstance(browser, str) and _BROWSER_ID.match(browser) else None

    def _choices(self, owner: Optional[str]) -> list[tuple[str, str]]:
        if owner is None:
            return []
        listed = self.bot.conversations(owner)[:MAX_LISTED]
        return [(f"{c.title} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}", c.id) for c in listed]

    def _exports(self, conversation_id: Optional[str], owner: Optional[str]) -> list:
        """The two export buttons, holding the conversation as it is now (none: disabled)."""
        if not conversation_id or owner is None:
            return [gr.update(value=None, interactive=False)] * 2
        conv = self.bot.conversation(conversation_id, owner)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", conv.title).strip("-").lower()[:48].rstrip("-") or "conversation"
        folder = self.exports / conversation_id
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for fmt, suffix in (("markdown", "md"), ("json", "json")):
            path = folder / f"conversation-{slug}.{suffix}"
            path.write_text(self.bot.export_conversation(conversation_id, owner, fmt), encoding="utf-8")
            out.append(gr.update(value=str(path), interactive=True))
        return out

    # ---- events ---------------------------------------------------------------------------
    def on_load(self, browser, request: gr.Request):
        """A page opens: give a browser without an id one; list its conversations."""
        if not (isinstance(browser, str) and _BROWSER_ID.match(browser)):
            browser = secrets.token_urlsafe(16)
        try:
            choices = self._choices(self.owner(browser, request))
        except RagError as exc:
            log.warning("conversations cannot be listed: %s", exc)
            choices = []
        return browser, gr.update(choices=choices, value=None)

    def keep(self, answers, kept, browser, request: gr.Request):
        """After a question: keep the answers not kept yet; the list and exports follow."""
        owner = self.owner(browser, request)
        answers = list(answers or [])
        kept = dict(kept) if kept else {"id": None, "turns": 0}
        if owner is None or len(answers) <= kept["turns"]:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            for answer in answers[kept["turns"]:]:
                kept["id"], index = self.bot.record_turn(answer, owner, kept["id"])
                kept["turns"] += 1
            return (kept, gr.update(choices=self._choices(owner), value=kept["id"]), *self._exports(kept["id"], owner))
        except RagError as exc:  # a conversation deleted in another tab, an unwritable store: answers go on
            log.warning("the answer could not be kept: %s", exc)
            return None, gr.update(choices=self._choices_or_none(owner), value=None), *self._exports(None, None)

    def _choices_or_none(self, owner: Optional[str]) -> list[tuple[str, str]]:
        try:
            return self._choices(owner)
        except RagError:
            return []

    def open(self, conversation_id, browser, request: gr.Request):
        """A conversation picked in the list: its questions and answers back in the chat, with their
        citations and passages. Outputs: chat, conv, answers, sources, kept, exports, note."""
        owner = self.owner(browser, request)
        if not conversation_id or owner is None:
            return [], [], [], render.sources_html([]), None, *self._exports(None, None), _note("")
        try:
            conv = self.bot.conversation(conversation_id, owner)
        except RagError as exc:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), None, *self._exports(None, None),
                    _note(f"This conversation cannot be opened: {exc}"))
        chat, history, answers = [], [], []
        for n, turn in enumerate(conv.turns, start=1):
            answers.append(turn.answer)
            chat += [{"role": "user", "content": render.question_html(turn.question)},
                     {"role": "assistant", "content": render.answer_html(turn.answer, n)}]
            history += [{"role": "user", "content": turn.question},
                        {"role": "assistant", "content": turn.answer.answer}]
        rated = conv.turns[-1].rating if conv.turns else None
        said = f"Your feedback on the latest answer: {'helpful' if rated == 'up' else 'not helpful'}." if rated else ""
        return (chat, history, answers, render.sources_html(answers), {"id": conv.id, "turns": len(conv.turns)},
                *self._exports(conv.id, owner), _note(said))

    def delete(self, conversation_id, browser, request: gr.Request):
        """Delete the conversation shown; the chat is cleared. Outputs as open's, then the list."""
        owner = self.owner(browser, request)
        if not conversation_id or owner is None:  # nothing picked, or the confirmation was cancelled
            return (*[gr.skip()] * 8, gr.skip())
        try:
            self.bot.delete_conversation(conversation_id, owner)
            note = "Conversation deleted."
        except RagError as exc:
            note = f"Not deleted: {exc}"
        return ([], [], [], render.sources_html([]), None, *self._exports(None, None), _note(note),
                gr.update(choices=self._choices_or_none(owner), value=None))

    def new(self, browser, request: gr.Request):
        """New chat: nothing kept until the first answer. Outputs: kept, list, exports, note."""
        owner = self.owner(browser, request)
        return None, gr.update(choices=self._choices_or_none(owner), value=None), *self._exports(None, None), _note("")

    def rate(self, rating: str, kept, comment, browser, request: gr.Request):
        """Thumbs up/down (with the comment typed) on the latest answer. Outputs: note, comment, exports."""
        owner = self.owner(browser, request)
        if not kept or not kept.get("turns") or owner is None:
            return _note("Ask a question first: feedback goes with the latest answer."), gr.skip(), gr.skip(), gr.skip()
        try:
            index = self.bot.feedback(kept["id"], kept["turns"] - 1, rating, comment, owner=owner)
        except RagError as exc:
            return _note(f"Feedback not recorded: {exc}"), gr.skip(), gr.skip(), gr.skip()
        said = (f"Recorded “{'helpful' if rating == 'up' else 'not helpful'}” for answer {index + 1}"
                + (" with your comment" if (comment or "").strip() else ""))
        return _note(said + ". Thank you."), "", *self._exports(kept["id"], owner)

    def thumbs_up(self, kept, comment, browser, request: gr.Request):
        return self.rate("up", kept, comment, browser, request)

    def thumbs_down(self, kept, comment, browser, request: gr.Request):
        return self.rate("down", kept, comment, browser, request)


def wire(chat_view: Any, handlers: Conversations, conv: gr.State, answers: gr.State, sources: gr.HTML,
         answer_events: list, demo: gr.Blocks) -> None:
    """chat_view: ui/chat.py's ChatView; answer_events: the question events, after which answers are kept."""
    view, feedback, chat = chat_view.kept, chat_view.feedback, chat_view.chat
    exports = [chat_view.exports.md, chat_view.exports.json]
    quick: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    demo.load(handlers.on_load, [view.browser], [view.browser, view.picker], **quick)
    for event in answer_events:
        event.then(handlers.keep, [answers, view.kept, view.browser], [view.kept, view.picker, *exports], **quick)
    shown = [chat, conv, answers, sources, view.kept, *exports, feedback.note]
    view.picker.input(handlers.open, [view.picker, view.browser], shown, **quick)
    view.delete_btn.click(handlers.delete, [view.picker, view.browser], shown + [view.picker], js=CONFIRM_DELETE,
                          **quick)
    for trigger in (view.new_btn.click, chat.clear):
        trigger(handlers.new, [view.browser], [view.kept, view.picker, *exports, feedback.note], **quick)
    for button, rate in ((feedback.up_btn, handlers.thumbs_up), (feedback.down_btn, handlers.thumbs_down)):
        button.click(rate, [view.kept, feedback.comment, view.browser], [feedback.note, feedback.comment, *exports],
                     **quick)
