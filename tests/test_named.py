"""Documents a question names by what they are about (rag/named.py)."""

from rag.named import descriptions, named_documents

TITLES = {
    "a.txt": "China’s AI Self-Sufficiency: Xi’s Push Amid US Rivalry",
    "b.txt": "China’s Accelerated Push for AI Self-Reliance in 2025",
    "c.txt": "Beijing Ramps Up Efforts for Tech Independence with Open-Source AI Push",
    "d.txt": "Heatwave closes schools across southern Europe",
}


def test_descriptions_stop_where_the_question_goes_on():
    q = "According to the 2025 review and the article on Xi's AI push amid US rivalry, how is China building chips?"
    assert descriptions(q) == [frozenset({"2025"}), frozenset({"xi", "ai", "push", "amid", "us", "rivalri"})]
    assert descriptions("What does the report on the heatwave say about schools?") == [frozenset({"heatwav"})]
    assert descriptions("What do the articles say about chips?") == []  # no description: nothing named


def test_a_title_holding_the_description_alone_is_named():
    q = "According to the 2025 review and the article on Xi's AI push amid US rivalry, how is China building chips?"
    assert named_documents(q, TITLES) == ["b.txt", "a.txt"]
    assert named_documents("What does the story about the heatwave in Europe say?", TITLES) == ["d.txt"]


def test_a_description_several_titles_fit_equally_names_nothing():
    assert named_documents("What does the article on China's AI push say about chips?", TITLES) == []
    assert named_documents("What does the article on volcanoes say?", TITLES) == []
    assert named_documents("What does the article on Xi's push say?", {}) == []


def test_a_document_named_by_what_it_opens_with(tmp_path):
    """No title holds "China's call to develop homegrown AI"; the opening of one article does."""
    from rag import RAG
    from rag.answering import Pipeline, Turn

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(
        "China's push for AI independence is reaching new heights.\n\nThe government recently called on the "
        "country's top scientists to develop homegrown artificial intelligence. This marks a shift.\n\n"
        "Countries worldwide are recognizing AI as essential for future competitiveness.\n")
    (docs / "b.txt").write_text(
        "China commits to self-reliance in AI.\n\nPresident Xi has called for the country to become more "
        "independent in artificial intelligence. Chip output rose by a third.\n")
    (docs / "c.txt").write_text(
        "China and the US compete in AI.\n\nBoth countries fund chip plants. Talent is scarce everywhere.\n")
    bot = RAG(docs_dir=docs, store_dir=tmp_path / "store")
    bot.index()
    q = "According to the article on China's call to develop homegrown AI, how do countries view AI?"
    assert named_documents(q, {d: e.title for d, e in bot.store.catalog().items()}) == []
    assert bot.store.openings(["a.txt", "c.txt"]) == {
        "a.txt": next(s.text for s in bot.retrieve("government called on top scientists", doc_ids=["a.txt"])
                      if s.start == 0),
        "c.txt": next(s.text for s in bot.retrieve("chip plants", doc_ids=["c.txt"]) if s.start == 0)}
    assert Pipeline(bot)._named_documents(Turn(asked=q, english=q)) == ["a.txt"]
    assert {s.doc_id for s in bot.ask(q, generator="extractive").sources} == {"a.txt"}
