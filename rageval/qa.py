"""`rag eval qa`: answers to a question file, scored per question and summed up overall and by
class. The same scoring serves the project's pipeline and the peer (rageval.peer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Sequence

from rag.api import RAG
from rag.models import Answer, Source
from rag.text import markers_in

from .data import QAItem, load_qa
from .metrics import CITATION_COUNTS, citation_figures, exact_match, f1, gold_in, percentile, pooled_citations, rate

GOLD_DEPTHS = (5, 10)


def _matched_strings(answer: str, groups: list[list[str]]) -> tuple[bool, list[str]]:
    """Whether every group is matched, and the strings that matched (case-insensitive)."""
    text = answer.lower()
    hits = [[s for s in group if s.lower() in text] for group in groups]
    return all(hits), [s for group in hits for s in group]


def _retrieval(item: QAItem, retrieved: list[str]) -> dict:
    expected = set(item.sources)
    if not expected:
        hit = None
    elif item.all_sources:
        hit = expected <= set(retrieved)
    else:
        hit = bool(expected & set(retrieved))
    rank = next((i + 1 for i, f in enumerate(retrieved) if f in expected), None)
    return {"retrieval_hit": hit, "retrieved_rank": rank}


def _answer_figures(item: QAItem, answer: Answer, markers: list[int]) -> dict:
    if not item.answerable:
        return {"answer_match": None, "citation_support": None,
                "correct_refusal": not answer.answered and not markers}
    matched, strings = _matched_strings(answer.answer, item.answer) if answer.answered else (False, [])
    by_marker = {s.marker: s for s in answer.sources}
    cited = [by_marker[m] for m in set(markers) if m in by_marker]
    # A citation supports the answer when its passage holds the matched answer text, or comes
    # from a file known to hold the answer.
    supported = bool(cited) and all(
        s.file_name in item.sources or any(t.lower() in s.text.lower() for t in strings) for s in cited
    )
    return {"answer_match": matched, "citation_support": supported if answer.answered else False,
            "correct_refusal": None}


def gold_figures(answer: str, gold: str, passages: Optional[Sequence[Source]] = None) -> dict:
    """EM, F1 and gold-in-answer against the gold text; with passages (ranked), whether the gold
    text is in the top 5 / top 10 of them."""
    out = {"em": exact_match(answer, gold), "f1": round(f1(answer, gold), 4),
           "gold_in_answer": gold_in(answer, gold)}
    if passages is not None:
        for k in GOLD_DEPTHS:
            out[f"gold_in_top{k}"] = any(gold_in(p.text, gold) for p in passages[:k])
    return out


def score_answer(item: QAItem, answer: Answer, passages: Optional[Sequence[Source]] = None) -> dict:
    """One question's row. passages: the top 10 retrieved for the question, for gold files."""
    markers = markers_in(answer.answer)
    valid = {s.marker for s in answer.sources}
    row = {
        "id": item.id, "type": item.type, "class": item.klass, "question": item.question,
        "answer": answer.answer, "answered": answer.answered,
        **_retrieval(item, [s.file_name for s in answer.sources]),
        "citations": sorted(set(markers)), "citation_valid": all(m in valid for m in markers),
        "seconds": round(answer.seconds, 3),
        **_answer_figures(item, answer, markers),
    }
    cites = citation_figures(answer.answer, answer.sources, item.question) if answer.answered else None
    row["citation_counts"] = cites
    for key in ("citation_precision", "citation_recall", "echo_rate"):
        row[key] = cites[key] if cites else None
    if item.gold is not None:
        row.update(gold_figures(answer.answer, item.gold, passages))
    return row


# ---- summing up ----------------------------------------------------------------------------------
def _counted(rows: list[dict], key: str) -> dict:
    known = [r[key] for r in rows if r.get(key) is not None]
    return {"rate": rate(known), "count": sum(bool(v) for v in known), "of": len(known)}


def by_class(rows: list[dict]) -> dict:
    """Per class (in first-seen order): answer match among answerable questions and correct
    refusal among unanswerable ones, each as a rate with its count."""
    classes: dict[str, list[dict]] = {}
    for r in rows:
        classes.setdefault(r["class"], []).append(r)
    return {name: {"questions": len(rs), "answer_match": _counted(rs, "answer_match"),
                   "correct_refusal": _counted(rs, "correct_refusal")}
            for name, rs in classes.items()}


