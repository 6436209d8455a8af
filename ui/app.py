"""The browser UI: chat with streamed, cited answers, the passages behind them, and the documents.
A thin layer over rag.RAG; rendering lives in ui/render.py.

    rag serve [--docs DIR] [--store DIR] [--host 127.0.0.1] [--port 7860]     (or: python -m ui)
"""

import ipaddress
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from rag import offline

offline.apply()  # before gradio is imported: it reads GRADIO_ANALYTICS_ENABLED at import

import gradio as gr  # noqa: E402

from rag.api import RAG, DocumentError, QuestionError  # noqa: E402
from rag.generators import local_available, resolve_name  # noqa: E402

from . import render  # noqa: E402

HERE = Path(__file__).resolve().parent
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".pdf"]
# The machine's own fonts: nothing to fetch, and every script (CJK included) has a glyph.
_SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "Helvetica Neue", "Arial",
                 "sans-serif"]
log = logging.getLogger("rag.ui")


class IndexJob:
    """One indexing run at a time (first index, re-index, upload, delete), in a background thread
    so the page stays live; handlers poll its progress."""

    def __init__(self, bot: RAG):
        self.bot = bot
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.label, self.stage, self.done, self.total = "", "", 0, 0
        self.result = None
        self.error: Optional[Exception] = None
        self._echo: Optional[Callable] = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, label: str, task: Callable, echo: bool = False) -> bool:
        """Run task(progress) unless a run is under way (then False: wait and try again)."""
        with self._lock:
            if self.running:
                return False
            self.label, self.stage, self.done, self.total = label, "", 0, 0
            self.result, self.error = None, None
            self._echo = _console_progress(label) if echo else None
            self._thread = threading.Thread(target=self._run, args=(task,), daemon=True, name="rag-index")
            self._thread.start()
            return True

    def _run(self, task: Callable):
        try:
            self.result = task(self._progress)
        except Exception as exc:  # shown to the user; the thread must not die silently
            log.exception("indexing failed")
            self.error = exc

    def _progress(self, stage: str, done: int, total: int):
        self.stage, self.done, self.total = stage, done, total
        if self._echo:
            self._echo(stage, done, total)

    def progress_html(self) -> str:
        return render.progress_html(self.label, self.stage, self.done, self.total)

    def follow(self, every: float = 0.3) -> Iterator[str]:
        """Progress HTML while a run is under way."""
        while self.running:
            yield self.progress_html()
            time.sleep(every)


def _console_progress(label: str) -> Callable:
    tty = sys.stderr.isatty()
    last = {"t": 0.0, "line": ""}

    def report(stage: str, done: int, total: int):
        line = f"{label}: {render.progress_text(stage, done, total)}"
        now = time.monotonic()
        if line == last["line"] or (now - last["t"] < 0.5 and done < total):
            return
        last.update(t=now, line=line)
        print(("\r" if tty else "") + line + ("\033[K" if tty else ""), end="" if tty else "\n",
              file=sys.stderr, flush=True)

    return report


def generator_choices(bot: RAG) -> tuple[list[str], str]:
    """The generators this machine can run, and the configured one."""
    s = bot.settings
    default, _ = resolve_name(s)
    choices = (["openai"] if s.openai_configured() else []) + (["local"] if local_available() is None else [])
    choices.append("extractive")
    if default not in choices:
        choices.insert(0, default)
    return choices, default


def _store_bytes(bot: RAG) -> Optional[int]:
    if bot.settings.chroma_host:
        return None
    return sum(p.stat().st_size for p in bot.settings.store_dir.rglob("*") if p.is_file())


