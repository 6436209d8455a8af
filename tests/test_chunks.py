from rag.boilerplate import content_regions
from rag.chunks import Chunker
from rag.embeddings import get_embedder
from rag.models import Document
from rag.settings import Settings
from rag.text import split_sentences


def test_chunks_fit_the_embedding_window_and_keep_offsets():
    settings = Settings()
    emb = get_embedder(settings)
    text = open("seeds/002_5cb3d4ab21543548.txt", encoding="utf-8").read()
    doc = Document("002.txt", "T", "002.txt", text, "abc")
    chunks = Chunker(emb.tokenize, settings.chunk_size, settings.chunk_overlap).chunk(doc)
    assert len(chunks) > 3
    for c in chunks:
        assert len(emb.tokenize(c.text)) <= 254  # 256 minus [CLS] and [SEP]
        assert text[c.start : c.end] == c.text
        assert c.doc_id == "002.txt" and c.title == "T"
    # consecutive chunks cover the whole document but its furniture: the tag line at its end
    assert chunks[0].start == len(text) - len(text.lstrip())
    assert chunks[-1].end == content_regions(text)[-1][1]
    assert text[chunks[-1].end:].strip().startswith("China AI self-sufficiency, Xi Jinping,")
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_chinese_sentence_ends_split_chunks():
    emb = get_embedder(Settings())
    sentence = "中国正在加快发展人工智能产业，并推动芯片自主研发。"
    text = sentence * 40
    doc = Document("zh.txt", "zh", "zh.txt", text, "abc")
    chunks = Chunker(emb.tokenize, 64, 0).chunk(doc)
    assert len(chunks) > 2
    for c in chunks:
        assert c.text.endswith("。")  # cut at sentence ends, not mid-sentence


def test_split_sentences_handles_abbreviations_and_markers():
    text = "U.S. firms led. Mr. Li spoke [1]. 第一句。第二句！"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "U.S. firms led.", "Mr. Li spoke [1].", "第一句。", "第二句！"
    ]
