"""Reading eval data: BEIR data sets and question files (seedqa format, optionally with `class`
and, for news quizzes, `gold`). Errors name the file and the line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from rag.errors import EvalDataError


def read_jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EvalDataError(f"{path}:{n}: not a JSON line ({exc.msg})") from None


# ---- BEIR ----------------------------------------------------------------------------------------
@dataclass
class BeirData:
    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: relevance}


def _read_qrels(qrels_file: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if n == 1 and parts[0] == "query-id" or not line.strip():
                continue  # header
            if len(parts) < 3:
                raise EvalDataError(f"{qrels_file}:{n}: expected query-id, corpus-id, score")
            qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    return qrels


def load_beir(data_dir: Path, split: str = "test") -> BeirData:
    data_dir = Path(data_dir)
    corpus_file, queries_file = data_dir / "corpus.jsonl", data_dir / "queries.jsonl"
    qrels_file = data_dir / "qrels" / f"{split}.tsv"
    for f in (corpus_file, queries_file):
        if not f.is_file():
            raise EvalDataError(f"not a BEIR data set: {f} is missing")
    if not qrels_file.is_file():
        have = sorted(p.stem for p in (data_dir / "qrels").glob("*.tsv"))
        raise EvalDataError(
            f"no qrels for split {split!r}: {qrels_file} is missing"
            + (f"; available splits: {', '.join(have)} (use --split {have[0]})" if have else "")
        )
    corpus = {str(d["_id"]): (d.get("title") or "", d.get("text") or "") for d in read_jsonl(corpus_file)}
    queries = {str(d["_id"]): d.get("text") or "" for d in read_jsonl(queries_file)}
    qrels = {q: rels for q, rels in _read_qrels(qrels_file).items() if q in queries}
    if not qrels:
        raise EvalDataError(f"{qrels_file} names no query found in {queries_file}")
    return BeirData(data_dir.resolve().name, corpus, queries, qrels)


# ---- question files ------------------------------------------------------------------------------
@dataclass
class QAItem:
    id: str
    question: str
    answer: list[list[str]]
    sources: list[str]
    type: str
    all_sources: bool = False
    klass: str = ""  # the file's `class` (fact, list, ...); the type when the file has none
    gold: Optional[str] = None  # the correct choice's text (news quizzes): EM/F1 are scored against it

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def _item(row: dict, n: int) -> QAItem:
    kind = row.get("type", "single")
    return QAItem(
        id=str(row.get("id", n)), question=row["question"],
        answer=[[str(s) for s in group] for group in row.get("answer", [])],
        sources=[str(s) for s in row.get("sources", [])], type=kind,
        all_sources=bool(row.get("all_sources", False)), klass=str(row.get("class") or kind),
        gold=str(row["gold"]) if row.get("gold") is not None else None,
    )


def load_qa(path: Path, limit: Optional[int] = None) -> list[QAItem]:
    """The questions of a seedqa-format file; the first `limit` only when given."""
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"question file not found: {path}")
    items = []
    for n, row in enumerate(read_jsonl(path), start=1):
        try:
            items.append(_item(row, n))
        except (KeyError, TypeError) as exc:
            raise EvalDataError(f"{path}: question {n} is malformed ({exc})") from None
    if not items:
        raise EvalDataError(f"{path} holds no questions")
    return items[:limit] if limit is not None else items
