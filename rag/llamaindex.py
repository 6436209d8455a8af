"""LlamaIndex-native views of RAG: a retriever and a query engine (behind RAG.as_retriever / as_query_engine).

LlamaIndex is imported here only; the rest of the package does not need it. Both views turn the
project's `Source` objects into LlamaIndex nodes with `to_node`, so a node looks the same whether it
came from retrieval or from an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from .models import Source

if TYPE_CHECKING:
    from .api import RAG
    from .retrieval import Mode


def to_node(source: Source) -> NodeWithScore:
    """One retrieved passage as a LlamaIndex node, scored like the project scores it."""
    node = TextNode(
        id_=source.chunk_id or f"{source.doc_id}:{source.start}",
        text=source.text,
        metadata={
            "doc_id": source.doc_id,
            "file_name": source.file_name,
            "title": source.title,
            "start": source.start,
            "end": source.end,
            "marker": source.marker,
        },
        start_char_idx=source.start,
        end_char_idx=source.end,
    )
    return NodeWithScore(node=node, score=source.score)


class RAGRetriever(BaseRetriever):
    """A LlamaIndex retriever over `RAG.retrieve` (hybrid, dense or bm25 search of the project's store)."""

    def __init__(self, bot: RAG, top_k: Optional[int] = None, mode: Mode = "hybrid", **kwargs: Any) -> None:
        bot.validate_options(top_k=top_k, mode=mode)  # fail here, not on the first query
        self._bot = bot
        self._top_k = top_k
        self._mode: Mode = mode
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(s) for s in self._bot.retrieve(query_bundle.query_str, self._top_k, self._mode)]


class RAGQueryEngine(CustomQueryEngine):
    """A LlamaIndex query engine over `RAG.ask`: the answer with its citations checked, and its sources."""

    bot: Any
    generator: Optional[str] = None
    top_k: Optional[int] = None

    def custom_query(self, query_str: str) -> Response:
        answer = self.bot.ask(query_str, generator=self.generator, top_k=self.top_k)
        return Response(
            response=answer.answer,
            source_nodes=[to_node(s) for s in answer.sources],
            metadata={
                "answered": answer.answered,
                "generator": answer.generator,
                "fallback_reason": answer.fallback_reason,
            },
        )


def retriever(bot: RAG, top_k: Optional[int] = None, mode: Mode = "hybrid") -> RAGRetriever:
    return RAGRetriever(bot, top_k=top_k, mode=mode)


def query_engine(bot: RAG, generator: Optional[str] = None, top_k: Optional[int] = None) -> RAGQueryEngine:
    bot.validate_options(top_k=top_k, generator=generator)
    return RAGQueryEngine(bot=bot, generator=generator, top_k=top_k)
