"""`filters.math_problem`: drop math problems that cannot make verifiable training data.

The paper (arXiv 2505.00949 §3.1.1, after OpenMathReasoning) removed proofs, multiple-choice and
yes/no questions and problems without an extractable final answer before generating solutions,
since none of them can be checked against a gold answer. Each rule is a switch. Runs on source
rows, before any model call, so unsuitable problems cost nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter

_PROOF = re.compile(
    r"\b(prove|proof|show that|demonstrate that|justify (?:why|that))\b", re.IGNORECASE
)
_OPTIONS = re.compile(r"(?:^|\s)\(?[A-E][).:]\s+\S", re.MULTILINE)
_YES_NO_GOLD = {"yes", "no", "true", "false"}
_YES_NO_QUESTION = re.compile(
    r"^\s*(is|are|does|do|can|will|was|were|has|have)\b[^?]*\?\s*$", re.IGNORECASE | re.MULTILINE
)


@register_stage("filters.math_problem")
@dataclass
class MathProblem(Filter):
    """Reads the last user turn and `expected_answer`; drops with `problem_*` reasons."""

    drop_proofs: bool = True  # "prove that ..." has no single final answer
    drop_multiple_choice: bool = True  # a letter is guessable; the math blend wants values
    drop_yes_no: bool = True  # a coin flip passes a yes/no check half the time
    require_answer: bool = True  # no gold answer, nothing to verify against

    requires: ClassVar[tuple[str, ...]] = ("input",)

    def keep(self, record: Record) -> bool | Drop:
        prompt = next((m["content"] for m in reversed(record.input) if m["role"] == "user"), "")
        gold = (record.expected_answer or "").strip()
        if self.require_answer and not gold:
            return Drop("problem_missing_answer")
        if self.drop_proofs and _PROOF.search(prompt):
            return Drop("problem_proof")
        if self.drop_multiple_choice and len(_OPTIONS.findall(prompt)) >= 2:
            return Drop("problem_multiple_choice")
        if self.drop_yes_no and (
            gold.lower().rstrip(".") in _YES_NO_GOLD or _YES_NO_QUESTION.search(prompt)
        ):
            return Drop("problem_yes_no")
        return True
