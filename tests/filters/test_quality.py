"""filters.quality: each check with its own reason, on inline rows; tokens by estimate and by
the embedded teacher's tokenizer."""

from __future__ import annotations

import random
import re

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.answers import THINK_CLOSE, THINK_OPEN, strip_think
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


# --- the fast word path against the plain one it replaced ------------------------------------

# Pieces where `\w+` plus lower() is subtle: Greek final sigma (and "." / ":" / "'" being
# case-ignorable), dotted capital I, combining marks, non-ASCII spaces and digits, CJK, emoji,
# a lone surrogate (valid JSON), NUL and the ASCII whitespace bytes.
PIECES = ["The", "cat", "SAT", "on", "mat", "x_1", "42", "Ünïcode", "naïve", "e\u0301", "ß", "ẞ",
          "ΟΔΟΣ", "ΟΣ.Α", "aΣ", "Σ'Α", "ς", "σ", "İstanbul", "ı", "ǅ", "x—y", "数学", "🙂", "١٢", "１２",
          "Привет", "привет", "οδος", "οδοσ", "NAÏVE", "i\u0307stanbul", "ss", "\ud800", "\x00",
          "\u0301", "\u200b", "_", "'", ".", ":", "-", "\\boxed{4}", " ", "\t", "\n", "\r\n",
          "\x0b", "\x0c", "\xa0", "\u2003", "\u3000", "\x1c"]  # fmt: skip
CASE_PAIRS = [("Привет", "привет"), ("ΟΔΟΣ", "οδος"), ("ΟΔΟΣ", "οδοσ"), ("NAÏVE", "naïve"),
              ("İstanbul", "i\u0307stanbul"), ("ẞ", "ß"), ("ǅ", "ǆ"), ("Ünïcode", "ünïcode")]  # fmt: skip


def _old_words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"\w+", text)]


def _old_ratio(text: str, n: int) -> float:
    words = _old_words(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def _old_keep(stage: Quality, record: Record) -> bool | Drop:
    """Quality.keep before the fast word path (tokens by estimate)."""
    output = record.output
    answer = strip_think(output) if THINK_CLOSE in output or THINK_OPEN in output else output
    if not output.strip() or (stage.check_empty_answer and not answer.strip()):
        return Drop("quality_empty")
    if record.category in stage.refusal_categories and is_refusal(answer):
        return Drop("quality_refusal")
    tokens = estimate_tokens(output)
    record.scores["tokens"] = float(tokens)
    if tokens < stage.min_tokens:
        return Drop("quality_too_short")
    if stage.max_tokens and tokens > stage.max_tokens:
        return Drop("quality_too_long")
    ratio = _old_ratio(output, stage.ngram)
    record.scores["repeated_ngram_ratio"] = ratio
    words = len(_old_words(output))
    if words >= stage.min_words_for_repetition and ratio > stage.max_repeated_ngram_ratio:
        return Drop("quality_repetitive")
    return True


def varied_texts(count: int = 1500, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "ΟΣ", "a b c d a b c d", "x " * 50, "Σ Σ Σ Σ Σ", "数学数学 数学"]
    ascii_pieces = [p for p in PIECES if p.isascii()]
    for _ in range(count):
        pieces = ascii_pieces if rng.random() < 0.3 else PIECES
        words = [rng.choice(pieces) for _ in range(rng.randint(0, 120))]
        if rng.random() < 0.5:  # ASCII prose with a few odd words
            words = [rng.choice(["the", "cat", "Sat", "on", "mat", "4"]) for _ in words]
            odd = [*rng.choice(CASE_PAIRS), rng.choice(PIECES)]
            for _ in range(len(words) // 10):
                words[rng.randrange(len(words))] = rng.choice(odd)
        sep = rng.choice([" ", "", " ", "\n"])
        text = sep.join(words)
        if rng.random() < 0.3:  # a loop
            text = text[: rng.randint(0, 60)] * rng.randint(2, 30)
        texts.append(text)
    return texts


def test_repeated_ngram_ratio_is_the_plain_computation():
    for text in varied_texts():
        for n in (1, 2, 4, 5):
            assert repeated_ngram_ratio(text, n) == _old_ratio(text, n), (text, n)


def test_verdicts_and_scores_match_the_plain_keep():
    rng = random.Random(1)
    for text in varied_texts(seed=2):
        params = {
            "ngram": rng.choice([1, 3, 4]),
            "min_words_for_repetition": rng.choice([0, 5, 20, 60]),
            "max_repeated_ngram_ratio": rng.choice([0.0, 0.2, 0.5, 0.9]),
        }
        stage = Quality(**params)
        reasoning = rng.choice(["on", "off"])
        output = f"<think>{text}</think>{text[:20]}" if reasoning == "on" else text
        new, old = row(output, reasoning=reasoning), row(output, reasoning=reasoning)
        assert stage.keep(new) == _old_keep(stage, old), (output, params)
        assert new.scores == old.scores
