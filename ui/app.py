"""The browser UI: chat with streamed, cited answers, the passages behind them, and the documents.
A thin layer over rag.RAG: build_app assembles the parts (ui/chat.py, ui/documents.py,
ui/status.py, ui/api_routes.py), launch adds the OpenAI-compatible /v1 (ui/openai_api.py);
rendering lives in ui/render.py.

    rag serve [--docs DIR] [--store DIR] [--host 127.0.0.1] [--port 7860]     (or: python -m ui)

ui/serve.py runs that command; this module builds and launches the app.
"""

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import gradio as gr

from rag import RAG, StoreLocked

from . import api_routes, chat, conversations, documents, files, openai_api, render, security, status
from .jobs import IndexJob

__all__ = ["IndexJob", "build_app", "launch", "parse_auth", "bind_warning", "startup_index"]

HERE = Path(__file__).resolve().parent
# The machine's own fonts: nothing to fetch, and every script (CJK included) has a glyph.
_SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "Helvetica Neue", "Arial",
                 "sans-serif"]


def build_app(bot: RAG, job: IndexJob) -> gr.Blocks:
    """The page: the chat on the left; Sources, Documents and Settings tabs on the right; /ask."""
    with gr.Blocks(title="Ask your documents") as demo:
        conv = gr.State([])  # plain {"role", "content"} turns for follow-up questions
        answers = gr.State([])  # the Answer of each turn, for the sources panel
        top = status.header()
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                chat_view = chat.layout(bot.settings)
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Sources", id="sources"):
                        sources = gr.HTML(render.sources_html([]), elem_id="sources-panel")
                    docs_view = documents.layout(bot.settings)
                    with gr.Tab("Settings", id="settings"):
                        top_k, generator = chat.settings_tab(bot)
        chat_handlers = chat.Chat(bot, job)
        asked = chat.wire(chat_view, chat_handlers, conv, answers, top_k, generator, sources)
        if bot.settings.keep_conversations:
            kept = conversations.Conversations(bot)
            conversations.wire(chat_view, kept, conv, answers, sources, asked, demo)
        chat.wire_picker(chat_view, chat_handlers, docs_view.table, demo)
        documents.wire(docs_view, documents.Documents(bot, job), top, demo)
        api_routes.register(bot, job)
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
    try:
        report = bot.index(progress=progress)
    except StoreLocked as exc:
        if not bot.settings.chroma_host:
            raise
        # Another replica or a `rag index` writes the shared store now: this one follows what it publishes.
        print(f"note: not indexing at start: {exc}", file=sys.stderr, flush=True)
        report = None
    bot.warm_up()
    return report


def launch(bot: RAG, host: str = "127.0.0.1", port: Optional[int] = 7860, quiet: bool = False):
    """Start the server without blocking; returns (demo, job, url). port None picks a free port."""
    s = bot.settings
    auth = parse_auth(s.auth)
    share = security.share_requested()
    tls = security.tls_options(s)  # checked before anything starts
    for warning in (bind_warning(host, auth), security.share_warning(share, auth)):
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    hosts = security.HostPolicy(host, s.allowed_hosts or "")
    throttle = security.LoginThrottle(s.login_attempts, s.login_window) if auth else None
    job = IndexJob(bot)
    demo = build_app(bot, job)
    demo.queue(default_concurrency_limit=1)
    # uploads are copied into the docs folder at once: Gradio's copies go after this long
    demo.delete_cache = (min(s.upload_cache_seconds, 300), s.upload_cache_seconds)
    if port is None:
        port = _free_port(host)
    demo.launch(
        server_name=host, server_port=port, auth=auth, prevent_thread_lock=True, quiet=True, share=share,
        show_error=True, max_file_size=int(s.max_file_mb * 1e6), footer_links=["api"],
        css_paths=[HERE / "app.css"], js=(HERE / "app.js").read_text(encoding="utf-8"),
        theme=gr.themes.Default(font=_SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"]), ssr_mode=False,
        _app=security.guarded_app(hosts, throttle), auth_message=security.LOGIN_NOTE if auth else None, **tls,
    )
    if demo.share_url:  # the tunnel sends the link's own host name
        hosts.allow(urlsplit(demo.share_url).hostname or "")
    openai_api.mount(demo.app, bot, job, _is_loopback(host))  # /v1, before anyone has the URL
    files.mount(demo.app, bot)  # /document/<doc id>: a citation opens its document there
    status.mount(demo.app, bot, job)  # /health
    if s.chroma_host:  # other processes may index the server's store: answer from what they publish
        bot.follow_store()
    url = f"{'https' if tls else 'http'}://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    job.start("Indexing " + str(bot.settings.docs_dir), lambda progress: startup_index(bot, progress),
              echo=not quiet)
    return demo, job, url


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return sock.getsockname()[1]
