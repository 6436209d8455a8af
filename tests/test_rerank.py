"""RAG_RERANK_MODEL: a local cross-encoder rescores the fused candidates. No cross-encoder ships
offline, so the test builds a tiny randomly initialised one and saves it itself; its scores mean
nothing, which is the point: the order retrieval returns can only be the cross-encoder's own."""

from __future__ import annotations

import socket
import threading

import pytest

from rag import RAG, Settings
from rag.embeddings import bundled_model_path
from rag.errors import SettingsError

QUESTIONS = ["What remains a critical barrier to China's AI self-sufficiency?",
             "Which company makes the chips?", "What did the report say about revenue?"]
POOL, TOP_K = 12, 4


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    """A 2-layer BERT with one relevance output and the bundled MiniLM's tokenizer, random weights
    spread wide enough that its scores differ clearly from one passage to the next."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross_encoder")
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    torch.manual_seed(15)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt the test's own thread makes, loopback or not (none is expected).
    Threads other tests left running (a server's client, a store follower) may connect meanwhile:
    they are not this test's, and the suite's guard still blocks them from leaving the machine."""
    attempts: list = []
    real = socket.socket.connect
    mine = threading.get_ident()

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and threading.get_ident() == mine:
            attempts.append(address)
            raise ConnectionRefusedError(f"test_rerank: connection to {address!r} blocked")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def _predict(folder, question, texts):
    from sentence_transformers import CrossEncoder

    return [float(x) for x in CrossEncoder(str(folder), device="cpu", local_files_only=True).predict(
        [(question, t) for t in texts], show_progress_bar=False)]


def test_retrieval_follows_the_cross_encoders_scores(seeded_store, cross_encoder, monkeypatch, no_network):
    base = seeded_store.settings
    monkeypatch.setenv("RAG_RERANK_MODEL", str(cross_encoder))
    monkeypatch.setenv("RAG_RERANK_CANDIDATES", str(POOL))
    settings = Settings(docs_dir=base.docs_dir, store_dir=base.store_dir, top_k=TOP_K)
    assert settings.rerank_model == cross_encoder and settings.rerank_candidates == POOL
    reranked_bot, fused_bot = RAG(settings), RAG(base)
    moved = 0
    for question in QUESTIONS:
        pool = fused_bot.retrieve(question, top_k=POOL)  # the fused candidates the cross-encoder reads
        assert len(pool) == POOL
        scores = _predict(cross_encoder, question, [s.text for s in pool])
        expected = [pool[i].chunk_id for i in sorted(range(POOL), key=lambda i: -scores[i])][:TOP_K]
        got = reranked_bot.retrieve(question)
        assert [s.chunk_id for s in got] == expected
        assert [s.marker for s in got] == list(range(1, TOP_K + 1))
        assert [s.score for s in got] == pytest.approx(sorted(scores, reverse=True)[:TOP_K], abs=1e-5)
        moved += expected != [s.chunk_id for s in pool[:TOP_K]]
    assert moved  # the random cross-encoder reorders: the test would see reranking switched off
    assert no_network == []


def test_top_k_and_document_filter_are_kept(seeded_store, cross_encoder):
    bot = RAG(seeded_store.settings, rerank_model=cross_encoder, rerank_candidates=3)
    for top_k in (1, 5, 8):  # 5 and 8 ask for more passages than RAG_RERANK_CANDIDATES
        assert len(bot.retrieve(QUESTIONS[0], top_k=top_k)) == top_k
    doc = bot.retrieve(QUESTIONS[0], top_k=1)[0].doc_id
    limited = bot.retrieve(QUESTIONS[0], top_k=2, doc_ids=[doc])
    assert limited and {s.doc_id for s in limited} == {doc}


def test_ask_answers_from_reranked_passages(seeded_store, cross_encoder):
    bot = RAG(seeded_store.settings, rerank_model=cross_encoder, generator="extractive")
    answer = bot.ask(QUESTIONS[0])
    retrieved = [s.chunk_id for s in bot.retrieve(QUESTIONS[0])]
    assert [s.chunk_id for s in answer.sources] == retrieved[: len(answer.sources)]


def _never_load(monkeypatch):
    """sentence-transformers would look a name that is not a folder up on the hub: it must not be reached."""
    import sentence_transformers

    def refuse(*args, **kwargs):
        raise AssertionError(f"CrossEncoder was asked to load {args!r}")

    monkeypatch.setattr(sentence_transformers.CrossEncoder, "__init__", refuse)


@pytest.mark.parametrize("name", ["missing", "cross-encoder/ms-marco-MiniLM-L-6-v2"])
def test_a_name_that_is_not_a_folder_is_refused_naming_the_setting(seeded_store, tmp_path, monkeypatch,
                                                                   no_network, name):
    _never_load(monkeypatch)
    target = tmp_path / name if name == "missing" else name
    bot = RAG(seeded_store.settings, rerank_model=target)
    with pytest.raises(SettingsError, match="RAG_RERANK_MODEL") as err:
        bot.retrieve(QUESTIONS[0])
    assert str(target) in str(err.value) and "not an existing folder" in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLI prints it as one line
    assert no_network == []


def test_a_folder_that_is_not_a_cross_encoder_is_refused(seeded_store, tmp_path, monkeypatch):
    _never_load(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, why in [(bundled_model_path(), "not a cross-encoder"), (empty, "no readable config.json")]:
        bot = RAG(seeded_store.settings, rerank_model=folder)
        with pytest.raises(SettingsError, match="RAG_RERANK_MODEL") as err:
            bot.retrieve(QUESTIONS[0])
        assert str(folder) in str(err.value) and why in str(err.value)


def test_without_the_setting_nothing_is_reranked(seeded_store, monkeypatch):
    _never_load(monkeypatch)
    assert seeded_store.settings.rerank_model is None
    assert seeded_store.retriever.reranker is None
    assert len(seeded_store.retrieve(QUESTIONS[0])) == seeded_store.settings.top_k
