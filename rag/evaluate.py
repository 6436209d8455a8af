"""Measuring quality: retrieval on a BEIR data set, and answers on a question file (seedqa format).

Both go through the Python API (RAG): the BEIR corpus is written as files into a docs folder inside
the eval store and indexed by the normal incremental indexer, so what is measured is what users get.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from .api import RAG

MODES = ("hybrid", "dense", "bm25")


# ---- metrics ------------------------------------------------------------------------------------
def ndcg_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with graded relevance (gain = rel, as in trec_eval)."""
    dcg = sum(relevance.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevance: dict[str, int], k: int) -> float:
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if relevance.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    xs = sorted(values)
    if not xs:
        return 0.0
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# ---- BEIR data ----------------------------------------------------------------------------------
class EvalDataError(ValueError):
    """The eval data is missing or malformed; the message says which file and why."""


@dataclass
class BeirData:
    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: relevance}


def _read_jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EvalDataError(f"{path}:{n}: not a JSON line ({exc.msg})") from None


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
    corpus = {str(d["_id"]): (d.get("title") or "", d.get("text") or "") for d in _read_jsonl(corpus_file)}
    queries = {str(d["_id"]): d.get("text") or "" for d in _read_jsonl(queries_file)}
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if n == 1 and parts[0] == "query-id" or not line.strip():
                continue  # header
            if len(parts) < 3:
                raise EvalDataError(f"{qrels_file}:{n}: expected query-id, corpus-id, score")
            qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    qrels = {q: rels for q, rels in qrels.items() if q in queries}
    if not qrels:
        raise EvalDataError(f"{qrels_file} names no query found in {queries_file}")
    return BeirData(data_dir.resolve().name, corpus, queries, qrels)


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def doc_file_name(corpus_id: str) -> str:
    """A file name per corpus id that maps back to it (ids with odd characters get escaped)."""
    safe = _SAFE.sub(lambda m: f"~{ord(m.group(0)):04x}", corpus_id)
    return f"{safe}.txt"


