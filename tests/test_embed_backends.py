"""RAG_EMBED_BACKEND: the bundled MiniLM on torch, ONNX Runtime, or ONNX Runtime with int8 weights.
The ONNX files are exported from the bundled weights into a cache folder (offline: the socket guard
of conftest fails any download), made once and reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Settings, StoreError
from rag.embeddings import bundled_model_path, get_embedder
from rag.errors import EmbedderError
from rag.onnx_embedding import exported_model

SENTENCES = [
    "The cat sat on the mat.",
    "What was Nvidia's closing share price last Friday?",
    "Chinese universities are expanding programmes to train more specialists in artificial intelligence.",
    "Vitamin D supplementation does not reduce the risk of fractures in older adults.",
    "hello",
]

DOCS = {
    "volcano.txt": "Mount Etna erupted on Tuesday, sending a column of ash four kilometres into the sky above "
                   "Sicily. Catania airport closed for the night while lava flowed down the eastern flank.",
    "bakery.txt": "The village bakery on Mill Street sells sourdough loaves baked in a wood-fired oven. The bakery "
                  "opens at 6:30 every morning and closes when the bread runs out, usually before noon.",
    "chess.txt": "The world chess championship match went to tie-breaks after fourteen classical games ended "
                 "level. The challenger won the rapid games and took the title.",
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embed-cache")


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    return docs


def _embedder(backend: str, cache: Path):
    return get_embedder(Settings(embed_backend=backend, embed_cache_dir=cache))


@pytest.fixture(scope="module")
def torch_vectors():
    return get_embedder(Settings(embed_backend="torch")).embed(SENTENCES)


@pytest.mark.parametrize("backend, floor", [("onnx", 0.9999), ("onnx-int8", 0.98)])
def test_each_onnx_backend_loads_offline_and_gives_torchs_vectors(backend, floor, cache_dir, torch_vectors):
    emb = _embedder(backend, cache_dir)
    vecs = emb.embed(SENTENCES)
    assert vecs.shape == torch_vectors.shape and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cosines = (vecs * torch_vectors).sum(axis=1)
    assert cosines.min() >= floor, cosines
    # the order of the results is the order of the texts, whatever order they were batched in
    assert np.allclose(emb.embed(SENTENCES[::-1])[::-1], vecs, atol=1e-5)
    # chunk sizes are counted with the same tokenizer whatever runs the model
    torch_tokens = get_embedder(Settings(embed_backend="torch")).tokenize(SENTENCES[2])
    assert emb.tokenize(SENTENCES[2]) == torch_tokens
    assert emb.embed([]).shape == (0, 384)


def test_exports_are_made_once_and_reused(cache_dir):
    model = Path(get_embedder(Settings(embed_backend="onnx", embed_cache_dir=cache_dir)).model_file)
    files = sorted(p.name for p in cache_dir.iterdir())
    assert files == sorted(p.name for p in cache_dir.glob("all-MiniLM-L6-v2-onnx*.onnx")), files
    stamp = model.stat().st_mtime_ns
    assert exported_model(Path(bundled_model_path()), "onnx", cache_dir, "all-MiniLM-L6-v2") == model
    assert model.stat().st_mtime_ns == stamp  # reused, not exported again
    int8 = exported_model(Path(bundled_model_path()), "onnx-int8", cache_dir, "all-MiniLM-L6-v2")
    assert int8 != model and int8.stat().st_size < model.stat().st_size * 0.8  # int8 weights
    assert not list(cache_dir.glob("*.part")) and not list(cache_dir.glob("*.raw"))


def test_an_unwritable_cache_folder_says_which_setting_to_change(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(EmbedderError, match="RAG_EMBED_CACHE_DIR"):
        _embedder("onnx", blocker / "cache")


def test_torch_and_onnx_share_a_store_but_int8_keeps_its_own(tmp_path, cache_dir):
    docs = _docs(tmp_path)
    common = {"docs_dir": docs, "embed_cache_dir": cache_dir, "generator": "extractive"}
    int8 = RAG(store_dir=tmp_path / "int8", embed_backend="onnx-int8", **common)
    assert int8.index().added == 3
    assert int8.store.store_record()["embed_model"] == "all-MiniLM-L6-v2+onnx-int8"
    for backend in ("torch", "onnx"):
        other = RAG(store_dir=tmp_path / "int8", embed_backend=backend, **common)
        with pytest.raises(StoreError) as refused:
            other.retrieve("When did Etna erupt?")
        message = str(refused.value)
        assert "all-MiniLM-L6-v2+onnx-int8" in message and "RAG_EMBED_BACKEND=onnx-int8" in message
        with pytest.raises(StoreError, match="RAG_EMBED_BACKEND=onnx-int8"):
            other.index()
    # the other way round: an int8 run refuses a store built by torch or onnx, and names their settings
    onnx = RAG(store_dir=tmp_path / "fp", embed_backend="onnx", **common)
    assert onnx.index().added == 3
    with pytest.raises(StoreError, match="RAG_EMBED_BACKEND=torch"):
        RAG(store_dir=tmp_path / "fp", embed_backend="onnx-int8", **common).index()
    # torch reads the onnx store as its own: nothing to re-embed, and the same answer on top
    torch_bot = RAG(store_dir=tmp_path / "fp", embed_backend="torch", **common)
    report = torch_bot.index()
    assert (report.unchanged, report.embedded) == (3, 0)
    assert torch_bot.retrieve("Which airport closed because of the eruption?")[0].doc_id == "volcano.txt"


def test_auto_builds_new_stores_in_int8_and_reads_older_stores_with_their_own_vectors(tmp_path, cache_dir):
    docs = _docs(tmp_path)
    common = {"docs_dir": docs, "embed_cache_dir": cache_dir, "generator": "extractive"}
    assert Settings().embed_backend == "auto"
    new = RAG(store_dir=tmp_path / "new", **common)
    assert new.index().added == 3
    assert new.store.store_record()["embed_model"] == "all-MiniLM-L6-v2+onnx-int8"
    # a store torch built before auto was the default keeps working: no refusal, nothing re-embedded
    RAG(store_dir=tmp_path / "old", embed_backend="torch", **common).index()
    old = RAG(store_dir=tmp_path / "old", **common)
    assert old.embedder.name == "all-MiniLM-L6-v2"
    report = old.index()
    assert (report.unchanged, report.embedded) == (3, 0)
    assert old.retrieve("Which airport closed because of the eruption?")[0].doc_id == "volcano.txt"


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_index_and_retrieve_end_to_end_on_onnx(backend, tmp_path, cache_dir):
    docs = _docs(tmp_path)
    bot = RAG(docs_dir=docs, store_dir=tmp_path / "store", embed_backend=backend, embed_cache_dir=cache_dir,
              generator="extractive")
    report = bot.index()
    assert (report.added, report.embedded) == (3, 3)
    expected = {"When does the bakery open?": "bakery.txt", "Who won the chess title?": "chess.txt",
                "Which airport closed because of the eruption?": "volcano.txt"}
    for question, doc in expected.items():
        for mode in ("dense", "hybrid"):
            top = bot.retrieve(question, top_k=1, mode=mode)
            assert top[0].doc_id == doc, (question, mode, top)
    answer = bot.ask("Which airport closed because of the eruption?")
    assert "Catania" in answer.answer and answer.sources[0].doc_id == "volcano.txt"


def test_threads_embedding_at_once_get_the_same_vectors(cache_dir):
    """The UI embeds a question while an indexing run embeds chunks, from another thread."""
    from concurrent.futures import ThreadPoolExecutor

    emb = _embedder("onnx", cache_dir)
    alone = emb.embed(SENTENCES)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: emb.embed(SENTENCES[i % 5:] + SENTENCES[: i % 5]), range(12)))
    for i, vecs in enumerate(results):
        k = i % 5
        assert np.allclose(np.concatenate([vecs[len(SENTENCES) - k:], vecs[: len(SENTENCES) - k]]), alone, atol=1e-5)
