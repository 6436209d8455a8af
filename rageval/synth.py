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
from rag.chunks import Chunker
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
