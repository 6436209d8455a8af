"""`rag eval` and `rag bench`: the metric functions by hand, the commands' JSON shapes for real."""

import json
import math
from pathlib import Path

import pytest

from rag.evaluate import corpus_id_of, doc_file_name, mrr_at_k, ndcg_at_k, percentile, recall_at_k

from .conftest import SHARED_EVAL, rag_cli

FIGURES = {"ndcg@10", "recall@10", "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p95", "queries"}


# ---- metrics on hand-made cases -----------------------------------------------------------------
def test_ndcg_binary_and_graded():
    assert ndcg_at_k(["b", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["a", "b"], {"a": 1}) == 1.0
    # graded: dcg = 1/log2(2) + 2/log2(4) = 2; ideal = 2/log2(2) + 1/log2(3)
    assert ndcg_at_k(["c", "x", "a"], {"a": 2, "c": 1}) == pytest.approx(2 / (2 + 1 / math.log2(3)))
    # only the top k count, and the ideal is cut at k too
    assert ndcg_at_k(["x", "a"], {"a": 1}, k=1) == 0.0
    assert ndcg_at_k(["a"], {"a": 1, "b": 1, "c": 1}, k=1) == 1.0
    assert ndcg_at_k(["a"], {}) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}) == 0.0


def test_recall_and_mrr():
    rel = {"a": 1, "b": 1, "z": 0}
    ranked = ["x", "a", "y", "b"]
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 2) == 0.5
    assert recall_at_k(ranked, rel, 4) == 1.0
    assert recall_at_k(["z"], rel, 10) == 0.0  # relevance 0 is not relevant
    assert mrr_at_k(ranked, rel) == 0.5
    assert mrr_at_k(ranked, rel, k=1) == 0.0
    assert mrr_at_k(["z", "y", "b"], rel) == pytest.approx(1 / 3)


def test_percentile_interpolates():
    assert percentile([3, 1, 2], 50) == 2
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert percentile([7], 95) == 7


def test_corpus_ids_round_trip_through_file_names():
    for cid in ["4983", "doc/1 x", "a~b", "ünï"]:
        name = doc_file_name(cid)
        assert "/" not in name and " " not in name
        assert corpus_id_of(name) == cid


# ---- rag eval beir ------------------------------------------------------------------------------
TINY_CORPUS = {
    "d1": ("Honey bees", "Honey bees communicate the location of flowers with a waggle dance inside the hive."),
    "d2": ("Volcanoes", "Basaltic lava from shield volcanoes flows far because it has low viscosity."),
    "d3": ("Penguins", "Emperor penguins huddle together to survive the Antarctic winter storms."),
    "d4": ("Rust language", "The Rust borrow checker prevents data races at compile time."),
    "d/5 odd": ("Sourdough", "A sourdough starter is a culture of wild yeast and lactic acid bacteria."),
    "d6": ("Tides", "Ocean tides are caused mainly by the gravitational pull of the Moon. " * 30),
}
TINY_QUERIES = {
    "q1": ("How do bees tell each other where flowers are?", {"d1": 1}),
    "q2": ("Why does basalt lava travel long distances?", {"d2": 1}),
    "q3": ("What keeps emperor penguins warm in winter?", {"d3": 1}),
    "q4": ("What stops data races in Rust programs?", {"d4": 1}),
    "q5": ("What microbes live in a sourdough starter?", {"d/5 odd": 1}),
    "q6": ("What causes the tides of the ocean?", {"d6": 1}),
}


