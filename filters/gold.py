"""Gold-answer checks that need no symbolic maths: MCQ letters and exact replies.

- `filters.mcq_answer` (science, arXiv 2505.00949 §3.1.3): the letter the answer picks must be the
  gold letter. Writes `meta["answer"]`.
- `filters.exact_answer` (instruction following): the reply after `</think>`, trimmed, must equal
  the gold reply (optionally ignoring case).

Rows without a gold answer are dropped as `expected_answer_missing` unless `keep_without_gold`;
science rows without gold go to `filters.majority_vote` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import extract_mcq_letter, strip_think


@register_stage("filters.mcq_answer")
@dataclass
class McqAnswer(Filter):
    """Keeps rows whose chosen letter equals `expected_answer`.

    Example: output "<think>...</think>\\n\\nThe answer is (B)." with gold "B" is kept.
    """

    choices: str = "ABCD"  # the option letters a question may use
    keep_without_gold: bool = False  # keep rows with no gold letter (for a later majority vote)

    requires: ClassVar[tuple[str, ...]] = ("output", "expected_answer")
    provides: ClassVar[tuple[str, ...]] = ("meta.answer",)

    def keep(self, record: Record) -> bool | Drop:
        letter = extract_mcq_letter(strip_think(record.output), self.choices)
        if letter is None:
            return Drop("mcq_answer_missing")
        record.meta["answer"] = letter
        gold = (record.expected_answer or "").strip().strip("()").upper()
        if not gold:
            return True if self.keep_without_gold else Drop("expected_answer_missing")
        return True if letter == gold else Drop("mcq_answer_mismatch")


@register_stage("filters.exact_answer")
@dataclass
class ExactAnswer(Filter):
    """Keeps rows whose reply (after `</think>`) equals `expected_answer` after trimming."""

    ignore_case: bool = False  # compare case-insensitively
    keep_without_gold: bool = False  # keep rows that have no gold reply

    requires: ClassVar[tuple[str, ...]] = ("output", "expected_answer")

    def keep(self, record: Record) -> bool | Drop:
        gold = record.expected_answer
        if gold is None or not gold.strip():
            return True if self.keep_without_gold else Drop("expected_answer_missing")
        reply = strip_think(record.output).strip()
        if self.ignore_case:
            reply, gold = reply.lower(), gold.lower()
        return True if reply == gold.strip() else Drop("exact_answer_mismatch")
