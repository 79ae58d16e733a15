"""filters.quality: each check with its own reason, on inline rows; tokens by estimate and by
the embedded teacher's tokenizer."""

from __future__ import annotations

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.quality import Quality, estimate_tokens, is_refusal, repeated_ngram_ratio

PROSE = (
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. The light "
    "reactions split water in the thylakoids, and the Calvin cycle fixes carbon in the stroma."
)


def row(output, category="chat", reasoning="off"):
    return Record(
        id="r",
        input=[{"role": "user", "content": "hi"}],
        output=output,
        category=category,
        reasoning=reasoning,
    )


@pytest.mark.parametrize(
    ("output", "category", "params", "verdict"),
    [
        (PROSE, "chat", {}, True),
        ("", "chat", {}, "quality_empty"),
        ("   \n", "chat", {}, "quality_empty"),
        ("<think>long thoughts</think>   ", "math", {}, "quality_empty"),
        ("<think>never closed", "math", {}, "quality_empty"),
        ("I'm sorry, but I can't help with that.", "chat", {}, "quality_refusal"),
        ("**I\u2019m sorry, but I cannot** share that.", "chat", {}, "quality_refusal"),
        ("I'm sorry, but I can't help with that.", "safety", {}, True),  # the right answer there
        ("I can't stress enough: " + PROSE, "chat", {}, True),
        ("ok", "chat", {"min_tokens": 5}, "quality_too_short"),
        (PROSE, "chat", {"max_tokens": 10}, "quality_too_long"),
        ("the cat sat on the mat " * 30, "chat", {}, "quality_repetitive"),
        ("the cat sat on the mat " * 3, "chat", {}, True),  # too short to call a loop
        ("the cat sat on the mat " * 30, "chat", {"max_repeated_ngram_ratio": 1.0}, True),
    ],
)
def test_quality_checks(output, category, params, verdict):
    got = Quality(**params).keep(row(output, category))
    assert got == (verdict if verdict is True else Drop(verdict))


def test_scores_and_measures():
    record = row(PROSE)
    assert Quality().judge([record]).kept == [record]
    assert record.scores["tokens"] == estimate_tokens(PROSE) == -(-len(PROSE) // 4)
    assert record.scores["repeated_ngram_ratio"] == 0.0
    assert record.scores["filters.quality"] == 1.0
    assert repeated_ngram_ratio("a b c d a b c d", 4) == pytest.approx(1 / 5)
    assert repeated_ngram_ratio("a b", 4) == 0.0
    assert repeated_ngram_ratio("x " * 50, 4) == pytest.approx(46 / 47)
    assert is_refusal("> As an AI language model, I cannot do that")
    assert not is_refusal("Sure! Here you go.")


def test_tokenizer_counts_exactly():
    # the embedded teacher's tokenizer is character-level: one token per character here
    stage = Quality(tokenizer="embedded", max_tokens=20)
    assert stage.count_tokens("What is 41 * 2?") == len("What is 41 * 2?")
    assert stage.keep(row("a" * 21)) == Drop("quality_too_long")


def test_params_are_checked_and_registered():
    assert stage_class("filters.quality") is Quality
    with pytest.raises(ValueError, match="max_tokens"):
        Quality(min_tokens=10, max_tokens=5)
    with pytest.raises(ValueError, match="ratio"):
        Quality(max_repeated_ngram_ratio=2)
