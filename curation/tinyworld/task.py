"""The one task type every tinyworld family produces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Task:
    """One procedural problem with its gold answer and a worked solution.

    `expected_answer` is what a verifier compares against: the number (math), the letter (mcq),
    the function name (code) or the exact reply (instruct). `tests` holds assert lines for code.
    """

    family: str
    task_id: str
    prompt: str
    expected_answer: str
    trace: str
    answer_text: str
    tests: str = ""