def write_beir(root: Path, split: str = "test") -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for cid, (title, text) in TINY_CORPUS.items():
            fh.write(json.dumps({"_id": cid, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for qid, (text, _) in TINY_QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        fh.write(json.dumps({"_id": "unjudged", "text": "not in the qrels"}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{qid}\t{cid}\t{score}" for qid, (_, rels) in TINY_QUERIES.items() for cid, score in rels.items()
    ]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow
def test_eval_beir_json_on_a_tiny_dataset(tmp_path):
    data = write_beir(tmp_path / "tiny")
    store = tmp_path / "evalstore"
    r = rag_cli("eval", "beir", "--data", str(data), "--store", str(store), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) >= FIGURES | {"by_mode"}
    assert set(out["by_mode"]) == {"dense", "bm25", "hybrid"}
    assert out["queries"] == len(TINY_QUERIES)
    for figures in [out, *out["by_mode"].values()]:
        assert set(figures) >= FIGURES
        for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
            assert 0.0 <= figures[key] <= 1.0
        assert figures["recall@10"] <= figures["recall@100"]
        assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p95"]
    # six unrelated topics: every mode should find each query's document near the top
    assert all(f["recall@10"] == 1.0 and f["mrr@10"] >= 0.8 for f in out["by_mode"].values())
    assert out["ndcg@10"] == out["by_mode"]["hybrid"]["ndcg@10"]
    assert out["documents"] == len(TINY_CORPUS) and out["chunks"] > len(TINY_CORPUS)  # d6 is chunked

    # the eval store is reused: a second run embeds nothing
    r = rag_cli("eval", "beir", "--data", str(data), "--store", str(store), "--json")
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["index"]["embedded"] == 0 and again["index"]["unchanged"] == len(TINY_CORPUS)
    assert again["by_mode"]["hybrid"]["ndcg@10"] == out["by_mode"]["hybrid"]["ndcg@10"]


def test_eval_beir_missing_split_is_a_clear_error(tmp_path):
    data = write_beir(tmp_path / "tiny", split="train")
    r = rag_cli("eval", "beir", "--data", str(data), "--store", str(tmp_path / "s"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "test" in r.stderr and "--split train" in r.stderr
    r = rag_cli("eval", "beir", "--data", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "corpus.jsonl" in r.stderr and "Traceback" not in r.stderr


# ---- rag eval qa --------------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_qa_json_on_the_seed_sample(docs_dir, tmp_path):
    qa = SHARED_EVAL / "seedqa-sample.jsonl"
    r = rag_cli("eval", "qa", "--qa", str(qa), "--docs", str(docs_dir), "--store", str(tmp_path / "store"),
                "--generator", "extractive", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    rows = [json.loads(l) for l in qa.read_text().splitlines() if l.strip()]
    assert set(out) >= {"overall", "questions", "generator"} and out["generator"] == ["extractive"]
    assert set(out["overall"]) >= {"questions", "retrieval_hit", "answer_match", "citation_valid",
                                   "citation_support", "correct_refusal", "seconds_per_answer_mean"}
    assert out["overall"]["questions"] == len(rows) == len(out["questions"])
    by_id = {q["id"]: q for q in out["questions"]}
    for row in rows:
        q = by_id[row["id"]]
        assert set(q) >= {"retrieval_hit", "answer_match", "citation_valid", "citation_support",
                          "correct_refusal", "seconds", "answered"}
        assert q["citation_valid"] is True and q["seconds"] > 0
        if row["type"] == "unanswerable":
            assert q["retrieval_hit"] is None and q["answer_match"] is None
            assert isinstance(q["correct_refusal"], bool)
        else:
            assert q["retrieval_hit"] is True, row["id"]  # every answerable question's file in the top k
            assert q["retrieved_rank"] <= 5 and q["correct_refusal"] is None
    assert out["overall"]["retrieval_hit"] == 1.0


def test_eval_qa_missing_file_is_a_clear_error(tmp_path):
    r = rag_cli("eval", "qa", "--qa", str(tmp_path / "none.jsonl"), "--store", str(tmp_path / "s"))
    assert r.returncode == 1 and "none.jsonl" in r.stderr and "Traceback" not in r.stderr


# ---- rag bench ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_quick_json_and_plots(tmp_path):
    out_dir = tmp_path / "bench"
    r = rag_cli("bench", "--quick", "--out", str(out_dir), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    keys = {"embed_chunks_per_s", "index_chunks_per_s", "index_vs_embed", "reindex_unchanged_s",
            "query_ms_p50", "query_ms_p95", "extractive_answer_ms_p50", "by_size", "peak_rss_mb", "plots"}
    assert set(out) >= keys
    assert out["embed_chunks_per_s"] > 0 and out["index_chunks_per_s"] > 0
    assert out["index_vs_embed"] == pytest.approx(out["index_chunks_per_s"] / out["embed_chunks_per_s"], rel=0.01)
    assert out["reindex_documents"] > 0 and out["reindex_unchanged_s"] > 0
    sizes = out["by_size"]
    assert len(sizes) >= 2 and all(set(s) == {"chunks", "query_ms_p50", "query_ms_p95"} for s in sizes)
    assert [s["chunks"] for s in sizes] == sorted(s["chunks"] for s in sizes)
    assert all(0 < s["query_ms_p50"] <= s["query_ms_p95"] for s in sizes)
    assert out["peak_rss_mb"] > 0
    names = {Path(p).name for p in out["plots"]}
    assert names == {"latency_vs_size.png", "index_breakdown.png"}
    for p in out["plots"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out_dir / "bench.json").read_text())["by_size"] == sizes
    assert not (out_dir / "work").exists()  # scratch stores are cleaned up
