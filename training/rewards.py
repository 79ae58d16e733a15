r"""GRPO rewards as plain batch functions (trl style): one float per completion, None = cannot judge.

arXiv 2505.00949 §5: an **accuracy reward** (is the final answer right, by a verifier) and a
**format reward** (reasoning in `<think>` tags when the system prompt says "detailed thinking
on", no tags when "off"). trl passes every dataset column as a keyword argument, so the rewards
read `expected_answer`, `family`, `tests` and `reasoning` from the prompt rows that
`training.data.prompt_rows` makes.

Verifiers, all from `filters`: math = the last `\boxed{}` after `</think>` vs the gold by
math-verify (`filters.math.compare_answers`); mcq = the option letter
(`filters.answers.extract_mcq_letter`); code = the last Python block run against the asserts in
`filters.code.CodeExec`'s sandbox; instruct = the exact reply.

    >>> accuracy_reward(["<think>\n2+2\n</think>\n\n\\boxed{4}"], expected_answer=["4"], family=["math"])
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curation.record import Record
from filters.answers import extract_boxed, extract_mcq_letter, strip_think
from filters.format import ThinkFormat
from filters.instructions import completion_text  # the one rule for trl completions

VERIFIED_FAMILIES = ("math", "mcq", "code", "instruct")


def _column(values: Sequence[Any] | None, n: int, default: Any) -> list[Any]:
    if values is None:
        return [default] * n
    if len(values) != n:
        raise ValueError(f"column has {len(values)} values for {n} completions")
    return list(values)


def _math_ok(answer: str, gold: str) -> bool:
    from filters.math import compare_answers  # math-verify imports sympy

    boxed = extract_boxed(answer)
    return bool(boxed) and compare_answers(boxed, gold) == "equal"


def _code_passes(texts: list[str], tests: list[str]) -> list[bool]:
    """Each completion's last Python block against its asserts, in the sandbox, in one batch."""
    from filters.code import CodeExec

    runs = [
        Record(id=str(i), input=[], output=strip_think(t), meta={"tests": tt})
        for i, (t, tt) in enumerate(zip(texts, tests, strict=True))
    ]
    result = CodeExec(min_pass_rate=1.0, time_limit_s=4.0).judge(runs)
    kept = {r.id for r in result.kept}
    return [r.id in kept for r in runs]


def accuracy_reward(
    completions: Sequence[Any],
    expected_answer: Sequence[str | None],
    family: Sequence[str] | None = None,
    tests: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the final answer (text after `</think>`) is right, 0.0 when wrong, None when
    the row has no gold answer or an unknown family. `family` defaults to math."""
    n = len(completions)
    texts = [completion_text(c) for c in completions]
    golds = _column(expected_answer, n, None)
    families = _column(family, n, "math")
    test_lines = _column(tests, n, "")
    out: list[float | None] = [None] * n
    code_rows = []
    for i, (text, gold, fam) in enumerate(zip(texts, golds, families, strict=True)):
        gold = (gold or "").strip()
        if fam not in VERIFIED_FAMILIES or (fam != "code" and not gold):
            continue
        answer = strip_think(text)
        if fam == "math":
            out[i] = float(_math_ok(answer, gold))
        elif fam == "mcq":
            out[i] = float(extract_mcq_letter(answer) == gold)
        elif fam == "instruct":
            out[i] = float(answer == gold)
        elif test_lines[i].strip():
            code_rows.append(i)
    if code_rows:
        passed = _code_passes([texts[i] for i in code_rows], [test_lines[i] for i in code_rows])
        for i, ok in zip(code_rows, passed, strict=True):
            out[i] = float(ok)
    return out


def format_reward(
    completions: Sequence[Any], reasoning: Sequence[str] | None = None, **kwargs: Any
) -> list[float | None]:
    """1.0 when the completion has the think format its toggle asks for (`filters.think_format`:
    one non-empty `<think>` block first and an answer after it when "on", no tags when "off"),
    else 0.0; None for a toggle that is neither. `reasoning` defaults to "on"."""
    check = ThinkFormat()
    toggles = _column(reasoning, len(completions), "on")
    out: list[float | None] = []
    for completion, toggle in zip(completions, toggles, strict=True):
        if toggle not in ("on", "off"):
            out.append(None)
            continue
        row = Record(id="", input=[], output=completion_text(completion), reasoning=toggle)
        out.append(1.0 if check.keep(row) is True else 0.0)
    return out


REWARDS = {"accuracy": accuracy_reward, "format": format_reward}

__all__ = ["REWARDS", "accuracy_reward", "completion_text", "format_reward"]
