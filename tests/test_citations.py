from rag.citations import check, markers_in
from rag.models import Source
from rag.prompts import NOT_FOUND


def src(marker, text):
    return Source(marker, f"d{marker}.txt", f"d{marker}.txt", "t", text, 0, len(text), 1.0, 0.5)


SOURCES = [
    src(1, "Huawei designs the Ascend 910 chip for AI training in Shenzhen."),
    src(2, "Universities in Beijing are expanding their artificial intelligence programs."),
]


def test_invented_markers_are_stripped():
    answer, ok = check("Huawei designs the Ascend chip [1][7]. Beijing universities expand AI [2, 9].", SOURCES)
    assert ok
    assert set(markers_in(answer)) == {1, 2}


def test_unmarked_sentences_get_the_supporting_passage():
    answer, ok = check("Universities in Beijing are expanding AI programs. Huawei designs the Ascend 910 chip.",
                       SOURCES)
    assert ok
    assert "programs [2]." in answer and "910 chip [1]." in answer


def test_unsupported_sentence_is_dropped():
    reply = "Huawei designs the Ascend chip [1]. The weather in Paris was sunny and warm yesterday."
    answer, ok = check(reply, SOURCES)
    assert ok and answer == "Huawei designs the Ascend chip [1]."


def test_refusals_become_not_found_without_citations():
    for reply in ["The passages do not mention Nvidia's share price [1].", NOT_FOUND, "",
                  "I cannot answer that from the passages."]:
        answer, ok = check(reply, SOURCES)
        assert not ok and answer == NOT_FOUND and markers_in(answer) == []
