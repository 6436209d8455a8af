"""Stage 2: Documents -> Chunks that fit the embedding model's window, counted by its own tokenizer.
A chunk never crosses from one page, slide or sheet (a Segment) into the next, so each chunk has
one place in the original file; elsewhere its place is the section heading it falls under."""

from __future__ import annotations

import bisect
import hashlib
import re
from typing import Callable, Iterator, Optional

from llama_index.core import Document as LIDocument
from llama_index.core.node_parser import SentenceSplitter

from .boilerplate import without_furniture
from .models import Chunk, Document
from .text import chunking_pieces

# How documents are read and cut, for the store record: a store built by another reading (older
# readers, titles, furniture rules, chunk sizes) is re-read in full by the next `rag index`, reusing
# the vectors of every chunk whose text did not change. Raise it when reading or chunking changes.
READING_VERSION = 2

HEADING = re.compile(r"(?m)^#{1,6}[ \t]+(\S.*?)[ \t#]*$")  # a Markdown heading line


def chunk_id(doc_id: str, sha256: str, reading: str, n: int) -> str:
    """The id of a document version's n-th chunk. The reading is in the id: a re-read never
    overwrites the chunks readers see in place."""
    return hashlib.sha1(f"{doc_id}\0{sha256}\0{reading}\0{n}".encode()).hexdigest()


class Chunker:
    def __init__(self, tokenize: Callable[[str], list], chunk_size: int, chunk_overlap: int):
        self.reading = f"{READING_VERSION}:{chunk_size}:{min(chunk_overlap, chunk_size // 2)}"
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
        headings = [(m.start(), m.group(1)) for m in HEADING.finditer(doc.text)]
        chunks: list[Chunk] = []
        # banners, share lines, reference lists (rag/boilerplate.py) are left out of every chunk
        for start, end, page, location in without_furniture(doc.text, _regions(doc)):
            for text, s, e in self._split(doc.text[start:end]):
                s, e = start + s, start + e
                chunks.append(Chunk(chunk_id(doc.doc_id, doc.sha256, self.reading, len(chunks)), doc.doc_id,
                                    doc.title, doc.file_name, text, s, e, doc.sha256,
                                    page, location or _section(headings, (s + e) // 2)))
        return chunks

    def _split(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(chunk text, start, end) of the chunks of text, offsets into text."""
        nodes = self.splitter.get_nodes_from_documents([LIDocument(text=text)])
        cursor = 0
        for node in nodes:
            content = node.get_content()
            start = getattr(node, "start_char_idx", None)  # TextNode has offsets; BaseNode does not say
            if start is None:  # splitter normalised whitespace; find it near where we are
                start = max(text.find(content[:50], max(0, cursor - 2000)), 0)
            end = getattr(node, "end_char_idx", None)
            end = end if end is not None else start + len(content)
            cursor = end
            yield content, start, end


def _regions(doc: Document) -> list[tuple[int, int, Optional[int], str]]:
    """(start, end, page, location) of each part of the text that is chunked on its own."""
    marks = [(s.start, s.page, s.location) for s in doc.segments]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, None, ""))
    ends = [m[0] for m in marks[1:]] + [len(doc.text)]
    return [(start, end, page, location) for (start, page, location), end in zip(marks, ends) if end > start]


def _section(headings: list[tuple[int, str]], at: int) -> str:
    """The heading of the section the offset `at` falls in ("§ Results"), or "" before any heading."""
    i = bisect.bisect_right(headings, (at, "\uffff")) - 1
    return f"§ {headings[i][1][:80]}" if i >= 0 else ""
