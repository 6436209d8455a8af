"""Incremental indexing against the real Chroma store and the real embedding model."""

import pytest

from rag.store import StoreError, StoreLocked, write_lock


def chunk_ids_by_doc(bot):
    out = {}
    for cid, meta, _ in bot.store.iter_chunk_metadata():
        out.setdefault(meta["doc_id"], set()).add(cid)
    return out


def test_first_run_then_unchanged_embeds_nothing(docs_dir, make_bot):
    bot = make_bot(docs_dir)
    first = bot.index()
    assert first.added == 5 and first.embedded == first.chunks > 5 and not first.skipped
    second = bot.index()
    assert (second.added, second.updated, second.removed, second.embedded) == (0, 0, 0, 0)
    assert second.unchanged == 5 and second.chunks == first.chunks


def test_a_store_read_the_old_way_is_read_anew_without_embedding_again(docs_dir, make_bot):
    from rag import chunks

    bot = make_bot(docs_dir)
    first = bot.index()
    texts = sorted(t for _, _, t in bot.store.iter_chunk_metadata(include_text=True))
    bot.store._write_store_record(reading="1:200:30")  # as a store built before this reading
    again = bot.index()
    assert again.updated == 5 and again.embedded == 0 and again.chunks == first.chunks
    assert sorted(t for _, _, t in bot.store.iter_chunk_metadata(include_text=True)) == texts  # no duplicates
    assert bot.store.store_record()["reading"].startswith(f"{chunks.READING_VERSION}:")
    assert bot.index().unchanged == 5  # read once, then left alone


def test_new_chunk_sizes_replace_every_chunk_of_the_old_ones(docs_dir, make_bot, tmp_path):
    small = make_bot(docs_dir, chunk_size=100).index()
    bot = make_bot(docs_dir, chunk_size=200)
    r = bot.index()
    fresh = make_bot(docs_dir, chunk_size=200, store_dir=tmp_path / "fresh").index()
    assert r.updated == 5 and r.chunks == fresh.chunks < small.chunks
    assert bot.store.chunk_count() == sum(len(v) for v in chunk_ids_by_doc(bot).values()) == fresh.chunks


def test_add_change_delete(docs_dir, make_bot):
    bot = make_bot(docs_dir)
    bot.index()
    before = chunk_ids_by_doc(bot)
    (docs_dir / "new.md").write_text("# Quantum\n\nThe Hefei lab built a quantum computer called Zuchongzhi.")
    changed = docs_dir / "000_50d618d39dec71f2.txt"
    changed.write_text(changed.read_text() + "\nA new closing line about Moore Threads GPUs.")
    (docs_dir / "004_37bcc427096d2522.txt").unlink()
    r = bot.index()
    assert (r.added, r.updated, r.removed, r.unchanged) == (1, 1, 1, 3)
    after = chunk_ids_by_doc(bot)
    assert "004_37bcc427096d2522.txt" not in after
    assert after["000_50d618d39dec71f2.txt"].isdisjoint(before["000_50d618d39dec71f2.txt"])
    # unchanged chunk texts of the changed file were reused, not embedded again
    assert r.embedded < len(after["000_50d618d39dec71f2.txt"]) + len(after["new.md"])
    assert r.chunks == sum(len(v) for v in after.values())
    hits = bot.retrieve("Zuchongzhi quantum computer")
    assert hits[0].doc_id == "new.md"
    assert all(h.doc_id != "004_37bcc427096d2522.txt" for h in bot.retrieve("universities AI specialists", top_k=10))


def test_interrupted_run_leaves_usable_store_and_next_run_completes(docs_dir, make_bot, monkeypatch):
    bot = make_bot(docs_dir)
    bot.index()
    for i in range(3):
        (docs_dir / f"extra{i}.txt").write_text(f"Extra document {i} about the Loongson CPU number {i}. " * 40)
    real_add = bot.store.add_chunks

    def crash_after_write(chunks, vectors):
        real_add(chunks, vectors)  # chunks are written, but their documents never get committed
        raise KeyboardInterrupt

    monkeypatch.setattr(bot.store, "add_chunks", crash_after_write)
    with pytest.raises(KeyboardInterrupt):
        bot.index()
    monkeypatch.undo()
    # still answers, from the committed documents only
    assert bot.retrieve("DeepSeek founders met Xi Jinping")[0].doc_id == "000_50d618d39dec71f2.txt"
    assert all(not s.doc_id.startswith("extra") for s in bot.retrieve("Loongson CPU", top_k=10))
    r = bot.index()
    assert r.added == 3
    ids = chunk_ids_by_doc(bot)
    total = sum(len(v) for v in ids.values())
    assert total == r.chunks == bot.store.chunk_count()  # no duplicates, no orphans
    assert sum(e.chunks for e in bot.documents()) == total


def test_bad_files_are_skipped_and_good_ones_index(docs_dir, make_bot):
    (docs_dir / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (docs_dir / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    (docs_dir / "empty.md").write_bytes(b"")
    r = make_bot(docs_dir).index()
    reasons = {s.file: s.reason for s in r.skipped}
    assert set(reasons) == {"binary.txt", "broken.pdf", "empty.md"}
    assert r.added == 5


def test_file_that_breaks_keeps_its_last_good_version(docs_dir, make_bot):
    bot = make_bot(docs_dir)
    bot.index()
    (docs_dir / "003_0a604f4358db9a5d.txt").write_bytes(b"\x00\x01\x02" * 100)
    r = bot.index()
    assert [s.file for s in r.skipped] == ["003_0a604f4358db9a5d.txt"]
    assert "003_0a604f4358db9a5d.txt" in {e.doc_id for e in bot.documents()}


def test_mixing_embedding_models_is_refused(docs_dir, make_bot, tmp_path):
    make_bot(docs_dir).index()
    other = make_bot(docs_dir, embed_model="openai:text-embedding-3-small", openai_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(StoreError, match="--rebuild"):
        other.store.check_model("openai:text-embedding-3-small")


def test_second_writer_gets_a_clear_message(tmp_path):
    with write_lock(tmp_path):
        with pytest.raises(StoreLocked, match="being written"):
            with write_lock(tmp_path):
                pass


def test_rebuild_starts_over(docs_dir, make_bot):
    bot = make_bot(docs_dir)
    first = bot.index()
    r = bot.index(rebuild=True)
    assert r.added == 5 and r.embedded == first.chunks == r.chunks
