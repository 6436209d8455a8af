"""Opening a cited document where the citation points: `GET /document/<doc id>`.

PDFs and images are served as they are (the browser's viewer opens a PDF at `#page=N`); every other
type as a page of the text the index read from it, the cited passage marked and scrolled to
(`?start=&end=#passage`), with a link to the original file (`?download=1`). Only documents the index
holds, only from the documents folder (RAG.document_file), and with RAG_AUTH set only to a logged-in
user: the route takes Gradio's own login check, as Gradio's file routes do."""

from __future__ import annotations

from typing import Callable, Optional

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from rag import RAG, DocumentError

from . import render

# Served as they are: the browser shows them itself.
INLINE_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# Nothing in a document's text view may run or load anything (it is escaped besides).
_TEXT_VIEW_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox allow-downloads",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def gradio_login_check(app: FastAPI) -> Optional[Callable]:
    """Gradio's dependency that refuses a request without a login when the app has one: the one
    its /config route (which every page load asks for) depends on."""
    for route in app.routes:
        if getattr(route, "path", "") == "/config":
            for dep in getattr(route, "dependencies", []):
                if getattr(dep.dependency, "__name__", "") == "login_check":
                    return dep.dependency
    return None


def router(bot: RAG, login_check: Optional[Callable]) -> APIRouter:
    routes = APIRouter(dependencies=[Depends(login_check)] if login_check else [])

    @routes.get("/document/{doc_id:path}")
    def document(doc_id: str, start: Optional[int] = None, end: Optional[int] = None,
                 download: bool = False) -> Response:
        try:
            path = bot.document_file(doc_id)
        except DocumentError as exc:
            return PlainTextResponse(str(exc), status_code=404, headers=_FILE_HEADERS)
        media = INLINE_TYPES.get(path.suffix.lower())
        if download or media:
            return FileResponse(path, media_type=media or "application/octet-stream", filename=path.name,
                                content_disposition_type="inline" if media and not download else "attachment",
                                headers=_FILE_HEADERS)
        try:
            doc, current = bot.document_text(doc_id)
        except DocumentError as exc:
            return PlainTextResponse(str(exc), status_code=404, headers=_FILE_HEADERS)
        span = (start, end) if current and start is not None and end is not None else None
        return HTMLResponse(render.document_html(doc, span, current), headers=_TEXT_VIEW_HEADERS)

    return routes


def mount(app: FastAPI, bot: RAG) -> None:
    """Add /document/ to the server's FastAPI app (Gradio's), behind its login when it has one."""
    login_check = gradio_login_check(app)
    if login_check is None and getattr(app, "auth", None):
        raise RuntimeError("Gradio's login check was not found: documents would be served without a login")
    app.include_router(router(bot, login_check))
