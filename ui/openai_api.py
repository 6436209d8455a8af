"""The OpenAI-compatible API on the UI's server, a thin layer over RAG.ask_stream like /ask
(ui/api_routes.py): `POST /v1/chat/completions` (stream or not) and `GET /v1/models`.

    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key=os.environ.get("RAG_API_KEY", "none"))
    reply = client.chat.completions.create(model="rag-chat", messages=[{"role": "user", "content": "..."}])
    reply.choices[0].message.content      # the checked answer, citing [1], [2] ...
    reply.model_extra["sources"]          # the passages those numbers are ("marker" = n)

The content is the checked answer, so a stream sends it once the citations are checked (a role
chunk goes first at once); the final chunk carries `sources`. Earlier user/assistant messages are
the history follow-ups are resolved with; system messages are not used. Extensions in the body:
`top_k`, `doc_ids`. Errors are OpenAI's {"error": {...}} shape.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag import RAG, Answer, AnswerStream, QuestionError, RagError

from .chat import ANSWER_CONCURRENCY
from .jobs import IndexJob

log = logging.getLogger("rag.ui")

MODEL = "rag-chat"
# Sent by the project's own `openai` generator (rag/openai_generator.py, same name): a rag-chat
# server asked by a rag-chat generator refuses, else OPENAI_BASE_URL pointed at this server would
# have every answer ask the server again, without end.
HOP_HEADER = "X-RAG-Chat-Hop"
MAX_BODY_BYTES = 4_000_000


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: Optional[str] = None, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def refusal(api_key: Optional[str], loopback: bool, authorization: Optional[str]) -> Optional[ApiError]:
    """Why a request may not use /v1, or None. With a key (RAG_API_KEY) the bearer token must be
    it; without one only a server bound to a loopback address answers (RAG_AUTH plays no part)."""
    if api_key:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            return ApiError(401, "Incorrect or missing API key: send the server's RAG_API_KEY as "
                                 "'Authorization: Bearer <key>'.", code="invalid_api_key")
        return None
    if not loopback:
        return ApiError(403, "The OpenAI-compatible API is off on this address: without RAG_API_KEY it "
                             "answers only when the server is bound to a loopback address (127.0.0.1). Set "
                             "RAG_API_KEY and send it as the bearer token.", kind="permission_error",
                        code="api_key_required")
    return None


@dataclass
class ChatRequest:
    question: str
    model: str
    generator: Optional[str] = None
    history: list[dict] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    top_k: Optional[int] = None
    doc_ids: Optional[list[str]] = None


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts of which the text ones count."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(str(p.get("text") or "") for p in content if p.get("type") == "text")
    raise ApiError(400, f"{where}.content must be a string or a list of content parts", param=where)


def parse_request(body: Any, models: dict[str, Optional[str]]) -> ChatRequest:
    """The question, history and options of a chat-completions body; ApiError 400/404 when bad.
    models maps each model id to the generator it names (None: the default)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {\"role\", \"content\"} messages.",
                       param="messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
        turns.append({"role": m["role"], "content": _text(m.get("content"), f"messages[{i}]")})
    if turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ApiError(400, "The last message must be the user's question.", param="messages")
    model = body.get("model") or MODEL
    if model not in models:
        raise ApiError(404, f"The model {model!r} does not exist; use one of {', '.join(models)} (GET /v1/models).",
                       param="model", code="model_not_found")
    stream, options = body.get("stream", False), body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise ApiError(400, "'stream' must be true or false and 'stream_options' an object.", param="stream")
    doc_ids = body.get("doc_ids")
    if doc_ids is not None and not (isinstance(doc_ids, list) and all(isinstance(d, str) for d in doc_ids)):
        raise ApiError(400, "'doc_ids' must be a list of document ids or globs.", param="doc_ids")
    history = [t for t in turns[:-1] if t["role"] in ("user", "assistant") and t["content"].strip()]
    return ChatRequest(question=turns[-1]["content"], model=model, generator=models[model], history=history,
                       stream=stream, include_usage=bool(options.get("include_usage")),
                       top_k=body.get("top_k"), doc_ids=doc_ids or None)


def _count(text: str) -> int:
    # Words and punctuation, not a model's tokens: the answer may come from no model at all.
    return len(re.findall(r"\w+|[^\w\s]", text))


def usage(req: ChatRequest, answer: Answer) -> dict:
    asked = _count(req.question) + sum(_count(t["content"]) for t in req.history)
    written = _count(answer.answer)
    return {"prompt_tokens": asked, "completion_tokens": written, "total_tokens": asked + written}


def completion(req: ChatRequest, answer: Answer) -> dict:
    """The chat.completion object, plus `sources` (ignored by OpenAI clients)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": req.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage(req, answer),
        "sources": [s.public() for s in answer.sources],
    }


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def completion_events(req: ChatRequest, finish: Callable[[], Answer]) -> Iterator[str]:
    """The SSE lines of a streamed answer: the role at once, the checked answer (finish() returns
    it) in word-sized pieces, then a chunk with finish_reason and `sources`, then [DONE]."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": req.model}

    def chunk(delta: dict, finish_reason: Optional[str] = None) -> dict:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    yield _event(chunk({"role": "assistant", "content": ""}))
    try:
        answer = finish()
    except Exception as exc:  # headers are sent: the error goes in the stream, as OpenAI's does
        if not isinstance(exc, RagError):
            log.exception("chat completion failed")
        message = str(exc) if isinstance(exc, RagError) else "Answering failed on the server (see its log)."
        kind = "invalid_request_error" if isinstance(exc, QuestionError) else "server_error"
        yield _event(ApiError(400 if kind == "invalid_request_error" else 500, message, kind=kind).body())
        yield "data: [DONE]\n\n"
        return
    for piece in re.findall(r"\S*\s*", answer.answer):
        if piece:
            yield _event(chunk({"content": piece}))
    yield _event({**chunk({}, "stop"), "sources": [s.public() for s in answer.sources]})
    if req.include_usage:
        yield _event({**head, "choices": [], "usage": usage(req, answer)})
    yield "data: [DONE]\n\n"


