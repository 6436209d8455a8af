"""The OpenAI-compatible API (ui/openai_api.py) on the real server, used with the `openai` client:
cited answers streamed and not, follow-ups through the messages' history, the bearer token
(RAG_API_KEY), loopback-only without one, and the project's own `openai` generator pointed at the
server itself (one refused hop, not a loop)."""

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from types import SimpleNamespace

import openai
import pytest
from openai import OpenAI

from ui.openai_api import MODEL, ApiError, completion_events, parse_request, refusal

from .conftest import free_port

KEY = "sk-rag-test-0123456789abcdef"
QUESTION = "What did Premier Li Qiang tell lawmakers about AI?"
FOLLOW_UP = "and when?"
MODELS = {MODEL: None, f"{MODEL}:extractive": "extractive"}


# ---- the decisions, without a server ---------------------------------------------------------------
def test_who_may_use_the_api():
    assert refusal(KEY, False, f"Bearer {KEY}") is None  # a key makes any bind usable
    assert refusal(KEY, True, f"bearer  {KEY} ") is None
    for header in (None, "", "Bearer", f"Bearer {KEY}x", f"Basic {KEY}", KEY, "Bearer sk-rag-test"):
        refused = refusal(KEY, True, header)
        assert refused is not None and refused.status == 401 and KEY not in refused.message
    assert refusal(None, True, None) is None  # no key: loopback answers
    assert refusal("", True, "Bearer anything") is None
    for key in (None, ""):
        refused = refusal(key, False, f"Bearer {KEY}")
        assert refused is not None and refused.status == 403 and "RAG_API_KEY" in refused.message


@pytest.mark.parametrize("body, status, param", [
    ([], 400, None),
    ({}, 400, "messages"),
    ({"messages": "hi"}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "system", "content": "be brief"}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a"}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "   "}]}, 400, "messages"),
    ({"messages": ["hi"]}, 400, "messages[0]"),
    ({"messages": [{"role": "user", "content": 42}]}, 400, "messages[0]"),
    ({"messages": [{"role": "user", "content": "q?"}], "stream": "yes"}, 400, "stream"),
    ({"messages": [{"role": "user", "content": "q?"}], "doc_ids": "a.txt"}, 400, "doc_ids"),
    ({"messages": [{"role": "user", "content": "q?"}], "model": "gpt-4o"}, 404, "model"),
])
def test_bad_requests_are_named(body, status, param):
    with pytest.raises(ApiError) as exc:
        parse_request(body, MODELS)
    assert exc.value.status == status and exc.value.param == param
    assert set(exc.value.body()["error"]) == {"message", "type", "param", "code"}


def test_request_becomes_question_history_and_generator():
    req = parse_request({"model": f"{MODEL}:extractive", "stream": True, "stream_options": {"include_usage": True},
                         "messages": [{"role": "system", "content": "You are helpful."},
                                      {"role": "user", "content": QUESTION},
                                      {"role": "assistant", "content": "He spoke of AI [1]."},
                                      {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]}]},
                        MODELS)
    assert (req.question, req.generator, req.stream, req.include_usage) == (FOLLOW_UP, "extractive", True, True)
    assert req.history == [{"role": "user", "content": QUESTION},
                           {"role": "assistant", "content": "He spoke of AI [1]."}]
    assert parse_request({"messages": [{"role": "user", "content": "q?"}]}, MODELS).model == MODEL


def test_a_failure_after_the_stream_began_is_an_error_event():
    from rag import StoreError

    req = parse_request({"messages": [{"role": "user", "content": "q?"}], "stream": True}, MODELS)

    def fail():
        raise StoreError("the index is unreadable")

    events = list(completion_events(req, fail))
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(events[1].removeprefix("data: "))["error"]["message"] == "the index is unreadable"
    assert events[2:] == ["data: [DONE]\n\n"]


def test_api_key_setting_is_secret(monkeypatch):
    from rag.openai_generator import HOP_HEADER as SENT
    from rag.settings import Settings
    from ui.openai_api import HOP_HEADER as REFUSED

    assert SENT == REFUSED
    monkeypatch.setenv("RAG_API_KEY", KEY)
    settings = Settings()
    assert settings.api_key.get_secret_value() == KEY and KEY not in repr(settings) + str(settings)


# ---- the real server -------------------------------------------------------------------------------
@contextmanager
def serving(seeded_store, tmp_path, host="127.0.0.1", port=None, **overrides):
    """The real server (UI and /v1) on a copy of the indexed seeds, extractive answers."""
    from rag import RAG
    from ui.app import launch

    store = tmp_path / "store"
    shutil.copytree(seeded_store.settings.store_dir, store)
    bot = RAG(seeded_store.settings, store_dir=store, generator="extractive", **overrides)
    demo, job, url = launch(bot, host=host, port=port, quiet=True)
    try:
        while job.running:
            time.sleep(0.1)
        assert job.error is None
        yield SimpleNamespace(url=url, bot=bot)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def server(seeded_store, tmp_path_factory):
    """Keyed, with a UI login (RAG_AUTH) the API does not need, and an `openai` generator whose
    endpoint is this server's own /v1, asking for the model that answers with that generator, and
    questions long enough to hold its prompt: unless refused, each of its requests would ask the
    server again."""
    port = free_port()
    with serving(seeded_store, tmp_path_factory.mktemp("openai-api"), port=port, api_key=KEY, auth="alice:pw",
                 openai_base_url=f"http://127.0.0.1:{port}/v1", openai_api_key=KEY, llm_model=f"{MODEL}:openai",
                 llm_timeout=20, max_question_chars=20_000) as s:
        s.client = OpenAI(base_url=f"{s.url}/v1", api_key=KEY, max_retries=0, timeout=120)
        yield s


