"""The LlamaIndex-native parts: RAG.as_retriever plugged into LlamaIndex's own engines, RAG.as_query_engine.

Real embedded Chroma and the real embedding model (the shared seeded store); LlamaIndex's LLM and
embedding defaults are mocks, and the network guard fails any accidental OpenAI default.
"""

from __future__ import annotations

import pytest

from rag import RAG
from rag.text import markers_in

QUESTION = "What remains a critical barrier to China's AI self-sufficiency?"


@pytest.fixture
def li_settings():
    """LlamaIndex's global Settings set to mocks for the test, restored after it."""
    from llama_index.core import MockEmbedding, Settings
    from llama_index.core.llms import MockLLM

    saved = (Settings._llm, Settings._embed_model)
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    yield Settings
    Settings._llm, Settings._embed_model = saved


@pytest.fixture
def bot(seeded_store):
    return RAG(seeded_store.settings)


def check_node(nws, bot):
    node = nws.node
    meta = node.metadata
    for key in ("doc_id", "file_name", "title", "start", "end", "marker"):
        assert key in meta, key
    assert meta["doc_id"] and meta["file_name"]
    assert node.start_char_idx == meta["start"] and node.end_char_idx == meta["end"]
    assert nws.score is not None


def test_retriever_in_llamaindex_query_engine(bot, li_settings):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers import get_response_synthesizer
    from llama_index.core.retrievers import BaseRetriever

    retriever = bot.as_retriever(top_k=3)
    assert isinstance(retriever, BaseRetriever)
    llm = MockLLM()
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=llm, response_synthesizer=get_response_synthesizer(llm=llm))
    response = engine.query(QUESTION)

    assert len(response.source_nodes) == 3
    for nws in response.source_nodes:
        check_node(nws, bot)
    assert any("chip" in nws.node.get_content().lower() for nws in response.source_nodes)

    # the nodes are the project's own retrieval, in its order, with its scores and ids
    sources = bot.retrieve(QUESTION, top_k=3)
    assert [n.node.node_id for n in response.source_nodes] == [
        s.chunk_id or f"{s.doc_id}:{s.start}" for s in sources]
    assert [n.score for n in response.source_nodes] == pytest.approx([s.score for s in sources])
    assert [n.node.get_content() for n in response.source_nodes] == [s.text for s in sources]


def test_retriever_modes_and_bad_options(bot):
    from rag.errors import QuestionError

    nodes = bot.as_retriever(top_k=2, mode="bm25").retrieve("chip export controls")
    assert 1 <= len(nodes) <= 2
    with pytest.raises(QuestionError):
        bot.as_retriever(mode="nope")
    with pytest.raises(QuestionError):
        bot.as_retriever(top_k=0)


def test_retriever_in_llamaindex_chat_engine(bot, li_settings):
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.llms import MockLLM

    retriever = bot.as_retriever(top_k=3)
    engine = CondensePlusContextChatEngine.from_defaults(retriever, llm=MockLLM())
    reply = engine.chat(QUESTION)
    assert isinstance(str(reply), str)
    assert len(reply.source_nodes) == 3
    ids = {s.chunk_id or f"{s.doc_id}:{s.start}" for s in bot.retrieve(QUESTION, top_k=3)}
    assert {n.node.node_id for n in reply.source_nodes} == ids
    for nws in reply.source_nodes:
        check_node(nws, bot)


def test_query_engine_matches_ask(bot):
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.response.schema import Response

    engine = bot.as_query_engine(generator="extractive")
    assert isinstance(engine, BaseQueryEngine)
    response = engine.query(QUESTION)
    answer = bot.ask(QUESTION, generator="extractive")

    assert isinstance(response, Response)
    assert str(response) == answer.answer
    assert response.metadata == {"answered": answer.answered, "generator": answer.generator,
                                 "fallback_reason": answer.fallback_reason}
    assert answer.answered
    markers = {n.node.metadata["marker"] for n in response.source_nodes}
    cited = set(markers_in(str(response)))
    assert cited and cited <= markers
    assert [n.node.metadata["marker"] for n in response.source_nodes] == [s.marker for s in answer.sources]
    for nws in response.source_nodes:
        check_node(nws, bot)
