"""The index summary: the line at the top of the page (or the indexing progress while a run is
under way) and the details in the Documents tab."""

import time

import gradio as gr

from rag import RAG

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