class OpenAIApi:
    def __init__(self, bot: RAG, job: IndexJob, loopback: bool):
        self.bot, self.job, self.loopback = bot, job, loopback
        self.created = int(time.time())
        # Its own limit, the size of the chat's: answers are CPU-bound and the machine may be small.
        self.slots = threading.BoundedSemaphore(ANSWER_CONCURRENCY)

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/v1")
        r.add_api_route("/models", self.models, methods=["GET"], include_in_schema=False)
        r.add_api_route("/chat/completions", self.chat_completions, methods=["POST"], include_in_schema=False)
        r.add_api_route("/{path:path}", self.unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                        include_in_schema=False)
        return r

    def _refused(self, request: Request) -> Optional[ApiError]:
        key = self.bot.settings.api_key
        return refusal(key.get_secret_value() if key else None, self.loopback, request.headers.get("authorization"))

    def model_ids(self) -> dict[str, Optional[str]]:
        choices, _ = self.bot.generator_choices()
        return {MODEL: None, **{f"{MODEL}:{name}": name for name in choices}}

    async def models(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused.response()
        data = [{"id": m, "object": "model", "created": self.created, "owned_by": MODEL} for m in self.model_ids()]
        return JSONResponse({"object": "list", "data": data})

    async def unknown(self, request: Request, path: str) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused.response()
        return ApiError(404, f"No {request.method} /v1/{path} here: this server answers POST /v1/chat/completions "
                             "and GET /v1/models.", code="unknown_url").response()

    async def chat_completions(self, request: Request) -> Response:
        try:
            if (refused := self._refused(request)) is not None:
                raise refused
            if request.headers.get(HOP_HEADER):
                raise ApiError(508, "This is a rag-chat server, asked by a rag-chat answer generator: "
                                    "OPENAI_BASE_URL points at a rag-chat server, not at an LLM.",
                               kind="server_error", code="loop_detected")
            req = parse_request(await _read_json(request), self.model_ids())
            stream = await run_in_threadpool(self._start, req)
            if req.stream:
                return StreamingResponse(completion_events(req, lambda: self._finish(stream)),
                                         media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
            return JSONResponse(completion(req, await run_in_threadpool(self._finish, stream)))
        except ApiError as exc:
            return exc.response()
        except QuestionError as exc:
            return ApiError(400, str(exc)).response()
        except RagError as exc:
            return ApiError(500, str(exc), kind="server_error").response()
        except Exception:
            log.exception("chat completion failed")
            return ApiError(500, "Answering failed on the server (see its log).", kind="server_error").response()

    def _start(self, req: ChatRequest) -> AnswerStream:
        """Checks the question and options (QuestionError) and returns the stream, not yet run."""
        # As the chat does: only a first start waits; a re-index leaves a consistent index to answer from.
        while self.job.running and not self.bot.documents():
            time.sleep(0.2)
        return self.bot.ask_stream(req.question, generator=req.generator, top_k=req.top_k,
                                   history=req.history, doc_ids=req.doc_ids)

    def _finish(self, stream: AnswerStream) -> Answer:
        with self.slots:
            return stream.finish()


async def _read_json(request: Request) -> Any:
    data = b""
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"The request body is over {MAX_BODY_BYTES:,} bytes.")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "The request body is not valid JSON.") from None


def mount(app: FastAPI, bot: RAG, job: IndexJob, loopback: bool) -> None:
    """Add /v1 to the server's FastAPI app (Gradio's); loopback: the server is bound to a loopback address."""
    app.include_router(OpenAIApi(bot, job, loopback).router())


def describe(bot: RAG, url: str, loopback: bool) -> str:
    """One line for the console: where the API is and who may use it (never the key)."""
    if bot.settings.api_key:
        return f"OpenAI-compatible API: {url}/v1  (bearer token: RAG_API_KEY)"
    if loopback:
        return f"OpenAI-compatible API: {url}/v1  (no key needed on this loopback address)"
    return f"OpenAI-compatible API: {url}/v1 is refused on this address until RAG_API_KEY is set"
