"""Plain-text tables of eval results, for the terminal (the JSON holds everything)."""

from __future__ import annotations

from typing import Optional


def show(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def format_beir(result: dict) -> str:
    lines = [f"{result['dataset']} ({result['split']}): {result['queries']} queries, "
             f"{result['documents']} documents, {result['chunks']} chunks",
             f"{'mode':8} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8}"]
    for mode, f in result["by_mode"].items():
        lines.append(f"{mode:8} {f['ndcg@10']:8.4f} {f['recall@10']:7.4f} {f['recall@100']:7.4f} "
                     f"{f['mrr@10']:7.4f} {f['latency_ms_p50']:8.1f} {f['latency_ms_p95']:8.1f}")
    return "\n".join(lines)


def _question_lines(rows: list[dict]) -> list[str]:
    lines = [f"{'id':10} {'class':13} {'hit':>4} {'rank':>4} {'match':>5} {'refusal':>7} "
             f"{'c.prec':>6} {'c.rec':>6} {'echo':>5} {'f1':>5} {'s':>6}"]
    for r in rows:
        lines.append(f"{r['id'][:10]:10} {r['class'][:13]:13} {show(r['retrieval_hit']):>4} "
                     f"{show(r['retrieved_rank']):>4} {show(r['answer_match']):>5} "
                     f"{show(r['correct_refusal']):>7} {show(r['citation_precision']):>6} "
                     f"{show(r['citation_recall']):>6} {show(r['echo_rate']):>5} "
                     f"{show(r.get('f1')):>5} {r['seconds']:6.2f}")
    return lines


def _class_cell(figures: dict) -> str:
    m, c = figures["answer_match"], figures["correct_refusal"]
    parts = []
    if m["of"]:
        parts.append(f"match {m['count']}/{m['of']}")
    if c["of"]:
        parts.append(f"declined {c['count']}/{c['of']}")
    return ", ".join(parts)


def _class_lines(result: dict, peer: Optional[dict]) -> list[str]:
    head = f"{'class':26} {'project':28}" + (f" {peer['name']}" if peer else "")
    lines = ["by class:", head]
    for name, figures in result["by_class"].items():
        other = _class_cell(peer["by_class"][name]) if peer and name in peer["by_class"] else ""
        lines.append(f"{name[:26]:26} {_class_cell(figures):28} {other}".rstrip())
    return lines


def _overall_lines(result: dict, peer: Optional[dict]) -> list[str]:
    mine = result["overall"]
    if not peer:
        return ["overall: " + ", ".join(f"{k} {show(v)}" for k, v in mine.items())]
    theirs = peer["overall"]
    lines = [f"{'overall':26} {'project':>10} {peer['name']:>12}"]
    for key, value in mine.items():
        lines.append(f"{key:26} {show(value):>10} {show(theirs.get(key)):>12}")
    return lines


def format_qa(result: dict) -> str:
    peer = result.get("peer")
    lines = _question_lines(result["questions"])
    lines += _class_lines(result, peer)
    lines += _overall_lines(result, peer)
    lines.append(f"generator: {', '.join(result['generator'])}"
                 + (f"; peer: {peer['name']} (top {peer['top_k']}, {peer['chunks']} chunks)" if peer else ""))
    return "\n".join(lines)


def format_result(result: dict) -> str:
    return format_beir(result) if "by_mode" in result else format_qa(result)
