"""`filters.quality`: cheap heuristics for rows no one should train on.

DESIGN §6 (length, repetition checks). Each check has its own reason, so the stats funnel says
which one bites:

- empty: nothing after `</think>` (or an empty output);
- refusal: the answer opens with a stock refusal ("I'm sorry, but I can't ..."), for chat rows;
- length: too few or too many tokens. Tokens are counted with a tokenizer when one is named
  (`tokenizer: embedded` or a local HF tokenizer dir), else estimated as ceil(chars / 4), the
  usual rule of thumb for English BPE vocabularies;
- repetition: the share of duplicate word n-grams (n = 4 by default), i.e. (n-grams - distinct
  n-grams) / n-grams over the whole output. A model stuck in a loop scores near 1; the Gopher
  rules (Rae et al. 2021) use the same idea on web text.

    stages:
      - {type: filters.quality, max_tokens: 16384, max_repeated_ngram_ratio: 0.5}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import THINK_CLOSE, THINK_OPEN, strip_think

# Opening phrases of stock refusals; matched case-insensitively at the start of the answer
# (after markdown and whitespace), so "I can't stress enough..." in the middle never counts.
REFUSALS = (
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i'm sorry, i can't",
    "sorry, but i can't",
    "sorry, i can't help",
    "i can't help with that",
    "i cannot help with that",
    "i can't assist with that",
    "i cannot assist with that",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i won't be able to help",
    "as an ai language model, i cannot",
    "as an ai, i cannot",
    "i must decline",
)
_WORDS = re.compile(r"\w+", re.UNICODE)
_LEAD = re.compile(r"^[\s*_#>\"'`]+")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'"})


# One pass over the UTF-8 bytes: ASCII word bytes lower-cased, other ASCII bytes made spaces,
# the bytes of non-ASCII characters (all >= 0x80) kept. `.split()` then gives the runs of word
# characters and non-ASCII characters, split where `\w` is split by an ASCII character.
_ASCII_WORDS = bytes(
    ord(chr(c).lower()) if chr(c).isalnum() or chr(c) == "_" else ord(" ") for c in range(128)
) + bytes(range(128, 256))
_UTF8 = ("utf-8", "surrogatepass")  # a lone surrogate (valid JSON) encodes and decodes back


def _lower_words(text: str) -> list[str] | list[bytes]:
    """`[w.lower() for w in _WORDS.findall(text)]`, as str or (faster) UTF-8 bytes words.

    Either form compares and counts the same. An ASCII run is one word; a run with non-ASCII
    characters is split by `_WORDS` and each word lower-cased alone, as before (lower-casing
    its ASCII letters first changes nothing: they stay word characters and cased ones).
    """
    runs = text.encode(*_UTF8).translate(_ASCII_WORDS).split()
    if text.isascii():
        return runs
    ascii_runs = list(map(bytes.isascii, runs))
    if ascii_runs.count(False) * 8 > len(runs):  # mostly non-ASCII words: the regex is faster
        return list(map(str.lower, _WORDS.findall(text)))
    words, start = [], 0
    while (i := _next_false(ascii_runs, start)) >= 0:
        words += runs[start:i]
        words += [w.lower().encode(*_UTF8) for w in _WORDS.findall(runs[i].decode(*_UTF8))]
        start = i + 1
    return words + runs[start:]


def _next_false(flags: list[bool], start: int) -> int:
    try:
        return flags.index(False, start)
    except ValueError:
        return -1


def _ngram_ratio(words: list[str] | list[bytes], n: int) -> float:
    grams = len(words) - n + 1
    if grams <= 0:
        return 0.0
    # The n-grams are the tuples of zip(words, words[1:], ..., words[n-1:]), shortest wins.
    distinct = len(set(zip(*(words[i:] for i in range(n)), strict=False)))
    return (grams - distinct) / grams


def repeated_ngram_ratio(text: str, n: int = 4) -> float:
    """(n-grams - distinct n-grams) / n-grams over lower-cased words; 0.0 when there are none."""
    return _ngram_ratio(_lower_words(text), n)


def is_refusal(answer: str, phrases: tuple[str, ...] = REFUSALS) -> bool:
    head = _LEAD.sub("", answer).translate(_QUOTES).lower()
    return any(head.startswith(p) for p in phrases)


def estimate_tokens(text: str) -> int:
    """ceil(chars / 4): the common estimate for English text with a BPE vocabulary."""
    return math.ceil(len(text) / 4)


@lru_cache(maxsize=4)
def _tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    from curation.teacher.paths import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(name))


@register_stage("filters.quality")
@dataclass
class Quality(Filter):
    """Drops empty, refusing, too short/long and repetitive outputs.

    Reads `output` (and `reasoning`, `category`); writes `scores["tokens"]` and
    `scores["repeated_ngram_ratio"]`, and `scores["filters.quality"]` (1.0 kept / 0.0 dropped).

    Reasons, checked in this order: `quality_empty` (no text, or nothing after `</think>`),
    `quality_refusal` (the answer opens with a phrase of `REFUSALS`; only for `refusal_categories`,
    as a refusal is a right answer for safety rows), `quality_too_short`, `quality_too_long`,
    `quality_repetitive`.

    Example: an output "the cat sat on the mat " * 50 -> ratio 0.98 -> Drop("quality_repetitive").
    """

    min_tokens: int = 1  # fewer tokens is `quality_too_short`
    max_tokens: int = 16384  # LN-Super's SFT sequence length (arXiv 2505.00949 §4.2); 0 = none
    tokenizer: str = ""  # "" = ceil(chars/4); "embedded" or a local HF tokenizer dir = exact
    ngram: int = 4  # n of the repetition check
    max_repeated_ngram_ratio: float = 0.5  # above this share of duplicate n-grams: repetitive
    min_words_for_repetition: int = 20  # shorter outputs are never called repetitive
    refusal_categories: tuple[str, ...] = ("chat",)  # categories checked for refusals; () = none
    check_empty_answer: bool = True  # reasoning-on rows need text after </think>

    requires: ClassVar[tuple[str, ...]] = ("output",)
    provides: ClassVar[tuple[str, ...]] = ("scores.tokens", "scores.repeated_ngram_ratio")

    def __post_init__(self) -> None:
        if self.min_tokens < 0 or self.max_tokens < 0:
            raise ValueError("filters.quality: min_tokens and max_tokens must be >= 0")
        if self.max_tokens and self.max_tokens < self.min_tokens:
            raise ValueError(
                f"filters.quality: max_tokens {self.max_tokens} < min_tokens {self.min_tokens}"
            )
        if self.ngram < 1:
            raise ValueError(f"filters.quality: ngram must be >= 1, got {self.ngram}")
        if not 0.0 <= self.max_repeated_ngram_ratio <= 1.0:
            raise ValueError(
                "filters.quality: max_repeated_ngram_ratio must be in [0, 1], "
                f"got {self.max_repeated_ngram_ratio}"
            )
        self.refusal_categories = tuple(self.refusal_categories)

    def count_tokens(self, text: str) -> int:
        if not self.tokenizer:
            return estimate_tokens(text)
        return len(_tokenizer(self.tokenizer)(text, add_special_tokens=False)["input_ids"])

    def keep(self, record: Record) -> bool | Drop:
        output = record.output
        answer = strip_think(output) if THINK_CLOSE in output or THINK_OPEN in output else output
        if not output.strip() or (self.check_empty_answer and not answer.strip()):
            return Drop("quality_empty")
        if record.category in self.refusal_categories and is_refusal(answer):
            return Drop("quality_refusal")
        tokens = self.count_tokens(output)
        record.scores["tokens"] = float(tokens)
        if tokens < self.min_tokens:
            return Drop("quality_too_short")
        if self.max_tokens and tokens > self.max_tokens:
            return Drop("quality_too_long")
        words = _lower_words(output)
        ratio = _ngram_ratio(words, self.ngram)
        record.scores["repeated_ngram_ratio"] = ratio
        if len(words) >= self.min_words_for_repetition and ratio > self.max_repeated_ngram_ratio:
            return Drop("quality_repetitive")
        return True


__all__ = ["REFUSALS", "Quality", "estimate_tokens", "is_refusal", "repeated_ngram_ratio"]
