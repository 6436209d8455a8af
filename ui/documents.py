"""The Documents tab: the indexed documents, upload, delete and re-index. Each change runs as the
one indexing run (ui/jobs.py) and streams its progress to the tab and the top of the page."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from rag import RAG, DocumentError, IndexReport, Settings

from . import render, status
from .jobs import IndexJob

UPLOAD_TYPES = RAG.supported_types()
REFRESH_SECONDS = 2.0  # how often an open page checks for runs it did not start
CONFIRM_DELETE = ("(d) => (d && confirm('Delete ' + d + '? Its file is removed from the documents "
                  "folder and it no longer answers questions.')) ? [d] : [null]")


@dataclass
class DocumentsView:
    tab: gr.Tab
    message: gr.HTML
    table: gr.HTML
    files: gr.File
    choice: gr.Dropdown
    delete_btn: gr.Button
    reindex_btn: gr.Button
    info: gr.HTML


def layout(settings: Settings) -> DocumentsView:
    """The Documents tab, in the gr.Tabs this is called in."""
    with gr.Tab("Documents", id="documents") as tab:
        message = gr.HTML("", elem_id="doc-message")
        table = gr.HTML("", elem_id="docs-table")
        files = gr.File(label=f"Add documents ({', '.join(UPLOAD_TYPES)}; up to {settings.max_file_mb:g} MB each)",
                        file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", elem_id="upload",
                        height=120)
        with gr.Row(equal_height=True):
            choice = gr.Dropdown(label="Document", choices=[], value=None, scale=3, elem_id="doc-choice")
            delete_btn = gr.Button("Delete", variant="stop", scale=1, min_width=80, elem_id="delete")
        reindex_btn = gr.Button("Re-index the documents folder", size="sm", elem_id="reindex")
        info = gr.HTML("", elem_id="index-info")
    return DocumentsView(tab, message, table, files, choice, delete_btn, reindex_btn, info)


class Documents:
    """The tab's event handlers. Outputs of each: message, table, document choice, index info,
    top status line."""

    def __init__(self, bot: RAG, job: IndexJob):
        self.bot = bot
        self.job = job

    def panel(self, message_html="", keep_choice: bool = False) -> tuple:
        entries = self.bot.documents()
        options = [(f"{e.title or e.file_name} — {e.doc_id}", e.doc_id) for e in entries]
        choice = gr.update(choices=options) if keep_choice else gr.update(choices=options, value=None)
        return (message_html, render.documents_html(entries), choice,
                status.index_info(self.bot), status.top_status(self.bot, self.job))

    def _follow(self) -> Iterator[tuple]:
        for progress in self.job.follow():
            yield progress, gr.skip(), gr.skip(), gr.skip(), progress

    def run_job(self, label: str, task: Callable, done_message: Callable) -> Iterator[tuple]:
        """Start task as the indexing run (after any run under way) and stream its progress."""
        while not (run := self.job.start(label, task)):
            yield from self._follow()
        yield from self._follow()
        run.done.wait()  # its own outcome: the folder watcher may have started another run since
        error = run.error
        if error is not None:
            text = str(error) if isinstance(error, (DocumentError, ValueError, OSError)) else (
                f"{type(error).__name__}: {error}")
            yield self.panel(render.banner_html("error", text))
        else:
            yield self.panel(render.banner_html("ok", done_message(run.result)))

    def upload(self, paths):
        paths = [p for p in (paths or []) if p]
        if not paths:
            return
        try:
            files = [(Path(p).name, Path(p).read_bytes()) for p in paths]
        except OSError as exc:
            yield self.panel(render.banner_html("error", f"cannot read the upload: {exc}")) + (None,)
            return
        for update in self.run_job(f"Adding {len(files)} file(s)", lambda progress: _add(self.bot, files, progress),
                                   _added_message):
            yield update + (None,)  # the last update also empties the upload box

    def delete(self, doc_id):
        if not doc_id:
            yield self.panel(render.banner_html("error", "Choose a document to delete."))
            return
        yield from self.run_job(f"Deleting {doc_id}", lambda progress: self.bot.delete_document(doc_id, progress),
                                lambda report: f"Deleted {doc_id}. " + report_text(report))

    def reindex(self):
        yield from self.run_job("Re-indexing", lambda progress: self.bot.index(progress=progress),
                                lambda report: "Index up to date: " + report_text(report))

    def refresh(self, seen: int) -> tuple:
        """A timer's tick: the progress of a run under way (the folder watcher's too), the tab and the
        top line again once a run this page has not shown is over, else nothing (plus the runs seen)."""
        if self.job.running:
            progress = self.job.progress_html()
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), progress, seen
        if self.job.finished == seen:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
        return self.panel(gr.skip(), keep_choice=True) + (self.job.finished,)  # a choice being made stays

    def on_load(self):
        """When a page opens: the progress of a run under way, then the tab as it is."""
        yield from self._follow()
        yield self.panel(render.banner_html("error", str(self.job.error)) if self.job.error else "")


def _add(bot: RAG, files: list[tuple[str, bytes]], progress) -> tuple[list[str], list[str], IndexReport | None]:
    """Add each uploaded (name, bytes); returns the ids added, the refusals, the last index report."""
    added, errors, report = [], [], None
    for name, data in files:
        try:
            doc_id, report = bot.add_document(name, data, progress=progress)
            added.append(doc_id)
        except DocumentError as exc:
            errors.append(str(exc))
    return added, errors, report


def _added_message(result: tuple[list[str], list[str], IndexReport | None]) -> str:
    added, errors, report = result
    parts = [f"Added {', '.join(added)}." if added else ""]
    if report is not None and report.skipped:
        parts.append(_skipped(report))
    if report is not None and report.instructions:
        parts.append(_planted(report))
    parts += errors
    return " ".join(p for p in parts if p) or "Nothing added."


def report_text(report: IndexReport) -> str:
    text = (f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged ({report.seconds:.1f} s).")
    if report.skipped:
        text += " " + _skipped(report)
    if report.instructions:
        text += " " + _planted(report)
    return text


def _planted(report: IndexReport) -> str:
    docs = ", ".join(f"{d} ({n})" for d, n in report.instructions.items())
    return (f"Sentences addressed to the assistant (such as “ignore previous instructions”) found in {docs}: "
            "they are never shown to a model nor used as evidence.")


def _skipped(report: IndexReport) -> str:
    """Files of types that are not read are counted by type, not listed: a folder may hold many."""
    unsupported: dict[str, int] = {}
    other = []
    for k in report.skipped:
        if k.reason.startswith("unsupported type"):
            kind = k.reason.removeprefix("unsupported type").strip()
            unsupported[kind] = unsupported.get(kind, 0) + 1
        else:
            other.append(f"{k.file}: {k.reason}")
    if unsupported:
        kinds = ", ".join(f"{kind} ×{n}" if n > 1 else kind for kind, n in sorted(unsupported.items()))
        count = sum(unsupported.values())
        other.append(f"{count} file{'s' if count > 1 else ''} of types that are not read ({kinds})")
    return "Skipped: " + "; ".join(other)


def wire(view: DocumentsView, handlers: Documents, top: gr.HTML, demo: gr.Blocks) -> None:
    outputs = [view.message, view.table, view.choice, view.info, top]
    view.files.upload(handlers.upload, [view.files], outputs + [view.files], api_visibility="private",
                      show_progress="hidden")
    view.delete_btn.click(handlers.delete, [view.choice], outputs, api_visibility="private", show_progress="hidden",
                          js=CONFIRM_DELETE)
    view.reindex_btn.click(handlers.reindex, None, outputs, api_visibility="private", show_progress="hidden")
    view.tab.select(lambda: handlers.panel(gr.skip()), None, outputs, api_visibility="private", show_progress="hidden")
    demo.load(handlers.on_load, None, outputs, api_visibility="private", show_progress="hidden")
    # Runs nobody clicked for (the folder watcher's) show up without a reload.
    seen = gr.State(0)
    gr.Timer(REFRESH_SECONDS).tick(handlers.refresh, [seen], outputs + [seen], api_visibility="private",
                                   show_progress="hidden", queue=False)
