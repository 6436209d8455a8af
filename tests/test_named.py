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
