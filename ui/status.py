"""The index summary: the line at the top of the page (or the indexing progress while a run is
under way), the details in the Documents tab, and `GET /health` for load balancers and scripts."""

import logging
import time

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rag import RAG, StoreError

from . import render
from .jobs import IndexJob


def header() -> gr.HTML:
    """The page title and the status line beside it (filled in when the page loads)."""
    with gr.Row(equal_height=False):
        gr.Markdown("## Ask your documents\nAnswers come only from your documents, with the passages cited.")
        return gr.HTML(render.banner_html("info", "Loading…"), elem_id="top-status")


def top_status(bot: RAG, job: IndexJob) -> str:
    if job.running:
        return job.progress_html()
    info = bot.status()
    gen = info.get("generator", "")
    return render.banner_html("info", f"{info['documents']} documents · {info['chunks']} chunks indexed · "
                                      f"answers by {gen}{last_change(job)}")


def last_change(job: IndexJob) -> str:
    """" · 14:02 folder change: notes.txt added (1 added)": what the watcher last took in."""
    if job.last_change is None:
        return ""
    when, what, r = job.last_change
    counts = ", ".join(f"{n} {k}" for n, k in ((r.added, "added"), (r.updated, "updated"), (r.removed, "removed"))
                       if n)
    return f" · {time.strftime('%H:%M', time.localtime(when))} folder change: {what} ({counts})"


def index_info(bot: RAG) -> str:
    """Documents, chunks, size on disk, models and folders, for the Documents tab."""
    return render.status_html(bot.status())


log = logging.getLogger("rag.ui")


def health(bot: RAG, job: IndexJob) -> tuple[int, dict]:
    """(HTTP status, body) of `GET /health`: 200 {"status": "ok", "version": N, "indexing": bool} once
    questions are answered, N the store version answered from (on a replica of a Chroma server, the
    one it has swapped in); 503 while starting or when the store cannot be reached. Nothing about
    the documents, so it needs no login."""
    follower = bot.follower
    try:
        version = bot.served_version()
        if follower is not None and follower.error:  # its view is kept, but every question needs the server
            raise StoreError(follower.error)
    except StoreError as exc:
        log.warning("health check: %s", exc)  # the reason names the server: for the log, not the caller
        return 503, {"status": "store unreachable", "version": None, "indexing": job.running}
    if version is None:
        return 503, {"status": "starting", "version": None, "indexing": job.running}
    return 200, {"status": "ok", "version": version, "indexing": job.running}


def mount(app: FastAPI, bot: RAG, job: IndexJob) -> None:
    """Add `GET /health` to the server's FastAPI app (Gradio's)."""

    def get_health() -> JSONResponse:
        code, body = health(bot, job)
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    app.add_api_route("/health", get_health, methods=["GET"], include_in_schema=False)
