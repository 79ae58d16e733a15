"""Held-out accuracy of a teacher on tinyworld tasks, per family and reasoning toggle.

Tasks come from a seed the training data never uses, the backend decodes greedily, and each
family is checked its own way: the boxed number (math), the letter (mcq), the function's asserts
run in a subprocess (code), the exact reply (instruct). Format compliance is counted apart:
`<think>...</think>` then a non-empty answer when reasoning is on, no `<think>` when it is off.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from curation.record import SYSTEM_PROMPTS
from curation.tinyworld import FAMILIES, Task, generate
from generators.base import GenerationRequest, SamplingParams

EVAL_SEED = 12345  # disjoint from the training seeds (0..)
EVAL_PER_FAMILY = 50  # the default held-out set; `decontam`'s `tinyworld` benchmark holds it
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_LETTER = re.compile(r"\(([A-D])\)")
_CODE = re.compile(r"```python\n(.*?)```", re.S)


def final_answer(text: str) -> str:
    """The text after the last `</think>`, or all of it when there is none."""
    return text.rsplit("</think>", 1)[-1].strip()


def format_ok(text: str, reasoning: bool) -> bool:
    if not reasoning:
        return "<think>" not in text and bool(text.strip())
    return (
        text.startswith("<think>\n")
        and text.count("<think>") == 1
        and text.count("</think>") == 1
        and bool(final_answer(text))
    )


def is_correct(task: Task, text: str, timeout: float = 5.0) -> bool:
    answer = final_answer(text)
    if task.family == "math":
        found = _BOXED.findall(answer)
        return bool(found) and found[-1].strip() == task.expected_answer
    if task.family == "mcq":
        found = _LETTER.findall(answer)
        return bool(found) and found[-1] == task.expected_answer
    if task.family == "code":
        found = _CODE.findall(answer)
        return bool(found) and run_tests(found[-1], task.tests, timeout)
    return answer == task.expected_answer


def run_tests(solution: str, tests: str, timeout: float = 5.0) -> bool:
    """Exec the solution and its asserts in a fresh interpreter; pass = exit status 0."""
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", f"{solution}\n{tests}\n"],
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def held_out_request(task: Task, toggle: str, max_tokens: int = 320) -> GenerationRequest:
    """The greedy request that asks `task` under the `toggle` system prompt ("on" / "off")."""
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    messages = [
        {"role": "system", "content": SYSTEM_PROMPTS[toggle]},
        {"role": "user", "content": task.prompt},
    ]
    return GenerationRequest.build(messages, greedy)


def evaluate_teacher(
    model_dir: str | Path,
    per_family: int = EVAL_PER_FAMILY,
    seed: int = EVAL_SEED,
    max_tokens: int = 320,
) -> dict[str, Any]:
    """Greedy held-out accuracy and format compliance per family x reasoning on/off."""
    from generators.transformers_backend import TransformersBackend

    backend = TransformersBackend(model=str(model_dir))
    jobs = [
        (task, toggle)
        for family in FAMILIES
        for task in generate(family, per_family, seed)
        for toggle in ("on", "off")
    ]
    requests = [held_out_request(task, toggle, max_tokens) for task, toggle in jobs]
    start = time.monotonic()
    responses = backend.generate_sync(requests)
    seconds = time.monotonic() - start
    accuracy = {f: {"on": 0.0, "off": 0.0} for f in FAMILIES}
    formats = {f: {"on": 0.0, "off": 0.0} for f in FAMILIES}
    for (task, toggle), response in zip(jobs, responses, strict=True):
        accuracy[task.family][toggle] += is_correct(task, response.text) / per_family
        formats[task.family][toggle] += format_ok(response.text, toggle == "on") / per_family
    rounded = {
        name: {f: {t: round(v, 3) for t, v in row.items()} for f, row in table.items()}
        for name, table in (("accuracy", accuracy), ("format", formats))
    }
    return {
        **rounded,
        "per_family": per_family,
        "seed": seed,
        "samples_per_second": round(len(requests) / seconds, 2),
    }
