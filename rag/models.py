"""Plain data passed between the stages and returned by the Python API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .text import MARKER, markers_in


@dataclass
class Segment:
    """A part of a document's text that has its own place in the original file: a PDF page, a slide,
    a sheet. Chunks never cross from one segment into the next, so each chunk has one place."""

    start: int  # character offset in Document.text where the part begins
    page: Optional[int] = None  # PDF page or slide number, from 1
    location: str = ""  # as a reader cites it: "p. 7", "slide 3", "sheet Sales"


@dataclass
class Document:
    doc_id: str  # path relative to the docs dir, with forward slashes
    title: str
    file_name: str
    text: str
    sha256: str  # of the file's bytes
    segments: list[Segment] = field(default_factory=list)  # empty: the text is one part


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    title: str
    file_name: str
    text: str
    start: int  # character offsets in the document text
    end: int
    doc_sha256: str
    page: Optional[int] = None  # PDF page or slide number the chunk is on
    location: str = ""  # "p. 7", "slide 3", "sheet Sales", or the section heading it falls under


@dataclass
class Source:
    """A retrieved passage as the user sees it; `marker` is the n of `[n]`."""

    marker: int
    doc_id: str
    file_name: str
    title: str
    text: str
    start: int
    end: int
    score: float
    similarity: float = 0.0  # cosine similarity to the question, when known
    chunk_id: str = ""
    # character spans (in `text`) of the sentences that support what the answer cites this for
    spans: list[tuple[int, int]] = field(default_factory=list)
    page: Optional[int] = None  # PDF page or slide number; None for other files and older indexes
    location: str = ""  # where in the file, as shown beside the citation: "p. 7", "slide 3", "sheet Sales"

    def public(self) -> dict:
        d = asdict(self)
        for internal in ("similarity", "chunk_id", "spans"):
            d.pop(internal)
        return d


@dataclass
class Answer:
    question: str
    answer: str
    answered: bool
    generator: str
    sources: list[Source] = field(default_factory=list)
    seconds: float = 0.0
    fallback_reason: Optional[str] = None

    def cited_markers(self) -> list[int]:
        """The markers the answer text uses, each once, in order (none for a not-found answer)."""
        return list(dict.fromkeys(markers_in(self.answer))) if self.answered else []

    def pieces(self) -> list[tuple[str, list[int]]]:
        """The answer text cut at its markers: (text, markers that follow it), for rendering links."""
        out, last = [], 0
        for m in MARKER.finditer(self.answer):
            out.append((self.answer[last:m.start()], markers_in(m.group(0))))
            last = m.end()
        out.append((self.answer[last:], []))
        return out

    def to_dict(self) -> dict:
        d = {
            "question": self.question,
            "answer": self.answer,
            "answered": self.answered,
            "generator": self.generator,
            "sources": [s.public() for s in self.sources],
            "seconds": round(self.seconds, 3),
        }
        if self.fallback_reason:
            d["fallback_reason"] = self.fallback_reason
        return d


@dataclass
class Skipped:
    file: str
    reason: str


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    moved_aside: Optional[str] = None  # where `--rebuild` moved a store too damaged to open
    # documents read in this run that address the assistant ("ignore previous instructions"):
    # doc id -> sentences found; they are never shown to a model nor taken as evidence
    instructions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        if d["moved_aside"] is None:  # the key only when it happened
            del d["moved_aside"]
        return d
