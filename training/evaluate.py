"""`thinkmix train eval`: greedy accuracy per task family x toggle, and format compliance.

`data: tinyworld` is the embedded teacher's own held-out benchmark, run by
`curation.teacher.evaluate.evaluate_teacher` (tasks from a seed no training set uses). A store
version is scored the same way on its unique prompts with a gold answer, each asked with
reasoning on and off, and checked by the same `is_correct` / `format_ok`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from curation.generation import GenerationRequest, SamplingParams
from curation.record import SYSTEM_PROMPTS
from curation.store import Store
from curation.teacher.evaluate import (
    EVAL_PER_FAMILY,
    EVAL_SEED,
    evaluate_teacher,
    format_ok,
    held_out_request,
    is_correct,
)
from curation.teacher.paths import resolve_model
from curation.tinyworld import Task, generate
from training.data import prompt_rows

TINYWORLD = "tinyworld"


def evaluate_model(
    model: str,
    data: str = TINYWORLD,
    store: Store | None = None,
    per_family: int = EVAL_PER_FAMILY,
    max_tokens: int = 320,
) -> dict[str, Any]:
    """{"accuracy": {family: {on, off}}, "format": {...}, "per_family": n, ...}."""
    path = resolve_model(model)
    if data == TINYWORLD:
        return {**evaluate_teacher(path, per_family=per_family, max_tokens=max_tokens),
                "data": TINYWORLD}  # fmt: skip
    if store is None:
        raise ValueError(f"data {data!r} is a version: pass the store it lives in")
    return _evaluate_version(path, store, data, per_family, max_tokens)


def _evaluate_version(
    path: Path, store: Store, data: str, per_family: int, max_tokens: int
) -> dict[str, Any]:
    from generators.transformers_backend import TransformersBackend

    dataset, version = store.resolve(data)
    rows = prompt_rows(store.read_records(f"{dataset}/{version}"), reasoning="both")
    taken: dict[tuple[str, str], int] = {}
    jobs = []
    for row in rows:
        key = (row["family"], row["reasoning"])
        if taken.get(key, 0) >= per_family:
            continue
        taken[key] = taken.get(key, 0) + 1
        task = Task(row["family"], row["row_id"], row["prompt"][-1]["content"],
                    row["expected_answer"], "", "", row.get("tests", ""))  # fmt: skip
        jobs.append((task, row["reasoning"], row["prompt"]))
    if not jobs:
        raise ValueError(f"{dataset}/{version}: no rows with an expected_answer to evaluate")
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    backend = TransformersBackend(model=str(path))
    start = time.monotonic()
    responses = backend.generate_sync([GenerationRequest.build(p, greedy) for _, _, p in jobs])
    seconds = time.monotonic() - start
    right: dict[str, dict[str, float]] = {}
    fmt: dict[str, dict[str, float]] = {}
    for (task, toggle, _), response in zip(jobs, responses, strict=True):
        n = taken[(task.family, toggle)]
        right.setdefault(task.family, {})[toggle] = (
            right.get(task.family, {}).get(toggle, 0.0) + is_correct(task, response.text) / n
        )
        fmt.setdefault(task.family, {})[toggle] = (
            fmt.get(task.family, {}).get(toggle, 0.0) + format_ok(response.text, toggle == "on") / n
        )
    rounded = {
        name: {f: {t: round(v, 3) for t, v in sorted(row.items())} for f, row in table.items()}
        for name, table in (("accuracy", right), ("format", fmt))
    }
    return {
        **rounded,
        "counts": {f"{f}/{t}": n for (f, t), n in sorted(taken.items())},
        "per_family": per_family,
        "data": f"{dataset}/{version}",
        "samples_per_second": round(len(jobs) / seconds, 2),
    }


def family_accuracy(
    model: str,
    family: str = "math",
    toggle: str = "on",
    n: int = 400,
    seed: int = EVAL_SEED,
    max_tokens: int = 320,
) -> dict[str, Any]:
    """Greedy accuracy and format compliance on `n` held-out tinyworld tasks of one family and
    toggle (tasks and prompts as `evaluate_teacher` makes them), with the binomial standard
    error and each task's verdict (`correct`, `formatted`: 0/1 in task order)."""
    from generators.transformers_backend import TransformersBackend

    if toggle not in SYSTEM_PROMPTS:
        raise ValueError(f"toggle must be on or off, got {toggle!r}")
    tasks = generate(family, n, seed)
    requests = [held_out_request(task, toggle, max_tokens) for task in tasks]
    backend = TransformersBackend(model=str(resolve_model(model)), batch_size=256)
    responses = backend.generate_sync(requests)
    backend.close()
    correct = [int(is_correct(t, r.text)) for t, r in zip(tasks, responses, strict=True)]
    formatted = [int(format_ok(r.text, toggle == "on")) for r in responses]
    accuracy = sum(correct) / n
    return {
        "family": family,
        "toggle": toggle,
        "n": n,
        "seed": seed,
        "accuracy": round(accuracy, 4),
        "stderr": round(math.sqrt(accuracy * (1 - accuracy) / n), 4),
        "format": round(sum(formatted) / n, 4),
        "correct": correct,
        "formatted": formatted,
    }


def paired_difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """after - before accuracy on the same tasks (`family_accuracy` reports of one seed and n),
    with the standard error of the mean per-task difference and the tasks gained and lost."""
    if (before["family"], before["toggle"], before["n"], before["seed"]) != (
        after["family"], after["toggle"], after["n"], after["seed"]
    ):  # fmt: skip
        raise ValueError("paired_difference needs two reports on the same tasks")
    diffs = [b - a for a, b in zip(before["correct"], after["correct"], strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / max(1, n - 1)
    return {
        "diff": round(mean, 4),
        "stderr": round(math.sqrt(var / n), 4),
        "gained": sum(d > 0 for d in diffs),
        "lost": sum(d < 0 for d in diffs),
    }


def overall(report: dict[str, Any], table: str = "accuracy") -> dict[str, float]:
    """Mean over families per toggle, and over everything ("all")."""
    rows = report[table].values()
    out = {}
    for toggle in ("on", "off"):
        values = [row[toggle] for row in rows if toggle in row]
        if values:
            out[toggle] = round(sum(values) / len(values), 3)
    if out:
        out["all"] = round(sum(out.values()) / len(out), 3)
    return out


__all__ = ["TINYWORLD", "evaluate_model", "family_accuracy", "overall", "paired_difference"]