def _post(url, body: bytes, headers=None):
    """(status, parsed JSON body) of a raw POST."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _quotes(text):
    return re.findall(r"“([^”]+)”", text)


@pytest.mark.slow
def test_answer_is_cited_with_its_sources(server):
    reply = server.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    content = reply.choices[0].message.content
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.role == "assistant" and reply.model == MODEL
    assert "[1]" in content and "Wednesday" in content
    sources = {s["marker"]: s for s in reply.model_extra["sources"]}
    assert {"marker", "doc_id", "file_name", "title", "text", "start", "end", "score"} <= set(sources[1])
    assert _quotes(content) and all(q in sources[1]["text"] for q in _quotes(content))
    assert reply.usage.completion_tokens > 0 and reply.usage.total_tokens > reply.usage.completion_tokens
    ids = [m.id for m in server.client.models.list()]
    assert ids[0] == MODEL and {f"{MODEL}:extractive", f"{MODEL}:openai"} <= set(ids)


@pytest.mark.slow
def test_streamed_answer_is_the_checked_answer(server):
    whole = server.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    chunks = list(server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and "[1]" in text
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(final) == 1 and final[0].model_extra["sources"] == whole.model_extra["sources"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # the wire format itself: data lines ending with [DONE]
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    raw = urllib.request.urlopen(urllib.request.Request(
        f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
        data=json.dumps(body).encode()), timeout=60).read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


@pytest.mark.slow
def test_follow_up_uses_the_earlier_messages(server):
    first = server.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    history = [{"role": "user", "content": QUESTION},
               {"role": "assistant", "content": first.choices[0].message.content}]
    alone = server.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": FOLLOW_UP}])
    assert "[1]" not in alone.choices[0].message.content  # nothing to go on: not found
    followed = server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Answer briefly."}, *history,
                               {"role": "user", "content": FOLLOW_UP}])
    content = followed.choices[0].message.content
    assert "Wednesday" in content and "[1]" in content
    assert any("Wednesday" in s["text"] for s in followed.model_extra["sources"] if s["marker"] == 1)


@pytest.mark.slow
def test_bearer_token(server):
    for key in ("wrong-key", KEY[:-1]):
        with pytest.raises(openai.AuthenticationError) as exc:
            OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0).models.list()
        assert exc.value.status_code == 401 and key not in str(exc.value)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}).encode()
    status, error = _post(f"{server.url}/v1/chat/completions", body)  # no Authorization at all
    assert status == 401 and error["error"]["code"] == "invalid_api_key"
    # The UI's login (RAG_AUTH) guards the UI; the API needs only its token.
    with pytest.raises(urllib.error.HTTPError) as ui:
        urllib.request.urlopen(f"{server.url}/config", timeout=10)
    assert ui.value.code == 401
    assert _post(f"{server.url}/v1/chat/completions", body, {"Authorization": f"Bearer {KEY}"})[0] == 200


@pytest.mark.slow
def test_bad_input_gets_openai_errors(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    url = f"{server.url}/v1/chat/completions"
    for body, status in [(b"{not json", 400), (b"\xff\xfe", 400), (b'{"messages": "hi"}', 400),
                         (b'{"messages": [{"role": "system", "content": "x"}]}', 400),
                         (json.dumps({"messages": [{"role": "user", "content": "why? " * 5000}]}).encode(), 400),
                         (json.dumps({"top_k": "many", "messages": [{"role": "user", "content": "q?"}]}).encode(), 400),
                         (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "q?"}]}', 404)]:
        got, error = _post(url, body, auth)
        assert got == status and set(error) == {"error"} and error["error"]["message"]
        assert "Traceback" not in json.dumps(error)
    with pytest.raises(openai.NotFoundError) as exc:
        server.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert exc.value.body["code"] == "model_not_found" and MODEL in exc.value.body["message"]
    assert _post(f"{server.url}/v1/embeddings", b"{}", auth)[0] == 404


@pytest.mark.slow
def test_own_openai_generator_pointed_at_the_server_does_not_loop(server):
    """The server's `openai` generator has this server's /v1 as its endpoint: its request carries the
    hop header, is refused, and the answer falls back to quotes, with the reason."""
    reply = server.client.chat.completions.create(model=f"{MODEL}:openai",
                                                  messages=[{"role": "user", "content": QUESTION}])
    assert "[1]" in reply.choices[0].message.content and "Wednesday" in reply.choices[0].message.content
    answer = server.bot.ask(QUESTION, generator="openai")
    assert answer.answered and answer.generator == "extractive"
    assert "rag-chat server" in answer.fallback_reason and "508" in answer.fallback_reason
    status, error = _post(f"{server.url}/v1/chat/completions",
                          json.dumps({"messages": [{"role": "user", "content": QUESTION}]}).encode(),
                          {"Authorization": f"Bearer {KEY}", "X-RAG-Chat-Hop": "1"})
    assert status == 508 and error["error"]["code"] == "loop_detected"


@pytest.mark.slow
@pytest.mark.parametrize("host, allowed", [("0.0.0.0", False), ("127.0.0.1", True)])
def test_without_a_key_only_a_loopback_bind_answers(seeded_store, tmp_path, host, allowed):
    # A login for the UI while it listens beyond loopback; it does not open /v1.
    with serving(seeded_store, tmp_path, host=host, auth="alice:pw") as s:
        client = OpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)
        if allowed:
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
            assert "[1]" in reply.choices[0].message.content
            return
        with pytest.raises(openai.PermissionDeniedError) as exc:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        assert exc.value.status_code == 403 and "RAG_API_KEY" in exc.value.body["message"]
        with pytest.raises(openai.PermissionDeniedError):
            client.models.list()
