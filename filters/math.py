r"""Math answer filters: pull the boxed answer out of a solution, then check it against the gold.

arXiv 2505.00949 §3.1.1: for math, final answers are extracted so solutions can be checked
automatically, and samples with wrong answers are removed. Here `filters.boxed_answer` extracts
and `filters.math_verify` checks symbolically with the `math-verify` library; an LLM judge for
what symbolic checking cannot decide is a separate stage.

    stages:
      - {type: filters.boxed_answer}              # meta["answer"] = "\frac{1}{2}"
      - {type: filters.math_verify}               # vs expected_answer "0.5": kept

Timeouts: math-verify bounds each parse/compare with `signal.alarm`, which works only in the
main thread of a process. These stages pass `timeout_s` when they run there (the caller's main
thread, or a process-pool worker's) and `None` (math-verify's documented off switch) in any
other thread, where `max_answer_chars` is what keeps a pathological answer from stalling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar, Literal

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import extract_boxed, extract_final_answer_line, strip_think


@register_stage("filters.boxed_answer")
@dataclass
class BoxedAnswer(Filter):
    r"""Writes the solution's boxed answer to `meta["answer"]`; drops rows without one.

    Reads `output` (only the text after `</think>` when `reasoning` is "on", so a box inside the
    reasoning never counts) and writes `meta["answer"]`. arXiv 2505.00949 §3.1.1.

    Reasons: `answer_missing_boxed` (no box), `answer_empty_boxed` (`\boxed{}`).

    Example: output "<think>1+1</think>So \boxed{2}." -> meta["answer"] = "2".
    """

    requires: ClassVar[tuple[str, ...]] = ("output", "reasoning")
    provides: ClassVar[tuple[str, ...]] = ("meta.answer",)

    which: Literal["first", "last"] = "last"  # which box counts when there are several
    final_answer_line: bool = False  # also accept "Final answer: X" when there is no box (opt-in)

    def __post_init__(self) -> None:
        if self.which not in ("first", "last"):
            raise ValueError(
                f"filters.boxed_answer: which must be 'first' or 'last', got {self.which!r}"
            )

    def keep(self, record: Record) -> bool | Drop:
        text = strip_think(record.output) if record.reasoning == "on" else record.output
        answer = extract_boxed(text, which=self.which)
        if answer is None and self.final_answer_line:
            answer = extract_final_answer_line(text)
        if answer is None:
            return Drop("answer_missing_boxed")
        if not answer:
            return Drop("answer_empty_boxed")
        record.meta["answer"] = answer
        return True


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _as_boxed(answer: str) -> str:
    """What math-verify parses best: one `\\boxed{}` (its top extraction priority)."""
    answer = answer.strip()
    if "\\boxed" in answer or "\\fbox" in answer:
        return answer
    if len(answer) > 1 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    return f"\\boxed{{{answer}}}"


@register_stage("filters.math_verify")
@dataclass
class MathVerify(Filter):
    r"""Keeps rows whose `meta["answer"]` equals `expected_answer` by math-verify.

    Reads `meta["answer"]` (from `filters.boxed_answer`) and `expected_answer`; the verdict lands
    in `scores["filters.math_verify"]` (1.0 kept / 0.0 dropped, by `Filter.judge`). Both sides are
    parsed as `\boxed{...}`, so `1/2`, `\frac{1}{2}` and `0.5` are equal, as are `82` and `82.0`.
    arXiv 2505.00949 §3.1.1 (the paper removes wrong answers; it checks with an LLM judge).

    Reasons: `expected_answer_missing` (no gold, unless `keep_without_gold`), `math_answer_missing`
    (no `meta["answer"]`), `math_answer_too_long`, `math_answer_unparsed` (math-verify extracts
    nothing from the answer), `expected_answer_unparsed` (nor from the gold),
    `math_answer_mismatch`.

    Example: meta["answer"] = "\frac{1}{2}", expected_answer = "0.5" -> kept, score 1.0.
    """

    requires: ClassVar[tuple[str, ...]] = ("meta.answer", "expected_answer")
    provides: ClassVar[tuple[str, ...]] = ("scores.filters.math_verify",)
    cpu_heavy: ClassVar[bool] = True  # sympy parsing: batches go to the process pool

    keep_without_gold: bool = False  # keep rows with no gold (score 1.0 = kept, not checked)
    timeout_s: int = 5  # per parse/compare, main thread only (math-verify's own default)
    float_rounding: int = 6  # decimals kept when comparing floats (math-verify's default)
    max_answer_chars: int = 1000  # drop longer answers; bounds the work when no timeout applies

    def __post_init__(self) -> None:
        if self.timeout_s < 1:
            raise ValueError(f"filters.math_verify: timeout_s must be >= 1, got {self.timeout_s}")
        if self.max_answer_chars < 1:
            raise ValueError(
                f"filters.math_verify: max_answer_chars must be >= 1, got {self.max_answer_chars}"
            )

    def keep(self, record: Record) -> bool | Drop:
        gold = (record.expected_answer or "").strip()
        if not gold:
            return True if self.keep_without_gold else Drop("expected_answer_missing")
        answer = record.meta.get("answer", "").strip()
        if not answer:
            return Drop("math_answer_missing")
        if len(answer) > self.max_answer_chars:
            return Drop("math_answer_too_long")
        verdict = compare_answers(answer, gold, self.timeout_s, self.float_rounding)
        return True if verdict == "equal" else Drop(verdict)


MathVerdict = Literal[
    "equal", "math_answer_mismatch", "math_answer_unparsed", "expected_answer_unparsed"
]


def compare_answers(
    answer: str, gold: str, timeout_s: int = 5, float_rounding: int = 6
) -> MathVerdict:
    r"""math-verify's verdict on `answer` vs `gold`: "equal", or why not (a drop reason).

    Both sides are parsed as `\boxed{...}`; `timeout_s` applies in the main thread only (see the
    module docstring). Shared by `filters.math_verify`, `filters.math_judge`, majority voting
    and pass rates, so they all call the same answers equal.
    """
    from math_verify import parse, verify  # imports sympy: paid only by math recipes

    timeout = timeout_s if _in_main_thread() else None
    predicted = parse(_as_boxed(answer), parsing_timeout=timeout)
    if not predicted:
        return "math_answer_unparsed"
    expected = parse(_as_boxed(gold), parsing_timeout=timeout)
    if not expected:
        return "expected_answer_unparsed"
    if verify(expected, predicted, float_rounding=float_rounding, timeout_seconds=timeout):
        return "equal"
    return "math_answer_mismatch"
