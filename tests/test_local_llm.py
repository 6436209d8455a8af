"""The bundled local model: weights joined and verified from their slices, grounded and cited answers
from the real model (in-process), and the OpenAI-compatible path against llama.cpp's own HTTP server.
The model is loaded once for the whole session; only a few questions are asked."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from rag import RAG, local_weights, multilingual
from rag.citations import markers_in
from rag.errors import GeneratorError, ModelFileError
from rag.evidence import select as select_passages
from rag.generators import resolve_name
from rag.local_llm import LocalGenerator, answer_messages
from rag.local_weights import BundledModel, ensure_bundled, locate_parts
from rag.openai_generator import OpenAIGenerator
from rag.prompts import NOT_FOUND
from rag.settings import Settings

from .conftest import SHARED_EVAL

SEEDQA = {q["id"]: q for q in map(json.loads, (SHARED_EVAL / "seedqa-sample.jsonl").read_text().splitlines())}


# ---- joining and verifying the weights (small fake slices; the real packages are never touched) ----

def fake_model(tmp_path, contents: list[bytes]) -> tuple[BundledModel, list]:
    paths = []
    for n, data in enumerate(contents, 1):
        p = tmp_path / "slices" / f"part{n:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    whole = b"".join(contents)
    model = BundledModel("fake.gguf", len(whole), hashlib.sha256(whole).hexdigest(), len(contents),
                         "no-such-dist-{n}", "x/part{n:02d}.bin")
    return model, paths


SLICES = [b"GGUF" + bytes(range(256)) * 40, b"\x01\x02" * 5000, b"tail of the model" * 300]


def test_slices_join_into_verified_file_once(tmp_path):
    model, parts = fake_model(tmp_path, SLICES)
    cache = tmp_path / "cache"
    path = ensure_bundled(cache, model, parts)
    assert path.read_bytes() == b"".join(SLICES)
    stamp = json.loads((cache / "fake.gguf.verified").read_text())
    assert stamp["sha256"] == model.sha256 and stamp["size"] == model.size
    # Later starts trust the stamp: the slices are not read again.
    for p in parts:
        p.unlink()
    assert ensure_bundled(cache, model, parts) == path


def test_altered_slice_is_refused_and_leaves_nothing(tmp_path):
    model, parts = fake_model(tmp_path, SLICES)
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 0xFF  # same size, different bytes
    parts[1].write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="sha256"):
        ensure_bundled(cache, model, parts)
    assert list(cache.iterdir()) == []


def test_missing_or_truncated_slice_is_refused(tmp_path):
    model, parts = fake_model(tmp_path, SLICES)
    parts[2].write_bytes(parts[2].read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="expected"):
        ensure_bundled(tmp_path / "c1", model, parts)
    parts[2].unlink()
    with pytest.raises(ModelFileError, match="unreadable"):
        ensure_bundled(tmp_path / "c2", model, parts)


def test_altered_cache_file_is_joined_again(tmp_path):
    model, parts = fake_model(tmp_path, SLICES)
    cache = tmp_path / "cache"
    path = ensure_bundled(cache, model, parts)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # new mtime: the stamp no longer vouches for it
    assert ensure_bundled(cache, model, parts).read_bytes() == b"".join(SLICES)


def test_uninstalled_slice_packages_are_named(tmp_path):
    model, _ = fake_model(tmp_path, SLICES)
    with pytest.raises(ModelFileError, match=r"no-such-dist-1.*reinstall"):
        locate_parts(model)


def test_installed_slices_are_found_through_package_metadata():
    parts = locate_parts()
    assert [p.name for p in parts] == [f"part{n:02d}.bin" for n in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == local_weights.QWEN_CODER_1_5B.size


def test_without_runtime_auto_falls_back_and_says_why(monkeypatch):
    real = local_weights.importlib.util.find_spec
    monkeypatch.setattr(local_weights.importlib.util, "find_spec",
                        lambda name, *a: None if name == "xllamacpp" else real(name, *a))
    name, note = resolve_name(Settings())
    assert name == "extractive"
    assert "xllamacpp" in note and "pip install -e '.[local]'" in note


def test_other_gguf_path_is_checked(tmp_path):
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"<html>not a model</html>")
    absent = Settings(local_model_path=tmp_path / "absent.gguf")
    assert local_weights.unavailable_reason(absent).endswith("does not exist")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        local_weights.model_file(Settings(local_model_path=not_gguf))


def test_status_names_the_local_model_or_why_it_cannot_run(tmp_path):
    ok = RAG(store_dir=tmp_path / "s").generator_status()
    assert ok["generator"] == "local" and "Qwen2.5-Coder-1.5B" in ok["model"] and ok["threads"] >= 1
    missing = RAG(store_dir=tmp_path / "s", local_model_path=tmp_path / "absent.gguf").generator_status()
    assert missing["generator"] == "extractive" and "absent.gguf does not exist" in missing["note"]


def test_language_detection():
    assert multilingual.language_of("What remains a critical barrier to China's AI self-sufficiency?") is None
    assert multilingual.language_of("哪些公司与政府研究人员合作？") == "Chinese"
    assert multilingual.language_of("DeepSeek的创始人见了谁？") == "Chinese"
    assert multilingual.language_of("Qui a rencontré le président Xi Jinping ?") == "French"
    assert multilingual.language_of("¿Qué empresas colaboran con los investigadores del gobierno?") == "Spanish"


def test_translated_sentences_keep_their_citations():
    answer = "Baidu and SenseTime partner with government researchers [1]. Funding has increased [2, 3]."
    replies = iter([["百度和商汤", "与政府研究人员合作[7]。"], ["资金", "增加了。"]])
    out = "".join(multilingual.translate_cited(answer, "Chinese", lambda messages, n: iter(next(replies))))
    assert out == "百度和商汤与政府研究人员合作[1]。资金增加了[2][3]。"


def test_invented_figures_get_no_citation():
    from rag.citations import check
    from rag.models import Source

    text = ("Companies like Baidu and SenseTime are partnering with government researchers. "
            "Government funding for AI projects given to companies like Baidu increased in 2025.")
    sources = [Source(1, "d.txt", "d.txt", "t", text, 0, len(text), 1.0, 0.5)]
    made_up, _ = check("The government gave Baidu $100 million in 2025.", sources)
    assert markers_in(made_up) == []
    stated, _ = check("Government funding for AI projects given to Baidu increased in 2025.", sources)
    assert markers_in(stated) == [1]


# ---- the real model -----------------------------------------------------------------------------

def matches(answer: str, groups: list[list[str]]) -> bool:
    return all(any(s.lower() in answer.lower() for s in group) for group in groups)


def assert_cited(answer):
    valid = {s.marker for s in answer.sources}
    assert markers_in(answer.answer), answer.answer
    assert set(markers_in(answer.answer)) <= valid


@pytest.fixture(scope="session")
def local_model():
    return LocalGenerator.shared(Settings())


@pytest.mark.slow
@pytest.mark.parametrize("qid", ["x01", "x05"])
def test_seed_question_answered_and_cited(seeded_store, local_model, qid):
    q = SEEDQA[qid]
    stream = seeded_store.ask_stream(q["question"], generator="local")
    deltas = list(stream)
    answer = stream.answer
    assert answer.generator == "local" and answer.fallback_reason is None
    assert len(deltas) > 3  # streamed token by token, not in one piece
    assert answer.answered and matches(answer.answer, q["answer"]), answer.answer
    assert_cited(answer)


@pytest.mark.slow
def test_the_model_is_checked_against_what_it_read_and_what_it_left_out_is_quoted(seeded_store, local_model):
    """Every sentence the model was shown as answering ends up said: in its words or quoted after."""
    from rag import evidence, prompts

    question = "How is China building up its domestic chip industry?"
    sources = seeded_store.retrieve(question)
    read = local_model.read(question, sources)
    assert read and all(len(r.text) < len(s.text) for r in read for s in sources if s.marker == r.marker)
    answer = seeded_store.ask(question, generator="local")
    assert answer.generator == "local" and answer.answered, answer.answer
    model_words = answer.answer.split(f"\n\n{prompts.ALSO_IN_PASSAGES} ")[0]
    left = evidence.unsaid(local_model._reading(question, sources).units, question, model_words)
    assert all(part in answer.answer for unit in left for part in unit.parts)
    assert (prompts.ALSO_IN_PASSAGES in answer.answer) == bool(left)
    assert_cited(answer)


@pytest.mark.slow
def test_unanswerable_question_declined_by_the_model(seeded_store, local_model):
    # With the similarity floor off, the passages reach the model, which must decline by itself.
    bot = RAG(seeded_store.settings, min_similarity=-1.0)
    answer = bot.ask(SEEDQA["x06"]["question"], generator="local")
    assert answer.generator == "local" and answer.fallback_reason is None
    assert not answer.answered and answer.answer == NOT_FOUND and markers_in(answer.answer) == []


@pytest.mark.slow
def test_chinese_question_answered_in_chinese_with_citations(seeded_store, local_model):
    answer = seeded_store.ask("哪些公司与政府研究人员合作？", generator="local")
    assert answer.generator == "local" and answer.answered, answer.answer
    assert re.search(r"[\u4e00-\u9fff]", answer.answer)
    assert re.search(r"Baidu|百度", answer.answer)
    assert_cited(answer)


@pytest.mark.slow
def test_openai_generator_against_llama_cpp_http_server(seeded_store, local_model):
    """The OpenAI path for real: the openai client over loopback HTTP to llama.cpp's own server
    (the one the local generator runs), model and all; a wrong key is refused with a clear reason."""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", local_model.base_url)
    s = seeded_store.settings
    q = SEEDQA["x03"]
    bot = RAG(s, openai_base_url=local_model.base_url, openai_api_key=local_model.api_key, llm_model="qwen")
    assert resolve_name(bot.settings) == ("openai", None)

    # The whole pipeline streams through the endpoint (one passage keeps the prompt short on 2 cores).
    # The generic prompt is written for larger models; this 1.5B model may decline under it (then
    # the passage's quotable sentence answers, labelled), so only the round trip is checked here
    # and the grounded answer below.
    stream = bot.ask_stream(q["question"], top_k=1)
    deltas = list(stream)
    answer = stream.answer
    if answer.generator == "openai":
        assert answer.fallback_reason is None
    else:
        assert answer.generator == "extractive" and "openai model found no answer" in answer.fallback_reason
    assert len(deltas) > 3 and "".join(deltas).strip()
    assert set(markers_in(answer.answer)) <= {1}
    assert answer.answered or answer.answer == NOT_FOUND

    # The same client with the local model's prompt gives the grounded answer.
    sources = bot.retrieve(q["question"])
    passages = select_passages(q["question"], sources, bot.embedder).passages
    reply = OpenAIGenerator(bot.settings).complete(answer_messages(q["question"], passages), max_tokens=60)
    assert matches(reply, q["answer"]), reply

    wrong = RAG(s, openai_base_url=local_model.base_url, openai_api_key="wrong-key", llm_model="qwen")
    refused = wrong.ask(q["question"], top_k=1)
    assert refused.generator == "extractive" and "401" in refused.fallback_reason
    assert "wrong-key" not in json.dumps(refused.to_dict())


@pytest.mark.slow
def test_errors_from_llama_cpp_become_generator_errors(local_model):
    with pytest.raises(GeneratorError, match="local model failed"):
        local_model.complete([{"role": "user", "content": "hi"}], max_tokens=-5.5)
