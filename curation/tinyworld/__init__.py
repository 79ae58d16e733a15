"""Tinyworld: procedural tasks in every blend's format, small enough for a char-level teacher.

Each family (math word problems, tiny Python functions, MCQs, simple instructions) yields `Task`s
that carry the prompt, the gold answer, a step-by-step `trace` for the `<think>` block and the
final `answer_text`. `generate(family, count, seed)` is deterministic for a seed, so a held-out
set is simply another seed. The embedded teacher (DESIGN §11) is trained on these tasks, and
recipes use them as built-in sources.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from curation.tinyworld import code, instruct, math, mcq
from curation.tinyworld.task import Task

FAMILIES = ("math", "code", "mcq", "instruct")

_MAKERS: dict[str, Callable[[random.Random], Task]] = {
    "math": math.make,
    "code": code.make,
    "mcq": mcq.make,
    "instruct": instruct.make,
}


def generate(family: str, count: int, seed: int) -> list[Task]:
    """`count` tasks of `family`, the same list for the same seed on every machine."""
    if family not in _MAKERS:
        raise ValueError(f"unknown tinyworld family {family!r}; known: {', '.join(FAMILIES)}")
    rng = random.Random(f"tinyworld-{family}-{seed}")  # str seeds are hashed stably (sha512)
    tasks = []
    for index in range(count):
        task = _MAKERS[family](rng)
        task.task_id = f"{family}-{seed}-{index}"
        tasks.append(task)
    return tasks


def format_output(task: Task, reasoning: bool) -> str:
    """The assistant text: `<think>` trace first when reasoning is on, the answer alone when off."""
    if reasoning:
        return f"<think>\n{task.trace}\n</think>\n\n{task.answer_text}"
    return task.answer_text


__all__ = ["FAMILIES", "Task", "format_output", "generate"]
