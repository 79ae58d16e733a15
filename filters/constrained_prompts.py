"""Procedural prompts with verifiable constraints, small enough for the embedded teacher.

`constrained_prompts(n, seed)` takes tinyworld instruction tasks ("Repeat the word dog 3
times.") and adds one or two IFEval-style constraints stated in English after the task ("Answer
in uppercase letters only. Use the word "dog" exactly 3 times."). Half of the prompts carry a
constraint the plain tinyworld reply breaks (uppercase, quotes, an extra closing word), so an RL
reward has something to teach; the other constraints hold for the reply the task asks for
(word counts, start/end words, no commas, keyword counts), so a model that does the task well
already meets them. Every prompt's `expected_answer` meets all its constraints (checked here).

Deterministic for a seed; seeds disjoint from training data give held-out prompts.
"""

from __future__ import annotations

import random
from typing import Any

from curation.tinyworld import generate
from curation.tinyworld.instruct import WORDS
from filters.ifeval import VERIFIERS

TRANSFORM_SHARE = 0.5  # share of prompts with a constraint the plain reply breaks


def _transforms(reply: str, rng: random.Random) -> list[tuple[dict[str, Any], str]]:
    """(constraint, reply changed to meet it) pairs that apply to `reply`."""
    out: list[tuple[dict[str, Any], str]] = [({"kind": "quotation"}, f'"{reply}"')]
    if reply != reply.upper():
        out.append(({"kind": "uppercase"}, reply.upper()))
    word = rng.choice(["done", "end", "ok"])
    out.append(({"kind": "ends_with", "phrase": word}, f"{reply} {word}"))
    return out


def _natural(reply: str, task_prompt: str, rng: random.Random) -> list[dict[str, Any]]:
    """Constraints that `reply` already meets, worded from it."""
    words = reply.replace('"', " ").split()
    n = len(words)
    other = rng.choice([w for w in WORDS if w not in reply.lower() and w not in task_prompt])
    found = [
        {"kind": "word_count", "relation": "at most", "n": n + rng.randint(0, 2)},
        {"kind": "word_count", "relation": "exactly", "n": n},
        {"kind": "starts_with", "phrase": words[0]},
        {"kind": "ends_with", "phrase": words[-1]},
        {"kind": "no_commas"},
        {"kind": "forbidden_words", "words": [other]},
        {"kind": "sentence_count", "relation": "at most", "n": 1},
    ]
    if reply == reply.lower():
        found.append({"kind": "lowercase"})
    if n > 1 and len(set(words)) == 1:  # a "repeat" task
        found.append({"kind": "keyword_frequency", "keyword": words[0], "relation": "exactly",
                      "n": n})  # fmt: skip
    return found


def _describe(constraint: dict[str, Any]) -> str:
    params = {k: v for k, v in constraint.items() if k != "kind"}
    verifier = VERIFIERS[constraint["kind"]]
    return verifier.describe(**verifier.parse(params))


def _holds(reply: str, constraint: dict[str, Any]) -> bool:
    verifier = VERIFIERS[constraint["kind"]]
    return verifier.check(reply, **verifier.parse(constraint))


def constrained_prompts(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` prompts, each `{"id", "prompt", "constraints", "expected_answer", "family", "task"}`.

    `prompt` is the user turn (task + constraint sentences), `constraints` a list of constraint
    dicts (`filters.instructions` format), `expected_answer` a reply meeting all of them,
    `task` the tinyworld prompt alone. The same list for the same (n, seed) on every machine.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(f"thinkmix-ifeval-{seed}")
    rows = []
    for index, task in enumerate(generate("instruct", n, seed)):
        reply, constraints = task.expected_answer, []
        if rng.random() < TRANSFORM_SHARE:
            constraint, reply = rng.choice(_transforms(reply, rng))
            constraints.append(constraint)
        taken = {c["kind"] for c in constraints}
        natural = [
            c
            for c in _natural(reply, task.prompt, rng)
            if c["kind"] not in taken and _holds(reply, c)
        ]
        constraints.append(rng.choice(natural))
        assert all(_holds(reply, c) for c in constraints), (task.prompt, constraints, reply)
        wording = " ".join(_describe(c) for c in constraints)
        rows.append(
            {
                "id": f"ifeval-{seed}-{index}",
                "prompt": f"{task.prompt} {wording}",
                "constraints": constraints,
                "expected_answer": reply,
                "family": "ifeval",
                "task": task.prompt,
            }
        )
    return rows


__all__ = ["constrained_prompts"]