def _pooled_citations(rows: list[dict]) -> dict:
    """The citation rates over every answered answer's pairs and sentences pooled together."""
    counted = [r["citation_counts"] for r in rows if r.get("citation_counts")]
    return pooled_citations({k: sum(c[k] for c in counted) for k in CITATION_COUNTS})


def _gold_overall(rows: list[dict]) -> dict:
    gold_rows = [r for r in rows if "em" in r]
    if not gold_rows:
        return {}
    out = {"gold_questions": len(gold_rows), "em": rate([r["em"] for r in gold_rows]),
           "f1": round(sum(r["f1"] for r in gold_rows) / len(gold_rows), 4),
           "gold_in_answer": rate([r["gold_in_answer"] for r in gold_rows])}
    for k in GOLD_DEPTHS:
        out[f"gold_in_top{k}"] = rate([r.get(f"gold_in_top{k}") for r in gold_rows])
    return out


def summarise(rows: list[dict]) -> dict:
    seconds = [r["seconds"] for r in rows]
    cites = _pooled_citations(rows)
    return {
        "questions": len(rows),
        "answerable": sum(1 for r in rows if r["correct_refusal"] is None),
        "answered": sum(1 for r in rows if r["answered"]),
        "retrieval_hit": rate([r["retrieval_hit"] for r in rows]),
        "answer_match": rate([r["answer_match"] for r in rows]),
        "citation_valid": rate([r["citation_valid"] for r in rows]),
        "citation_support": rate([r["citation_support"] for r in rows]),
        "correct_refusal": rate([r["correct_refusal"] for r in rows]),
        "citation_precision": cites["citation_precision"],
        "citation_recall": cites["citation_recall"],
        "echo_rate": cites["echo_rate"],
        **_gold_overall(rows),
        "seconds_per_answer_mean": round(sum(seconds) / len(seconds), 3) if seconds else 0.0,
        "seconds_per_answer_p50": round(percentile(seconds, 50), 3),
    }


def scored(rows: list[dict], generators: list[str]) -> dict:
    return {"overall": summarise(rows), "by_class": by_class(rows), "questions": rows,
            "generator": generators}


# ---- the run -------------------------------------------------------------------------------------
def _make_bot(bot_factory: Callable[..., RAG], docs_dir, store_dir) -> RAG:
    overrides = {}
    if docs_dir:
        overrides["docs_dir"] = Path(docs_dir)
    if store_dir:
        overrides["store_dir"] = Path(store_dir)
    return bot_factory(**overrides)


def answer_all(bot: RAG, items: list[QAItem], generator: Optional[str], bar: Callable) -> dict:
    rows, generators = [], set()
    for item in bar(items, "eval qa", len(items)):
        answer = bot.ask(item.question, generator=generator)
        generators.add(answer.generator)
        passages = bot.retrieve(item.question, top_k=max(GOLD_DEPTHS)) if item.gold is not None else None
        rows.append(score_answer(item, answer, passages))
    return scored(rows, sorted(generators))


def eval_qa(qa_file: Path, docs_dir: Optional[Path] = None, store_dir: Optional[Path] = None,
            generator: Optional[str] = None, bot_factory: Callable[..., RAG] = RAG,
            bar: Optional[Callable] = None, index_progress=None, limit: Optional[int] = None,
            peer: Optional[str] = None, peer_llm=None, out: Optional[Path] = None) -> dict:
    """Answer every question (the first `limit`), score the answers; with peer="llamaindex" also
    run the stock LlamaIndex pipeline on the same questions and score it the same way (peer_llm
    replaces its LLM, for tests). out: the full result is written there as JSON too."""
    bar = bar or (lambda it, desc, total: it)
    items = load_qa(qa_file, limit)
    bot = _make_bot(bot_factory, docs_dir, store_dir)
    report = bot.index(progress=index_progress)
    result = answer_all(bot, items, generator, bar)
    result.update(documents=len(bot.store.catalog()), index_seconds=round(report.seconds, 2),
                  qa_file=str(qa_file))
    if peer:
        from .peer import run_peer

        result["peer"] = run_peer(peer, bot.settings, items, bar=bar, llm=peer_llm)
    if out:
        Path(out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result
