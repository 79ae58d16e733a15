"""Instruction following: verifiable constraints per row, a filter stage and an RL reward.

**Constraint format.** A row's constraints live in `meta["constraints"]` as a JSON string (the
`meta` column holds strings only) of a list of objects, each a `kind` from
`filters.ifeval.VERIFIERS` plus that kind's fields:

    [{"kind": "word_count", "relation": "at most", "n": 5},
     {"kind": "starts_with", "phrase": "dog"}]

The prompt states each constraint in English (`describe_constraint` gives the wording the
built-in prompts use). Constraints are checked on the *answer*: the text after `</think>` when
reasoning is on, the whole output when off (`filters.answers.strip_think`).

- `parse_constraints(value)`: a JSON string or a list of dicts -> checked constraints; errors
  name the index and field (`constraints[1]: constraint word_count: field n: ...`).
- `check_constraints(text, constraints)`: one bool per constraint.
- `filters.instruction_following`: drops rows that break a constraint, reason
  `instruction_violated:<kind>` (the first broken kind), score = share of constraints met.
- `instruction_reward(completions, constraints, **kwargs)`: trl-style batch reward, the share
  of constraints met; `instruction_reward_strict`: 1.0 only when all are met. None = the row
  has no constraints (cannot judge).
- `constrained_prompts(n, seed)`: held-out prompts with constraints for RL and tests (in
  `filters.constrained_prompts`, re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import strip_think
from filters.constrained_prompts import constrained_prompts
from filters.ifeval import VERIFIERS

CONSTRAINTS_KEY = "constraints"


def parse_constraint(raw: Any) -> dict[str, Any]:
    """One constraint dict -> `{"kind": ..., **checked params}`; raises ValueError."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object with a kind, got {raw!r:.60}")
    kind = raw.get("kind")
    if kind not in VERIFIERS:
        raise ValueError(f"kind: unknown constraint kind {kind!r}; known: {', '.join(VERIFIERS)}")
    return {"kind": kind, **VERIFIERS[kind].parse(raw)}


def parse_constraints(value: Any) -> list[dict[str, Any]]:
    """A JSON string or a list of constraint dicts -> checked constraints ([] for None / "")."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"constraints: invalid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(value, list):
        raise ValueError(f"constraints: expected a list of objects, got {type(value).__name__}")
    out = []
    for i, raw in enumerate(value):
        try:
            out.append(parse_constraint(raw))
        except ValueError as exc:
            raise ValueError(f"constraints[{i}]: {exc}") from None
    return out


def check_constraints(text: str, constraints: list[dict[str, Any]]) -> list[bool]:
    """One verdict per (already parsed) constraint on `text` (the answer, think block removed)."""
    out = []
    for constraint in constraints:
        params = {k: v for k, v in constraint.items() if k != "kind"}
        out.append(bool(VERIFIERS[constraint["kind"]].check(text, **params)))
    return out


def describe_constraint(constraint: dict[str, Any]) -> str:
    """The English sentence that states a (parsed) constraint in a prompt."""
    params = {k: v for k, v in constraint.items() if k != "kind"}
    return VERIFIERS[constraint["kind"]].describe(**params)


def constraints_json(constraints: list[dict[str, Any]]) -> str:
    """The `meta["constraints"]` string for a list of constraints (checked first)."""
    return json.dumps(parse_constraints(constraints), sort_keys=True)


@register_stage("filters.instruction_following")
@dataclass
class InstructionFollowing(Filter):
    """Keeps rows whose answer meets every constraint in `meta["constraints"]`.

    Reads `output` and `meta.constraints` (format in the module docstring); writes
    `meta.instruction_violations` (comma-separated kinds) on dropped rows; the score is the share
    of constraints met. Reasons: `instruction_violated:<kind>` (the first broken one),
    `instruction_constraints_missing` (no constraints, unless `keep_without_constraints`).
    A row whose constraints do not parse raises ValueError naming the row and the field: that
    is a data bug, fixed at the source.

    Example: constraints `[{"kind": "uppercase"}]`, output "<think>cat</think>CAT" -> kept;
    output "cat" -> Drop("instruction_violated:uppercase").
    """

    keep_without_constraints: bool = False  # keep rows that carry no constraints

    requires: ClassVar[tuple[str, ...]] = ("output", "meta.constraints")
    provides: ClassVar[tuple[str, ...]] = ("meta.instruction_violations",)

    def keep(self, record: Record) -> bool | Drop:
        try:
            constraints = parse_constraints(record.meta.get(CONSTRAINTS_KEY))
        except ValueError as exc:
            where = f"{record.source}:{record.source_id}" if record.source else record.id
            raise ValueError(f"row {where}: meta.{exc}") from None
        if not constraints:
            return (
                True if self.keep_without_constraints else Drop("instruction_constraints_missing")
            )
        verdicts = check_constraints(strip_think(record.output), constraints)
        broken = [c["kind"] for c, ok in zip(constraints, verdicts, strict=True) if not ok]
        if not broken:
            return True
        record.meta["instruction_violations"] = ",".join(broken)
        return Drop(f"instruction_violated:{broken[0]}", score=sum(verdicts) / len(verdicts))


def completion_text(completion: Any) -> str:
    """trl gives a string (standard prompts) or a list of messages (conversational prompts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if m.get("role") == "assistant")
    raise TypeError(f"completion must be a str or a list of messages, got {type(completion)}")


def _shares(completions: Sequence[Any], constraints: Sequence[Any]) -> list[float | None]:
    if len(constraints) != len(completions):
        raise ValueError(
            f"constraints has {len(constraints)} values for {len(completions)} completions"
        )
    out: list[float | None] = []
    for i, (completion, value) in enumerate(zip(completions, constraints, strict=True)):
        try:
            parsed = parse_constraints(value)
        except ValueError as exc:
            raise ValueError(f"row {i}: {exc}") from None
        if not parsed:
            out.append(None)
            continue
        verdicts = check_constraints(strip_think(completion_text(completion)), parsed)
        out.append(sum(verdicts) / len(verdicts))
    return out


def instruction_reward(
    completions: Sequence[Any], constraints: Sequence[Any], **kwargs: Any
) -> list[float | None]:
    """The share of a row's constraints the answer meets (0.0 .. 1.0); None without constraints.

    `constraints` is the dataset column: per row a JSON string or a list of constraint dicts.
    The answer is the text after `</think>` (an unclosed `<think>` leaves an empty answer).

        >>> instruction_reward(["CAT"], constraints=['[{"kind": "uppercase"}]'])
        [1.0]
    """
    return _shares(completions, constraints)


def instruction_reward_strict(
    completions: Sequence[Any], constraints: Sequence[Any], **kwargs: Any
) -> list[float | None]:
    """1.0 when the answer meets all of the row's constraints, else 0.0; None without any."""
    return [None if s is None else float(s == 1.0) for s in _shares(completions, constraints)]


__all__ = [
    "CONSTRAINTS_KEY",
    "InstructionFollowing",
    "check_constraints",
    "constrained_prompts",
    "constraints_json",
    "describe_constraint",
    "instruction_reward",
    "instruction_reward_strict",
    "parse_constraint",
    "parse_constraints",
]
