"""Text and stores for `rag bench`, made from real sentences: documents of recombined seed (and
SciFact) sentences, and stores filled with real chunk texts and generated vectors (real vectors
perturbed), because embedding 100,000 chunks for real would take an hour on two cores."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from rag.api import RAG
from rag.chunks import Chunker, chunk_id
from rag.documents import load_document
from rag.models import Chunk
from rag.store import CatalogEntry
from rag.text import split_sentences

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


# ---- real text, recombined ------------------------------------------------------------------------
def sentence_pool(scifact_dir: Optional[Path], limit_docs: int = 2000) -> list[str]:
    """Sentences of the seeds and (when present) of SciFact abstracts."""
    pool: list[str] = []
    for path in sorted(SEEDS.glob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            pool.extend(text[s:e] for s, e in split_sentences(text))
    corpus = scifact_dir / "corpus.jsonl" if scifact_dir else None
    if corpus and corpus.is_file():
        with corpus.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if n >= limit_docs:
                    break
                text = json.loads(line).get("text", "")
                pool.extend(text[s:e] for s, e in split_sentences(text))
    pool = [" ".join(s.split()) for s in pool]
    return [s for s in pool if 30 <= len(s) <= 600]


class TextMaker:
    """Documents of recombined real sentences, deterministic for a given seed."""

    def __init__(self, pool: list[str], seed: int = 7):
        self.pool, self.rng = pool, random.Random(seed)

    def title(self) -> str:
        words = self.rng.choice(self.pool).split()
        return " ".join(words[: self.rng.randint(4, 10)]).rstrip(".,;:")

    def body(self, words: int) -> str:
        out, n = [], 0
        while n < words:
            s = self.rng.choice(self.pool)
            out.append(s)
            n += len(s.split())
        return " ".join(out)

    def document(self, words: int) -> str:
        # two paragraphs: the chunker splits at paragraph and sentence ends, as in real files
        half = words // 2
        return f"{self.title()}\n\n{self.body(half)}\n\n{self.body(words - half)}\n"


def write_docs(folder: Path, maker: TextMaker, n: int, words: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"doc{i:06d}.txt"
        p.write_text(maker.document(words), encoding="utf-8")
        paths.append(p)
    return paths


def perturbed(pool: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """Unit vectors near real ones: a real chunk vector plus Gaussian noise, normalised."""
    base = pool[rng.integers(0, len(pool), n)]
    vecs = base + rng.normal(0, noise, base.shape).astype(np.float32)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


class GeneratedStore:
    """A store filled with real chunk texts and generated vectors, grown in steps."""

    def __init__(self, bot: RAG, vector_pool: np.ndarray):
        self.bot, self.pool = bot, vector_pool
        self.rng = np.random.default_rng(11)
        self.chunks = 0
        bot.store.begin_write(bot.embedder.name)
        bot.store.end_write(changed=False)

    def add(self, entries: list[CatalogEntry], chunks: list[Chunk]):
        store = self.bot.store
        store.begin_write(self.bot.embedder.name)
        for i in range(0, len(chunks), 5000):
            part = chunks[i : i + 5000]
            store.add_chunks(part, perturbed(self.pool, len(part), self.rng))
        store.commit_documents(entries)
        # chunked as the indexer would (chunk_files): the next `rag index` leaves these files alone
        s = self.bot.settings
        reading = Chunker(self.bot.embedder.tokenize, s.chunk_size, s.chunk_overlap).reading
        store.end_write(changed=True, reading=reading)
        self.chunks += len(chunks)

    def sync(self):
        self.bot.retriever.sync_lexical(force=True)


def chunk_files(bot: RAG, docs: Path, paths: list[Path]) -> Iterator[tuple[CatalogEntry, list[Chunk]]]:
    """What the indexer does to each file, minus the embedding."""
    s = bot.settings
    chunker = Chunker(bot.embedder.tokenize, s.chunk_size, s.chunk_overlap)
    for p in paths:
        doc = load_document(p, docs, 10**9)
        chunks = chunker.chunk(doc)
        yield CatalogEntry(doc.doc_id, doc.sha256, doc.title, doc.file_name, len(chunks), time.time()), chunks


# Longer documents past the file corpus: 8 chunks each keeps the catalog under ~20,000 documents at
# 100,000 chunks (Chroma 1.5.9 fails to list more than ~32,000 catalog records in one get).
SYNTH_CHUNKS_PER_DOC = 8


def synthetic_chunks(maker: TextMaker, start: int, n_docs: int, per_doc: int = SYNTH_CHUNKS_PER_DOC):
    """Documents that never touch the disk, for the sizes past the re-index corpus."""
    entries, chunks = [], []
    for i in range(start, start + n_docs):
        doc_id = f"gen/{i:07d}.txt"
        title = maker.title()
        sha = f"{i:064x}"
        cs = []
        for j in range(per_doc):
            text = maker.body(110)
            cs.append(Chunk(f"gen-{i}-{j}", doc_id, title, f"{i:07d}.txt", text, 0, len(text), sha))
        entries.append(CatalogEntry(doc_id, sha, title, f"{i:07d}.txt", per_doc, time.time()))
        chunks.extend(cs)
    return entries, chunks


# ---- documents of realistic size, for `rag bench --scale` -----------------------------------------
# 20-40 chunks a document, ~100-150 words a chunk (the chunker's 200 tokens), the last sentence of a
# chunk repeated at the start of the next when short (the chunker's 30-token overlap).
REALISTIC_CHUNKS = (20, 40)
_KINDS = ((".txt", 5), (".pdf", 3), (".md", 2))  # file types, by weight


def realistic_document(pool: list[str], i: int, reading: str, seed: int = 5) -> tuple[CatalogEntry, list[Chunk]]:
    """Document number i, the same whichever order documents are made in (its own seeded random):
    the catalog entry and chunks (ids, offsets, pages, section headings) as the indexer writes them."""
    import hashlib

    rng = random.Random(seed * 1_000_003 + i)
    kind = rng.choices([k for k, _ in _KINDS], [w for _, w in _KINDS])[0]
    title = " ".join(rng.choice(pool).split()[: rng.randint(4, 10)]).rstrip(".,;:")
    doc_id = f"synth/{i // 1000:04d}/doc{i:07d}{kind}"
    file_name = doc_id.rsplit("/", 1)[1]
    sha = hashlib.sha256(f"synthetic document {i}".encode()).hexdigest()
    chunks: list[Chunk] = []
    offset, carry = len(title) + 2, ""  # the text opens with the title line and a blank line
    heading = ""
    for n in range(rng.randint(*REALISTIC_CHUNKS)):
        sentences: list[str] = [carry] if carry else []
        words, want = sum(len(x.split()) for x in sentences), rng.randint(100, 150)
        while words < want:
            sentences.append(rng.choice(pool))
            words += len(sentences[-1].split())
        text = " ".join(sentences)
        start = offset - (len(carry) + 1 if carry else 0)
        page, location = None, ""
        if kind == ".pdf":
            page = 1 + n // 3
            location = f"p. {page}"
        elif kind == ".md":
            if n % 8 == 0:
                heading = " ".join(rng.choice(pool).split()[:5]).rstrip(".,;:")
            location = f"§ {heading[:80]}"
        chunks.append(Chunk(chunk_id(doc_id, sha, reading, n), doc_id, title, file_name, text,
                            start, start + len(text), sha, page, location))
        offset = start + len(text) + 1
        carry = sentences[-1] if len(sentences[-1].split()) <= 22 else ""
    return CatalogEntry(doc_id, sha, title, file_name, len(chunks), time.time()), chunks


def generated_vectors(anchors: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors from a seeded generator, not from the model: a random blend of two real chunk
    vectors (anchors) plus Gaussian noise, so they spread over the region real chunks occupy."""
    a = anchors[rng.integers(0, len(anchors), n)]
    b = anchors[rng.integers(0, len(anchors), n)]
    w = rng.uniform(0.3, 1.0, (n, 1)).astype(np.float32)
    vecs = w * a + (1 - w) * b + rng.normal(0, 0.04, a.shape).astype(np.float32)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
