"""`rag eval` and `rag bench` (the rageval package): the metric functions by hand, the commands'
JSON shapes for real, and the LlamaIndex peer end to end with a mock LLM."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rag import RAG
from rag.models import Answer, Source
from rageval.beir import corpus_id_of, doc_file_name
from rageval.data import QAItem, load_qa
from rageval.metrics import (
    answer_text,
    citation_figures,
    exact_match,
    f1,
    gold_in,
    mrr_at_k,
    ndcg_at_k,
    normalize,
    percentile,
    recall_at_k,
)
from rageval.qa import by_class, gold_figures, score_answer, summarise

from .conftest import ROOT, SHARED_EVAL, rag_cli

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


# ---- answers against a gold text (SQuAD-style) ---------------------------------------------------
def test_normalize_drops_case_punctuation_and_articles():
    assert normalize("An Apple, the pear & a plum!") == "apple pear plum"
    assert normalize("  The  U.S.-based   firm ") == "usbased firm"  # as the SQuAD script does
    assert normalize("Theatre") == "theatre"  # an article inside a word stays


def test_answer_text_strips_markers_and_the_extractive_lead_in():
    assert answer_text("From the documents: The Buffalo Bills [1].") == "The Buffalo Bills."
    assert answer_text("Bills [1, 2] and Jets [3].") == "Bills and Jets."


def test_exact_match_f1_and_gold_in_answer():
    assert exact_match("From the documents: The Buffalo Bills [1].", "Buffalo Bills")
    assert not exact_match("The Buffalo Bills won [1].", "Buffalo Bills")
    # pred buffalo bills won, gold buffalo bills: precision 2/3, recall 1
    assert f1("The Buffalo Bills won [1].", "the Buffalo Bills") == pytest.approx(0.8)
    assert f1("Pittsburgh Steelers", "Buffalo Bills") == 0.0
    assert f1("bills bills", "bills") == pytest.approx(2 * 0.5 * 1 / 1.5)  # repeated tokens count once
    assert gold_in("He plays for the Buffalo Bills, in New York [2].", "Buffalo Bills")
    assert not gold_in("He plays in Buffalo.", "Buffalo Bills")
    assert not gold_in("anything", "")


def _src(marker: int, text: str, file_name: str = "") -> Source:
    return Source(marker=marker, doc_id=file_name or f"d{marker}.txt", file_name=file_name or f"d{marker}.txt",
                  title="t", text=text, start=0, end=len(text), score=1.0)


def test_gold_in_the_top_passages_counts_rank():
    passages = [_src(i, f"passage {i} about the weather") for i in range(1, 11)]
    passages[6] = _src(7, "The Buffalo Bills played on Monday.")
    figures = gold_figures("I do not know", "Buffalo Bills", passages)
    assert figures == {"em": False, "f1": 0.0, "gold_in_answer": False,
                       "gold_in_top5": False, "gold_in_top10": True}
    assert "gold_in_top5" not in gold_figures("Buffalo Bills", "Buffalo Bills")  # no passages, no depths


# ---- citations on a hand-made answer ------------------------------------------------------------
ACME = [_src(1, "Acme Corp is based in Basel, Switzerland. It was founded in 1990 by Lena Vogt."),
        _src(2, "Emperor penguins huddle together to survive the Antarctic winter.")]
ACME_Q = "Where is Acme Corp based?"


def test_citation_precision_recall_and_echo_rate():
    answer = ("Acme Corp is based in Basel [1]. Acme Corp was founded by Lena Vogt [2]. "
              "Acme Corp is based [1]. It also sells drones to farmers.")
    f = citation_figures(answer, ACME, ACME_Q)
    # pairs: (Basel, 1) supported; (Lena Vogt, 2) cites the penguins; the echo's (1) adds nothing
    assert (f["pairs"], f["supported_pairs"]) == (3, 1) and f["citation_precision"] == pytest.approx(0.3333)
    # sentences: 4, one echo; of the 3 that add something, 2 carry a marker
    assert (f["sentences"], f["echo_sentences"], f["content_sentences"], f["cited_content_sentences"]) == (4, 1, 3, 2)
    assert f["citation_recall"] == pytest.approx(0.6667) and f["echo_rate"] == 0.25


def test_citation_pairs_split_lists_and_unknown_markers():
    f = citation_figures("From the documents: Acme Corp is based in Basel, Switzerland [1, 2]. "
                         "It was founded in 1990 [9].", ACME, ACME_Q)
    assert (f["pairs"], f["supported_pairs"]) == (3, 1)  # [1, 2] is two pairs; [9] has no source
    assert f["citation_recall"] == 1.0 and f["echo_rate"] == 0.0
    assert citation_figures("No markers here at all, about Basel.", ACME, ACME_Q)["citation_precision"] is None


def test_a_verdict_is_scored_on_the_statement_it_judges():
    q = "Acme Corp is based in Basel. True or false?"
    f = citation_figures("True [1]. From the documents: “Acme Corp is based in Basel, Switzerland.” [1]", ACME, q)
    assert (f["pairs"], f["supported_pairs"], f["echo_sentences"]) == (2, 2, 0)
    assert citation_figures("False [1].", ACME, q)["supported_pairs"] == 0  # the passage says it is true
    assert citation_figures("True [2].", ACME, q)["supported_pairs"] == 0  # the penguins say nothing of it


def test_score_answer_reports_citations_only_for_answered_answers():
    item = QAItem("q1", ACME_Q, [["Basel"]], ["d1.txt"], "single", klass="fact", gold="Basel")
    answered = Answer(ACME_Q, "Acme Corp is based in Basel [1].", True, "extractive", ACME, 0.5)
    row = score_answer(item, answered, ACME)
    assert row["class"] == "fact" and row["answer_match"] is True and row["retrieval_hit"] is True
    assert row["citation_precision"] == 1.0 and row["citation_recall"] == 1.0 and row["echo_rate"] == 0.0
    assert row["em"] is False and row["gold_in_answer"] is True and row["gold_in_top5"] is True
    declined = Answer(ACME_Q, "The documents do not contain the answer to this question.", False, "local", ACME)
    row = score_answer(item, declined)
    assert row["citation_precision"] is None and row["citation_recall"] is None and row["echo_rate"] is None
    assert row["answer_match"] is False and row["f1"] == 0.0


# ---- summing up ----------------------------------------------------------------------------------
def _row(klass: str, match=None, refusal=None, answered=True, counts=None) -> dict:
    return {"class": klass, "answer_match": match, "correct_refusal": refusal, "answered": answered,
            "retrieval_hit": None, "citation_valid": True, "citation_support": None, "seconds": 1.0,
            "citation_counts": counts}


def test_by_class_counts_matches_and_refusals():
    rows = [_row("fact", True), _row("fact", False), _row("fact", True),
            _row("near-miss unanswerable", refusal=True), _row("near-miss unanswerable", refusal=False),
            _row("list", False)]
    classes = by_class(rows)
    assert list(classes) == ["fact", "near-miss unanswerable", "list"]
    assert classes["fact"]["answer_match"] == {"rate": 0.6667, "count": 2, "of": 3}
    assert classes["fact"]["correct_refusal"] == {"rate": None, "count": 0, "of": 0}
    assert classes["near-miss unanswerable"]["correct_refusal"] == {"rate": 0.5, "count": 1, "of": 2}
    assert classes["list"]["answer_match"]["rate"] == 0.0


def test_overall_pools_citation_counts_over_answers():
    a = {"pairs": 3, "supported_pairs": 3, "sentences": 2, "echo_sentences": 0, "content_sentences": 2,
         "cited_content_sentences": 2}
    b = {"pairs": 1, "supported_pairs": 0, "sentences": 2, "echo_sentences": 1, "content_sentences": 1,
         "cited_content_sentences": 0}
    overall = summarise([_row("x", True, counts=a), _row("x", False, counts=b), _row("x", False, answered=False)])
    # pooled, not a mean of per-answer rates (which would give 0.5 precision)
    assert overall["citation_precision"] == 0.75
    assert overall["citation_recall"] == pytest.approx(0.6667) and overall["echo_rate"] == 0.25
    assert overall["answered"] == 2 and overall["answer_match"] == pytest.approx(0.3333)
    assert "em" not in overall  # no gold rows


def test_load_qa_reads_class_gold_and_limit(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "question": "Q1?", "answer": [["x"]], "type": "single", "class": "fact"},
        {"id": "b", "question": "Q2?", "answer": [], "type": "unanswerable"},
        {"id": "c", "question": "Q3?", "answer": [["Bills"]], "gold": "Buffalo Bills"},
    ]) + "\n")
    items = load_qa(f)
    assert [i.klass for i in items] == ["fact", "unanswerable", "single"]  # falls back to the type
    assert [i.gold for i in items] == [None, None, "Buffalo Bills"]
    assert [i.id for i in load_qa(f, limit=2)] == ["a", "b"]


def test_rag_never_imports_rageval_at_import_time():
    code = ("import sys, rag, rag.api, rag.cli, rag.citations, rag.retrieval\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rageval'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_eval_qa_options_parse():
    from rag.cli import build_parser

    args = build_parser().parse_args(["eval", "qa", "--qa", "q.jsonl", "--limit", "8", "--out", "r.json",
                                      "--peer", "llamaindex"])
    assert (args.limit, args.out, args.peer) == (8, "r.json", "llamaindex")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "qa", "--qa", "q.jsonl", "--peer", "langchain"])


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
    rows = [json.loads(line) for line in qa.read_text().splitlines() if line.strip()]
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
    assert set(out["overall"]) >= {"citation_precision", "citation_recall", "echo_rate"}
    assert sum(c["questions"] for c in out["by_class"].values()) == len(rows)


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


@pytest.mark.slow
def test_bench_scale_reports_every_figure_per_size(tmp_path):
    """`rag bench --scale` at a tiny scale: each size has its build, disk, the embedded figures and
    the `chroma run` server's beside them; the store is grown, not rebuilt, and cleaned up after."""
    out_dir = tmp_path / "scale"
    r = rag_cli("bench", "--scale", "400,1200", "--queries", "5", "--out", str(out_dir), "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "generated" in out["vectors"] and out["targets_at_chunks"] == out["by_size"][-1]["chunks"]
    assert set(out["targets_met"]) == {"query_ms_p50", "query_ms_p95", "peak_rss_mb"}
    sizes = out["by_size"]
    assert [s["chunks"] >= want for s, want in zip(sizes, (400, 1200))] == [True, True]
    assert sizes[1]["build"]["documents_added"] < sizes[1]["documents"]  # grown from the first store
    per_run = {"query_ms_p50", "query_ms_p95", "first_query_ms", "peak_rss_mb", "catalog_documents",
               "stage_ms_mean", "bm25"}
    for s in sizes:
        assert 20 <= s["chunks"] / s["documents"] <= 40  # documents of realistic size
        assert s["chroma_disk_mb"] > 0 and s["build"]["seconds"] >= 0 and s["build"]["peak_rss_mb"] > 0
        assert {"load_avg_start", "load_avg_end"} <= set(s)
        for mode in ("embedded", "server"):
            m = s[mode]
            assert set(m) >= per_run and m["catalog_documents"] == s["documents"]
            assert 0 < m["query_ms_p50"] <= m["query_ms_p95"]
            assert set(m["bm25"]) >= {"build_s", "rss_held_mb", "peak_rss_during_build_mb", "disk_mb", "load_s"}
        assert s["server"]["server_peak_rss_mb"] > 0
    assert [Path(p).name for p in out["plots"]] == ["scale_vs_chunks.png"]
    assert Path(out["plots"][0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out_dir / "scale.json").read_text())["by_size"] == sizes
    assert not (out_dir / "scale_work").exists()


# ---- the peer: stock LlamaIndex, scored the same way -------------------------------------------
PEER_DOCS = {
    "zorblat.txt": "The Zorblat Festival\n\nThe Zorblat festival is held every spring in the town of Quenville. "
                   "It was founded in 1987 by the glassblower Mira Tansel, who wanted to show local crafts.\n",
    "kelp.txt": "Giant Kelp\n\nGiant kelp forests grow along cold, nutrient-rich coasts. Sea otters living in "
                "them eat sea urchins, which would otherwise graze the kelp down to bare rock.\n",
}
PEER_QA = [
    {"id": "p1", "question": "Who founded the Zorblat festival?", "answer": [["Mira Tansel"]],
     "sources": ["zorblat.txt"], "type": "single", "class": "fact", "gold": "Mira Tansel"},
    {"id": "p2", "question": "What is the population of Mars City?", "answer": [], "sources": [],
     "type": "unanswerable", "class": "off-topic unanswerable"},
    {"id": "p3", "question": "What do sea otters eat?", "answer": [["urchins"]], "sources": ["kelp.txt"],
     "type": "single", "class": "fact"},
]


@pytest.mark.slow
def test_eval_qa_with_the_llamaindex_peer_and_a_mock_llm(tmp_path):
    from llama_index.core import Settings
    from llama_index.core.llms import MockLLM

    from rageval.qa import eval_qa

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PEER_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in PEER_QA))
    out = tmp_path / "result.json"
    result = eval_qa(qa, docs_dir=docs, store_dir=tmp_path / "store", generator="extractive", limit=2,
                     peer="llamaindex", peer_llm=MockLLM(), out=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result, ensure_ascii=False))
    assert [r["id"] for r in result["questions"]] == ["p1", "p2"]  # --limit 2
    # the peer embeds with the very model the project's store was built with
    project_store = RAG(docs_dir=docs, store_dir=tmp_path / "store").store.store_record()["embed_model"]
    assert isinstance(Settings.llm, MockLLM) and Settings.embed_model.model_name == project_store
    peer = result["peer"]
    assert peer["name"] == "llamaindex" and peer["documents"] == 2 and peer["chunks"] == 2
    assert [r["id"] for r in peer["questions"]] == ["p1", "p2"]
    p1, p2 = peer["questions"]
    # MockLLM answers with the prompt it was given: the retrieved passages, so the gold is in it
    assert p1["retrieved_rank"] == 1 and p1["answer_match"] is True and p1["gold_in_answer"] is True
    assert p1["gold_in_top5"] is True and p1["em"] is False
    assert p1["citation_recall"] == 0.0  # the stock prompt asks for no citations
    assert p2["answered"] is True and p2["correct_refusal"] is False  # it never declines
    assert peer["by_class"]["fact"]["answer_match"] == {"rate": 1.0, "count": 1, "of": 1}
    assert result["by_class"]["fact"]["answer_match"]["of"] == 1 and "gold_in_top10" in result["overall"]


def test_a_peer_timeout_is_a_failed_answer_not_a_crash():
    from rag.errors import GeneratorError
    from rageval.peer import LlamaIndexPeer

    class SilentEngine:
        def query(self, question):
            raise GeneratorError("the local model produced nothing for 300 s (RAG_LLM_TIMEOUT)")

    peer = LlamaIndexPeer.__new__(LlamaIndexPeer)  # no index: only the answer path is under test
    peer.engine = SilentEngine()
    answer = peer.ask("Who founded the Zorblat festival?")
    assert answer.answered is False and answer.answer == "" and "300 s" in answer.fallback_reason
