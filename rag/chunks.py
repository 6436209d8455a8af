"""Stage 2: Documents -> Chunks that fit the embedding model's window, counted by its own tokenizer."""

from __future__ import annotations

import hashlib
from typing import Callable

from llama_index.core import Document as LIDocument
from llama_index.core.node_parser import SentenceSplitter

from .models import Chunk, Document
from .text import chunking_pieces


class Chunker:
    def __init__(self, tokenize: Callable[[str], list], chunk_size: int, chunk_overlap: int):
        self.splitter = SentenceSplitter(
            chunk_size=chunk_size,
            chunk_overlap=min(chunk_overlap, chunk_size // 2),
            tokenizer=tokenize,
            chunking_tokenizer_fn=chunking_pieces,
            paragraph_separator="\n\n",
            include_metadata=False,
            include_prev_next_rel=False,
        )

    def chunk(self, doc: Document) -> list[Chunk]:
        li_doc = LIDocument(text=doc.text, id_=doc.doc_id)
        nodes = self.splitter.get_nodes_from_documents([li_doc])
        chunks, cursor = [], 0
        for i, node in enumerate(nodes):
            text = node.get_content()
            start = getattr(node, "start_char_idx", None)  # TextNode has offsets; BaseNode does not say
            if start is None:  # splitter normalised whitespace; find it near where we are
                start = doc.text.find(text[:50], max(0, cursor - 2000))
                start = max(start, 0)
            end = getattr(node, "end_char_idx", None)
            end = end if end is not None else start + len(text)
            cursor = end
            chunk_id = hashlib.sha1(f"{doc.doc_id}\0{doc.sha256}\0{i}".encode()).hexdigest()
            chunks.append(
                Chunk(chunk_id, doc.doc_id, doc.title, doc.file_name, text, start, end, doc.sha256)
            )
        return chunks
