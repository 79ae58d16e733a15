r"""`filters.majority_vote`: when a problem has no gold answer, the samples vote for one.

arXiv 2505.00949 §3.1.3 (science): DeepSeek-R1 writes several solutions per question, and for
questions without a ground-truth answer the most likely correct one is inferred by majority
voting across the generated solutions. Rows that agree with the winner are kept.

    stages:
      - {type: generators.multi_sample, teacher: reasoner, samples_on: 8}
      - {type: filters.majority_vote, answer: mcq, min_share: 0.5}

Groups are the samples of one problem (`meta["problem_id"]`, written by the generation
stages). Every row a source row fans out into stays in that source row's batch
(docs/execution.md), so each group is whole in every `process` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, GroupFilter
from filters.answers import extract_boxed, extract_mcq_letter, strip_think
from filters.math import compare_answers

if TYPE_CHECKING:
    from curation.context import RunContext

_SPACE = re.compile(r"\s+")


def normalize_answer(answer: str) -> str:
    """What counts as the same vote under `compare: exact`: trimmed, no `$`, one space."""
    answer = answer.strip().removesuffix(".").strip().strip("$").strip().removesuffix(".")
    return _SPACE.sub(" ", answer.strip())


@register_stage("filters.majority_vote")
@dataclass
class MajorityVote(GroupFilter):
    r"""Keeps the samples of a problem that agree with the majority answer.

    Reads `meta["problem_id"]` (rows without one are a group of their own) and each row's
    answer: `meta["answer"]` (`answer: meta`, e.g. from `filters.boxed_answer`), the MCQ letter
    of the text after `</think>` (`answer: mcq`), or `auto`: `meta["answer"]`, else the last
    box, else the MCQ letter. Writes `meta["vote_answer"]` (the row's own vote),
    `meta["majority_answer"]` (the group's winner, "" on a tie), `scores["vote_share"]`
    (winner's votes / the group's rows, or / its answered rows with `count_unanswered: false`)
    and `scores["filters.majority_vote"]` (1.0 kept / 0.0 dropped). With `set_expected`, kept
    rows with no `expected_answer` get the winner as one.

    Reasons: `majority_no_answer` (the row gave no answer), `majority_tie` (two answers share the
    most votes), `majority_share_too_low` (the winner's share is under `min_share`),
    `majority_disagrees` (the row voted for another answer).

    Example: a problem's 4 samples answer B, B, B, C -> winner B, share 0.75; the B rows are
    kept, the C row is dropped with `majority_disagrees`.
    """

    answer: Literal["auto", "meta", "mcq"] = "auto"  # where a row's vote comes from
    choices: str = "ABCD"  # MCQ option letters
    compare: Literal["exact", "math_verify"] = "exact"  # when two votes are the same answer
    min_share: float = 0.5  # keep a group only if its winner has at least this share
    count_unanswered: bool = True  # rows without an answer count in the share's denominator
    set_expected: bool = False  # write the winner to `expected_answer` where it is empty

    requires: ClassVar[tuple[str, ...]] = ("output",)
    provides: ClassVar[tuple[str, ...]] = (
        "meta.vote_answer",
        "meta.majority_answer",
        "scores.vote_share",
        "scores.filters.majority_vote",
    )

    def __post_init__(self) -> None:
        if self.answer not in ("auto", "meta", "mcq"):
            raise ValueError(
                f"filters.majority_vote: answer must be auto, meta or mcq, got {self.answer!r}"
            )
        if self.compare not in ("exact", "math_verify"):
            raise ValueError(
                f"filters.majority_vote: compare must be exact or math_verify, got {self.compare!r}"
            )
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(
                f"filters.majority_vote: min_share must be in [0, 1], got {self.min_share}"
            )
        if not self.choices.isalpha():
            raise ValueError(
                f"filters.majority_vote: choices must be letters, got {self.choices!r}"
            )

    def vote(self, record: Record) -> str | None:
        """The row's answer, or None."""
        if self.answer in ("auto", "meta") and record.meta.get("answer", "").strip():
            return normalize_answer(record.meta["answer"])
        if self.answer == "meta":
            return None
        text = strip_think(record.output) if record.reasoning == "on" else record.output
        if self.answer == "auto":
            boxed = extract_boxed(text)
            if boxed:
                return normalize_answer(boxed)
        return extract_mcq_letter(text, self.choices)

    def _same(self, a: str, b: str) -> bool:
        if a == b:
            return True
        return self.compare == "math_verify" and compare_answers(a, b) == "equal"

    def _tally(self, votes: list[str | None]) -> tuple[list[str], list[int]]:
        """Distinct answers (first spelling seen) and their vote counts, in first-seen order."""
        answers: list[str] = []
        counts: list[int] = []
        for vote in votes:
            if vote is None:
                continue
            index = next((i for i, a in enumerate(answers) if self._same(vote, a)), None)
            if index is None:
                answers.append(vote)
                counts.append(1)
            else:
                counts[index] += 1
        return answers, counts

    def judge_group(self, rows: list[Record], ctx: RunContext) -> list[bool | Drop | Record]:
        votes = [self.vote(r) for r in rows]
        answers, counts = self._tally(votes)
        top = max(counts, default=0)
        winners = [a for a, c in zip(answers, counts, strict=True) if c == top]
        answered = sum(v is not None for v in votes)
        share = top / (len(rows) if self.count_unanswered else max(answered, 1))
        winner = winners[0] if len(winners) == 1 else ""
        verdicts: list[bool | Drop | Record] = []
        for record, vote in zip(rows, votes, strict=True):
            record.meta["vote_answer"] = vote or ""
            record.meta["majority_answer"] = winner
            record.scores["vote_share"] = share
            if vote is None:
                verdicts.append(Drop("majority_no_answer"))
            elif len(winners) > 1:
                verdicts.append(Drop("majority_tie"))
            elif share < self.min_share:
                verdicts.append(Drop("majority_share_too_low"))
            elif not self._same(vote, winner):
                verdicts.append(Drop("majority_disagrees"))
            else:
                if self.set_expected and not (record.expected_answer or "").strip():
                    record.expected_answer = winner
                verdicts.append(True)
        return verdicts


__all__ = ["MajorityVote", "normalize_answer"]