def build_app(bot: RAG, job: IndexJob) -> gr.Blocks:
    choices, default_gen = generator_choices(bot)
    s = bot.settings

    # ---- chat --------------------------------------------------------------------------------
    stop_requests: dict[str, threading.Event] = {}  # per browser session: the Stop button was pressed

    def respond(message, chat, conv, answers, top_k, generator, request: gr.Request):
        question = (message or "").strip()
        if not question:
            return
        stop = stop_requests.setdefault(request.session_hash or "", threading.Event())
        stop.clear()
        chat = list(chat or []) + [
            {"role": "user", "content": render.question_html(question)},
            {"role": "assistant", "content": render.pending_html()},
        ]
        turn = len(answers) + 1
        yield "", chat, conv, answers, gr.skip()

        def update(content: str):
            chat[-1] = {"role": "assistant", "content": content}
            return gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()

        # Only a first start waits: once something is indexed, the engine answers from a
        # consistent index (old or new version of each document) while a re-index runs.
        for progress in (job.follow() if not bot.documents() else ()):
            if stop.is_set():
                yield update(render.stopped_html(""))
                return
            yield update(render.pending_html("Waiting for indexing to finish…") + progress)
        try:
            stream = bot.ask_stream(question, generator=generator, top_k=int(top_k), history=conv)
            text = ""
            for delta in stream:
                text += delta
                if stop.is_set():
                    yield update(render.stopped_html(render.streaming_html(text)))
                    return
                yield update(render.streaming_html(text))
            answer = stream.answer
        except QuestionError as exc:
            yield update(render.error_html(str(exc)))
            return
        except Exception as exc:
            log.exception("answering failed")
            yield update(render.error_html(f"Sorry, answering failed: {type(exc).__name__}: {exc}"))
            return
        answers = answers + [answer]
        conv = conv + [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
        chat[-1] = {"role": "assistant", "content": render.answer_html(answer, turn)}
        yield gr.skip(), chat, conv, answers, render.sources_html(answers)

    def stop_answer(request: gr.Request):
        # A flag the answer loop checks rather than Gradio's cancel: a cancelled run cannot be
        # interrupted while it runs in a worker thread, and the page's cancel request waits for it.
        if request.session_hash in stop_requests:
            stop_requests[request.session_hash].set()

    def new_chat():
        return [], [], [], render.sources_html([]), ""

    # ---- documents ---------------------------------------------------------------------------
    def panel(message_html: str = ""):
        entries = bot.documents()
        options = [(f"{e.title or e.file_name} — {e.doc_id}", e.doc_id) for e in entries]
        return (
            message_html,
            render.documents_html(entries),
            gr.update(choices=options, value=None),
            render.status_html(bot.status(), _store_bytes(bot)),
            top_status(),
        )

    def top_status() -> str:
        if job.running:
            return job.progress_html()
        info = bot.status()
        gen = info.get("generator", "")
        return render.banner_html("info", f"{info['documents']} documents · {info['chunks']} chunks indexed · "
                                          f"answers by {gen}")

    def run_job(label: str, task: Callable, done_message: Callable):
        """Start task as the indexing run (after any run under way) and stream its progress."""
        while not job.start(label, task):
            for progress in job.follow():
                yield progress, gr.skip(), gr.skip(), gr.skip(), progress
        for progress in job.follow():
            yield progress, gr.skip(), gr.skip(), gr.skip(), progress
        if job.error is not None:
            text = str(job.error) if isinstance(job.error, (DocumentError, ValueError, OSError)) else (
                f"{type(job.error).__name__}: {job.error}")
            yield panel(render.banner_html("error", text))
        else:
            yield panel(render.banner_html("ok", done_message(job.result)))

    def report_text(report) -> str:
        text = (f"{report.added} added, {report.updated} updated, {report.removed} removed, "
                f"{report.unchanged} unchanged ({report.seconds:.1f} s).")
        if report.skipped:
            text += " Skipped: " + "; ".join(f"{k.file}: {k.reason}" for k in report.skipped)
        return text

    def upload(paths):
        paths = [p for p in (paths or []) if p]
        if not paths:
            return
        files = []
        try:
            for p in paths:
                files.append((Path(p).name, Path(p).read_bytes()))
        except OSError as exc:
            yield panel(render.banner_html("error", f"cannot read the upload: {exc}")) + (None,)
            return

        def task(progress):
            added, errors, report = [], [], None
            for name, data in files:
                try:
                    doc_id, report = bot.add_document(name, data, progress=progress)
                    added.append(doc_id)
                except DocumentError as exc:
                    errors.append(str(exc))
            return added, errors, report

        def message(result):
            added, errors, report = result
            parts = [f"Added {', '.join(added)}." if added else ""]
            if report is not None and report.skipped:
                parts.append("Skipped: " + "; ".join(f"{k.file}: {k.reason}" for k in report.skipped))
            parts += errors
            return " ".join(p for p in parts if p) or "Nothing added."

        for update in run_job(f"Adding {len(files)} file(s)", task, message):
            yield update + (None,)  # the last update also empties the upload box

    def delete(doc_id):
        if not doc_id:
            yield panel(render.banner_html("error", "Choose a document to delete."))
            return
        yield from run_job(f"Deleting {doc_id}", lambda progress: bot.delete_document(doc_id, progress),
                           lambda report: f"Deleted {doc_id}. " + report_text(report))

    def reindex():
        yield from run_job("Re-indexing", lambda progress: bot.index(progress=progress),
                           lambda report: "Index up to date: " + report_text(report))

    def on_load():
        for progress in job.follow():
            yield progress, gr.skip(), gr.skip(), gr.skip(), progress
        message = render.banner_html("error", str(job.error)) if job.error else ""
        yield panel(message)

    # ---- the API for scripts (gradio_client) -------------------------------------------------
    def ask(question: str, top_k: int = 0, generator: str = "", history: Optional[list] = None) -> dict:
        """Answer a question from the documents. While the answer is written, yields
        {"question", "answer" (text so far), "done": false}; then the checked answer:
        {"question", "answer", "answered", "generator", "sources": [{"marker", "doc_id", "file_name",
        "title", "text", "start", "end", "score"}], "seconds", "done": true}. Every [n] in "answer"
        is the "marker" of one of "sources". history: earlier turns as [{"role", "content"}]."""
        if not 0 <= int(top_k) <= 50:
            raise gr.Error("top_k must be between 1 and 50 (0: the configured RAG_TOP_K)")
        if generator and generator not in ("auto", "openai", "local", "extractive"):
            raise gr.Error("generator must be one of auto, openai, local, extractive (empty: the configured one)")
        while job.running:
            time.sleep(0.2)
        try:
            stream = bot.ask_stream(question, generator=generator or None, top_k=int(top_k) or None,
                                    history=[t for t in (history or []) if isinstance(t, dict)])
            text = ""
            for delta in stream:
                text += delta
                yield {"question": question, "answer": text, "done": False}
        except QuestionError as exc:
            raise gr.Error(str(exc)) from None
        yield {**stream.answer.to_dict(), "done": True}

    with gr.Blocks(title="Ask your documents") as demo:
        conv = gr.State([])  # plain {"role", "content"} turns for follow-up questions
        answers = gr.State([])  # the Answer of each turn, for the sources panel
        with gr.Row(equal_height=False):
            gr.Markdown("## Ask your documents\nAnswers come only from your documents, with the passages cited.")
            top = gr.HTML(render.banner_html("info", "Loading…"), elem_id="top-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chat = gr.Chatbot(
                    elem_id="chat", height=560, latex_delimiters=[], buttons=[], feedback_options=None,
                    group_consecutive_messages=False, show_label=False,
                    placeholder="Ask a question about your documents. Answers cite their sources as [1], [2]: "
                                "click one to see the passage.",
                )
                with gr.Row(equal_height=True):
                    box = gr.Textbox(placeholder="Ask a question…", show_label=False, lines=1, max_lines=5,
                                     scale=5, autofocus=True, elem_id="question",
                                     max_length=s.max_question_chars)
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                with gr.Row():
                    stop_btn = gr.Button("Stop", size="sm", variant="secondary")
                    clear_btn = gr.Button("New chat", size="sm", variant="secondary")
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Sources", id="sources"):
                        sources = gr.HTML(render.sources_html([]), elem_id="sources-panel")
                    with gr.Tab("Documents", id="documents") as docs_tab:
                        doc_msg = gr.HTML("", elem_id="doc-message")
                        docs_table = gr.HTML("", elem_id="docs-table")
                        files = gr.File(label=f"Add documents ({', '.join(UPLOAD_TYPES)}; up to "
                                              f"{s.max_file_mb:g} MB each)", file_count="multiple",
                                        file_types=UPLOAD_TYPES, type="filepath", elem_id="upload", height=120)
                        with gr.Row(equal_height=True):
                            doc_choice = gr.Dropdown(label="Document", choices=[], value=None, scale=3,
                                                     elem_id="doc-choice")
                            delete_btn = gr.Button("Delete", variant="stop", scale=1, min_width=80,
                                                   elem_id="delete")
                        reindex_btn = gr.Button("Re-index the documents folder", size="sm", elem_id="reindex")
                        info = gr.HTML("", elem_id="index-info")
                    with gr.Tab("Settings", id="settings"):
                        top_k = gr.Slider(1, 20, value=s.top_k, step=1, label="Passages per answer (top-k)",
                                          elem_id="top-k")
                        generator = gr.Radio(choices, value=default_gen, label="Answer generator",
                                             info="extractive quotes the passages; openai/local write with a model",
                                             elem_id="generator")

        chat_inputs = [box, chat, conv, answers, top_k, generator]
        chat_outputs = [box, chat, conv, answers, sources]
        box.submit(respond, chat_inputs, chat_outputs, api_visibility="private",
                   concurrency_limit=4, concurrency_id="answer", show_progress="hidden")
        ask_btn.click(respond, chat_inputs, chat_outputs, api_visibility="private",
                      concurrency_limit=4, concurrency_id="answer", show_progress="hidden")
        stop_btn.click(stop_answer, None, None, api_visibility="private", show_progress="hidden")
        clear_btn.click(new_chat, None, [chat, conv, answers, sources, box], api_visibility="private")
        chat.clear(new_chat, None, [chat, conv, answers, sources, box], api_visibility="private")

        doc_outputs = [doc_msg, docs_table, doc_choice, info, top]
        files.upload(upload, [files], doc_outputs + [files], api_visibility="private", show_progress="hidden")
        delete_btn.click(delete, [doc_choice], doc_outputs, api_visibility="private", show_progress="hidden",
                         js="(d) => (d && confirm('Delete ' + d + '? Its file is removed from the documents "
                            "folder and it no longer answers questions.')) ? [d] : [null]")
        reindex_btn.click(reindex, None, doc_outputs, api_visibility="private", show_progress="hidden")
        docs_tab.select(lambda: panel(gr.skip()), None, doc_outputs, api_visibility="private",
                        show_progress="hidden")
        demo.load(on_load, None, doc_outputs, api_visibility="private", show_progress="hidden")
        gr.api(ask, api_name="ask", concurrency_limit=4, concurrency_id="answer")
    return demo


def parse_auth(secret) -> Optional[tuple[str, str]]:
    if secret is None:
        return None
    user, sep, password = secret.get_secret_value().partition(":")
    if not sep or not user or not password:
        raise ValueError("RAG_AUTH must look like user:password")
    return user, password


def bind_warning(host: str, auth) -> Optional[str]:
    if auth is not None or _is_loopback(host):
        return None
    return (f"serving on {host} without a login: anyone who can reach this machine can read your "
            "documents and change them. Set RAG_AUTH=user:password.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_index(bot: RAG, progress) -> object:
    """Bring the index up to date with the docs dir, then warm what the first question needs."""
    report = bot.index(progress=progress)
    # Load the BM25 index and run the embedding model once, so the first question is answered fast.
    bot.ask("What is this about?", generator="extractive")
    return report


def launch(bot: RAG, host: str = "127.0.0.1", port: Optional[int] = 7860, quiet: bool = False):
    """Start the server without blocking; returns (demo, job, url). port None picks a free port."""
    auth = parse_auth(bot.settings.auth)
    warning = bind_warning(host, auth)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    job = IndexJob(bot)
    demo = build_app(bot, job)
    demo.queue(default_concurrency_limit=1)
    if port is None:
        port = _free_port(host)
    demo.launch(
        server_name=host, server_port=port, auth=auth, prevent_thread_lock=True, quiet=True,
        show_error=True, max_file_size=int(bot.settings.max_file_mb * 1e6), footer_links=["api"],
        css_paths=[HERE / "app.css"], js=(HERE / "app.js").read_text(encoding="utf-8"),
        theme=gr.themes.Default(font=_SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"]), ssr_mode=False,
    )
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    job.start("Indexing " + str(bot.settings.docs_dir), lambda progress: startup_index(bot, progress),
              echo=not quiet)
    return demo, job, url


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(docs=None, store=None, host: str = "127.0.0.1", port: int = 7860) -> int:
    overrides = {}
    if docs:
        overrides["docs_dir"] = Path(docs)
    if store:
        overrides["store_dir"] = Path(store)
    bot = RAG(**overrides)
    if not bot.settings.docs_dir.is_dir():
        raise FileNotFoundError(f"documents folder not found: {bot.settings.docs_dir}")
    print(f"Documents: {bot.settings.docs_dir.resolve()}\nIndex:     {bot.settings.describe_store()}", flush=True)
    try:
        demo, job, url = launch(bot, host, port)
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port} ({exc}); choose another port with --port", file=sys.stderr)
        return 1
    print(f"rag-chat is running at {url}  (Ctrl+C to stop)", flush=True)
    threading.Thread(target=_announce_ready, args=(job,), daemon=True).start()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def _announce_ready(job: IndexJob):
    while job.running:
        time.sleep(0.2)
    if job.error:
        print(f"\nindexing failed: {job.error}", file=sys.stderr, flush=True)
    elif job.result is not None:
        r = job.result
        print(f"\nindex ready: {r.added} added, {r.updated} updated, {r.removed} removed, {r.unchanged} "
              f"unchanged; {r.chunks} chunks ({r.seconds:.1f} s)", flush=True)
        for k in r.skipped:
            print(f"skipped {k.file}: {k.reason}", file=sys.stderr, flush=True)
