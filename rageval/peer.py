"""The peer: what a user gets from the stock LlamaIndex pipeline with the same embedding model and
the same bundled GGUF. `VectorStoreIndex` over the same documents with LlamaIndex's default
splitter, `as_query_engine(similarity_top_k=2)` with its default prompt; scored like the project.

The llama-index HuggingFace embedding and OpenAILike LLM packages are not installed, so two thin
adapters stand in for them: MiniLM through the project's embedder (same weights, same 256-token
window, normalised), and the GGUF through the project's llama.cpp runtime (LocalGenerator)."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

from rag.citations import is_refusal
from rag.errors import GeneratorError
from rag.models import Answer, Source
from rag.settings import Settings as RagSettings

from .data import QAItem
from .qa import GOLD_DEPTHS, score_answer, scored

PEERS = ("llamaindex",)
TOP_K = 2  # as_query_engine(similarity_top_k=2), as measured in issue 11
# Seconds the model may stay silent: the peer's ~2,000-token prompts take far longer to read than
# the project's on a busy 2-core machine, and the project's 60 s would fail most of them.
PEER_TIMEOUT_S = 300.0


def _embedding_class():
    """Defined on first use: importing llama-index costs a second or two."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class ProjectEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, embedder, **kwargs):
            super().__init__(model_name=embedder.name, embed_batch_size=32, **kwargs)
            self._embedder = embedder

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._embedder.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._embedder.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.embed(texts).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return ProjectEmbedding


def _llm_class():
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata, MessageRole
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from pydantic import PrivateAttr

    class LocalLLM(CustomLLM):
        """OpenAILike(is_chat_model=True) against the bundled GGUF, without the HTTP hop."""

        context_window: int = 3900  # llama-index's default for an OpenAI-like model
        num_output: int = 256  # llama-index's default answer budget
        _settings: Any = PrivateAttr()

        def __init__(self, settings: RagSettings, **kwargs):
            super().__init__(**kwargs)
            self._settings = settings

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=self.context_window, num_output=self.num_output,
                               is_chat_model=True, model_name="local")

        def _run(self, messages: list[dict]) -> str:
            from rag.local_llm import LocalGenerator

            return LocalGenerator.shared(self._settings).complete(messages, self.num_output)

        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            text = self._run([{"role": m.role.value, "content": m.content or ""} for m in messages])
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=self._run([{"role": "user", "content": prompt}]))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            yield self.complete(prompt, formatted=formatted)

    return LocalLLM


class LlamaIndexPeer:
    """The stock pipeline over settings.docs_dir, built in memory once per run."""

    def __init__(self, settings: RagSettings, llm=None):
        from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex

        from rag.embeddings import get_embedder

        # Set both: llama-index falls back to OpenAI (over the network) for whichever is unset.
        Settings.embed_model = _embedding_class()(get_embedder(settings))
        peer_settings = settings.model_copy(update={"llm_timeout": max(settings.llm_timeout, PEER_TIMEOUT_S)})
        Settings.llm = llm if llm is not None else _llm_class()(peer_settings)
        t0 = time.perf_counter()
        documents = SimpleDirectoryReader(str(settings.docs_dir), recursive=True, filename_as_id=True).load_data()
        self.index = VectorStoreIndex.from_documents(documents)
        self.index_seconds = time.perf_counter() - t0
        self.documents = len({d.metadata.get("file_name") for d in documents})
        self.chunks = len(self.index.docstore.docs)
        self.engine = self.index.as_query_engine(similarity_top_k=TOP_K)
        self.retriever = self.index.as_retriever(similarity_top_k=max(GOLD_DEPTHS))

    def ask(self, question: str) -> Answer:
        t0 = time.perf_counter()
        try:
            response = self.engine.query(question)
        except GeneratorError as exc:  # a timeout is a failed answer, as a user would see it
            return Answer(question=question, answer="", answered=False, generator="llamaindex",
                          seconds=time.perf_counter() - t0, fallback_reason=str(exc))
        text = str(response).strip()
        return Answer(question=question, answer=text, answered=not is_refusal(text), generator="llamaindex",
                      sources=_sources(response.source_nodes), seconds=time.perf_counter() - t0)

    def retrieve(self, question: str) -> list[Source]:
        return _sources(self.retriever.retrieve(question))


def _sources(nodes) -> list[Source]:
    out = []
    for i, n in enumerate(nodes, start=1):
        meta = n.node.metadata
        name = meta.get("file_name") or n.node.ref_doc_id or ""
        out.append(Source(marker=i, doc_id=meta.get("file_path", name), file_name=name, title=name,
                          text=n.node.get_content(), start=n.node.start_char_idx or 0,
                          end=n.node.end_char_idx or 0, score=float(n.score or 0.0)))
    return out


def run_peer(name: str, settings: RagSettings, items: list[QAItem], bar: Optional[Callable] = None,
             llm=None) -> dict:
    """The peer's answers to the items, scored like the project's (rageval.qa.score_answer)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: use one of {', '.join(PEERS)}")
    bar = bar or (lambda it, desc, total: it)
    peer = LlamaIndexPeer(settings, llm)
    rows = []
    for item in bar(items, f"peer {name}", len(items)):
        answer = peer.ask(item.question)
        passages = peer.retrieve(item.question) if item.gold is not None else None
        rows.append({**score_answer(item, answer, passages), "error": answer.fallback_reason})
    return {"name": name, **scored(rows, [name]), "documents": peer.documents, "chunks": peer.chunks,
            "index_seconds": round(peer.index_seconds, 2), "top_k": TOP_K}
