"""Helpers shared by the robustness tests: the store's consistency invariants, a `chroma run`
server, a slow-to-index corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rageval.processes import free_port, stop_process, wait_heartbeat

CHROMA = str(Path(sys.executable).with_name("chroma"))
# scripts/test.sh starts one `chroma run` for the whole suite and names its port here. Read now:
# the autouse clean_env fixture removes RAG_* variables inside tests.
SUITE_CHROMA_PORT = os.environ.get("RAG_TEST_CHROMA_PORT")


def assert_consistent(bot):
    """Catalog and Chroma agree: every committed document has exactly its chunks, no chunk
    belongs to an uncommitted version, the last run finished, BM25 holds the committed chunks."""
    store = bot.store
    catalog = store.catalog(fresh=True)
    per_doc: Counter = Counter()
    orphans, committed_ids = [], set()
    for cid, meta, _ in store.iter_chunk_metadata():
        entry = catalog.get(meta["doc_id"])
        if entry is not None and entry.sha256 == meta["doc_sha256"]:
            per_doc[meta["doc_id"]] += 1
            committed_ids.add(cid)
        else:
            orphans.append((meta["doc_id"], cid))
    assert orphans == [], f"chunks of uncommitted versions: {orphans[:5]}"
    assert {d: e.chunks for d, e in catalog.items()} == dict(per_doc)
    assert not store.store_record().get("dirty"), "the last indexing run did not finish"
    bot.retriever.sync_lexical()
    lexical = bot.retriever.lexical
    assert lexical.version == store.version()
    assert len(lexical.ids) == len(set(lexical.ids)) == len(committed_ids)
    assert set(lexical.ids) == committed_ids


class ChromaServer:
    """A real `chroma run` subprocess on loopback that can be stopped and started again."""

    def __init__(self, path: Path, port: int | None = None):
        self.path, self.port = path, port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ChromaServer":
        self.proc = subprocess.Popen(
            [CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_heartbeat(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 10)
        self.proc = None


def write_corpus(docs: Path, n: int, words: int = 120, tag: str = "") -> list[Path]:
    """n small documents with distinct, searchable content (one or two chunks each)."""
    docs.mkdir(parents=True, exist_ok=True)
    topics = ["reservoir", "glacier", "lighthouse", "orchard", "observatory", "tramway", "vineyard",
              "foundry", "archive", "harbour", "quarry", "aqueduct"]
    paths = []
    for i in range(n):
        topic = topics[i % len(topics)]
        sentences = [
            f"Report {i}{tag} describes the {topic} number {i} and its keeper, warden{i}{tag}.",
            f"The {topic} {i} was inspected in spring and the inspector wrote notes about it.",
        ]
        body = " ".join(sentences * max(1, words // 30))
        path = docs / f"doc{i:04d}.txt"
        path.write_text(f"Report {i}{tag}: the {topic}\n\n{body}\n")
        paths.append(path)
    return paths


def subprocess_env(**extra: str) -> dict:
    from rag import offline

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    env.update(offline.OFFLINE_ENV)
    env.update(extra)
    return env