def write_corpus(data: BeirData, docs_dir: Path, progress: Optional[Callable[[int, int], None]] = None) -> dict[str, str]:
    """One text file per corpus document (title as the first line); files already holding the
    same text are left alone so the incremental indexer sees them unchanged. Returns file -> id."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    total = len(data.corpus)
    for n, (cid, (title, text)) in enumerate(data.corpus.items(), start=1):
        name = doc_file_name(cid)
        wanted[name] = cid
        body = f"{title.strip()}\n\n{text.strip()}\n" if title.strip() else f"{text.strip()}\n"
        path = docs_dir / name
        data_bytes = body.encode("utf-8")
        try:
            if path.read_bytes() == data_bytes:
                continue
        except FileNotFoundError:
            pass
        path.write_bytes(data_bytes)
        if progress and n % 500 == 0:
            progress(n, total)
    for stale in docs_dir.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    return wanted


def corpus_id_of(doc_id: str) -> str:
    stem = doc_id[:-4] if doc_id.endswith(".txt") else doc_id
    return re.sub(r"~([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), stem)


# ---- rag eval beir ------------------------------------------------------------------------------
def default_eval_store(settings_store_dir: Path, data: BeirData) -> Path:
    return settings_store_dir / f"eval-{data.name}"


def retrieval_figures(runs: dict[str, list[str]], latencies: list[float], qrels: dict[str, dict[str, int]]) -> dict:
    """The metrics averaged over queries; runs: query id -> ranked corpus ids."""
    n = len(runs)

    def mean(fn) -> float:
        return round(sum(fn(runs[q], qrels[q]) for q in runs) / n, 4) if n else 0.0

    return {
        "ndcg@10": mean(lambda r, rel: ndcg_at_k(r, rel, 10)),
        "recall@10": mean(lambda r, rel: recall_at_k(r, rel, 10)),
        "recall@100": mean(lambda r, rel: recall_at_k(r, rel, 100)),
        "mrr@10": mean(lambda r, rel: mrr_at_k(r, rel, 10)),
        "latency_ms_p50": round(percentile(latencies, 50) * 1000, 2),
        "latency_ms_p95": round(percentile(latencies, 95) * 1000, 2),
        "queries": n,
    }


def eval_beir(data_dir: Path, split: str = "test", store_dir: Optional[Path] = None,
              modes: tuple[str, ...] = MODES, bot_factory: Callable[..., RAG] = RAG,
              bar: Optional[Callable] = None, index_progress=None) -> dict:
    """Index the corpus (incrementally; reused when unchanged) and score every mode on the split.
    bar(iterable, desc, total) wraps long loops with a progress bar."""
    bar = bar or (lambda it, desc, total: it)
    data = load_beir(data_dir, split)
    probe = bot_factory()
    store_dir = Path(store_dir) if store_dir else default_eval_store(probe.settings.store_dir, data)
    docs_dir = store_dir / "docs"
    write_corpus(data, docs_dir)
    bot = bot_factory(docs_dir=docs_dir, store_dir=store_dir)
    report = bot.index(progress=index_progress)
    bot.store.check_model(bot.embedder.name)

    qids = sorted(data.qrels)
    per_mode: dict[str, dict] = {}
    for mode in modes:
        runs, latencies = {}, []
        bot.retriever.rank_documents(data.queries[qids[0]], 100, mode)  # warm caches: not timed
        for qid in bar(qids, f"eval {mode}", len(qids)):
            t0 = time.perf_counter()
            ranked = bot.retriever.rank_documents(data.queries[qid], 100, mode)
            latencies.append(time.perf_counter() - t0)
            runs[qid] = [corpus_id_of(doc_id) for doc_id, _ in ranked]
        per_mode[mode] = retrieval_figures(runs, latencies, data.qrels)
    default = "hybrid" if "hybrid" in per_mode else modes[0]
    return {
        **per_mode[default],
        "mode": default,
        "by_mode": per_mode,
        "dataset": data.name,
        "split": split,
        "documents": len(bot.store.catalog()),
        "chunks": bot.store.chunk_count(),
        "index": {"added": report.added, "unchanged": report.unchanged, "embedded": report.embedded,
                  "skipped": len(report.skipped), "seconds": round(report.seconds, 1)},
        "store": str(store_dir),
        "settings": {k: getattr(bot.settings, k) for k in
                     ("chunk_size", "chunk_overlap", "fusion", "rrf_k", "dense_weight", "bm25_weight", "candidates")},
    }


# ---- rag eval qa --------------------------------------------------------------------------------
@dataclass
class QAItem:
    id: str
    question: str
    answer: list[list[str]]
    sources: list[str]
    type: str
    all_sources: bool = False

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def load_qa(path: Path) -> list[QAItem]:
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"question file not found: {path}")
    items = []
    for n, row in enumerate(_read_jsonl(path), start=1):
        try:
            items.append(QAItem(
                id=str(row.get("id", n)), question=row["question"],
                answer=[[str(s) for s in group] for group in row.get("answer", [])],
                sources=[str(s) for s in row.get("sources", [])], type=row.get("type", "single"),
                all_sources=bool(row.get("all_sources", False)),
            ))
        except (KeyError, TypeError) as exc:
            raise EvalDataError(f"{path}: question {n} is malformed ({exc})") from None
    if not items:
        raise EvalDataError(f"{path} holds no questions")
    return items


def _matched_strings(answer: str, groups: list[list[str]]) -> tuple[bool, list[str]]:
    """Whether every group is matched, and the strings that matched (case-insensitive)."""
    text = answer.lower()
    hits = [[s for s in group if s.lower() in text] for group in groups]
    return all(hits), [s for group in hits for s in group]


def score_answer(item: QAItem, answer) -> dict:
    from .citations import markers_in

    retrieved = [s.file_name for s in answer.sources]
    expected = set(item.sources)
    if not expected:
        hit = None
    elif item.all_sources:
        hit = expected <= set(retrieved)
    else:
        hit = bool(expected & set(retrieved))
    markers = markers_in(answer.answer)
    by_marker = {s.marker: s for s in answer.sources}
    valid = all(m in by_marker for m in markers)
    row = {
        "id": item.id, "type": item.type, "question": item.question, "answered": answer.answered,
        "retrieval_hit": hit,
        "retrieved_rank": next((i + 1 for i, f in enumerate(retrieved) if f in expected), None),
        "citations": sorted(set(markers)), "citation_valid": valid, "seconds": round(answer.seconds, 3),
    }
    if item.answerable:
        matched, strings = _matched_strings(answer.answer, item.answer) if answer.answered else (False, [])
        cited = [by_marker[m] for m in set(markers) if m in by_marker]
        # A citation supports the answer when its passage holds the matched answer text, or comes
        # from a file known to hold the answer.
        supported = bool(cited) and all(
            s.file_name in expected or any(t.lower() in s.text.lower() for t in strings) for s in cited
        )
        row.update(answer_match=matched, citation_support=supported if answer.answered else False,
                   correct_refusal=None)
    else:
        row.update(answer_match=None, citation_support=None,
                   correct_refusal=(not answer.answered and not markers))
    return row


def _rate(rows: list[dict], key: str) -> Optional[float]:
    vals = [r[key] for r in rows if r[key] is not None]
    return round(sum(bool(v) for v in vals) / len(vals), 4) if vals else None


def eval_qa(qa_file: Path, docs_dir: Optional[Path] = None, store_dir: Optional[Path] = None,
            generator: Optional[str] = None, bot_factory: Callable[..., RAG] = RAG,
            bar: Optional[Callable] = None, index_progress=None) -> dict:
    bar = bar or (lambda it, desc, total: it)
    items = load_qa(qa_file)
    overrides = {}
    if docs_dir:
        overrides["docs_dir"] = Path(docs_dir)
    if store_dir:
        overrides["store_dir"] = Path(store_dir)
    bot = bot_factory(**overrides)
    report = bot.index(progress=index_progress)
    rows, generators = [], set()
    for item in bar(items, "eval qa", len(items)):
        answer = bot.ask(item.question, generator=generator)
        generators.add(answer.generator)
        rows.append(score_answer(item, answer))
    seconds = [r["seconds"] for r in rows]
    overall = {
        "questions": len(rows),
        "answerable": sum(1 for i in items if i.answerable),
        "retrieval_hit": _rate(rows, "retrieval_hit"),
        "answer_match": _rate(rows, "answer_match"),
        "citation_valid": _rate(rows, "citation_valid"),
        "citation_support": _rate(rows, "citation_support"),
        "correct_refusal": _rate(rows, "correct_refusal"),
        "seconds_per_answer_mean": round(sum(seconds) / len(seconds), 3),
        "seconds_per_answer_p50": round(percentile(seconds, 50), 3),
    }
    return {"overall": overall, "questions": rows, "generator": sorted(generators),
            "documents": len(bot.store.catalog()), "index_seconds": round(report.seconds, 2)}


def format_result(result: dict) -> str:
    """A plain-text table of an eval result, for the terminal."""
    if "by_mode" in result:
        lines = [f"{result['dataset']} ({result['split']}): {result['queries']} queries, "
                 f"{result['documents']} documents, {result['chunks']} chunks",
                 f"{'mode':8} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8}"]
        for mode, f in result["by_mode"].items():
            lines.append(f"{mode:8} {f['ndcg@10']:8.4f} {f['recall@10']:7.4f} {f['recall@100']:7.4f} "
                         f"{f['mrr@10']:7.4f} {f['latency_ms_p50']:8.1f} {f['latency_ms_p95']:8.1f}")
        return "\n".join(lines)
    o = result["overall"]
    lines = [f"{'id':8} {'type':13} {'hit':>5} {'rank':>4} {'match':>5} {'cites':>5} {'support':>7} "
             f"{'refusal':>7} {'s':>6}"]

    def show(v) -> str:
        return "-" if v is None else ("yes" if v is True else "no" if v is False else str(v))

    for r in result["questions"]:
        lines.append(f"{r['id'][:8]:8} {r['type'][:13]:13} {show(r['retrieval_hit']):>5} "
                     f"{show(r['retrieved_rank']):>4} {show(r['answer_match']):>5} "
                     f"{show(r['citation_valid']):>5} {show(r['citation_support']):>7} "
                     f"{show(r['correct_refusal']):>7} {r['seconds']:6.2f}")
    lines.append("overall: " + ", ".join(f"{k} {show(v)}" for k, v in o.items()))
    lines.append(f"generator: {', '.join(result['generator'])}")
    return "\n".join(lines)
