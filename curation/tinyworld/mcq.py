"""Multiple-choice questions with four options; the answer is a letter."""

from __future__ import annotations

import random

from curation.tinyworld.task import Task

LETTERS = "ABCD"


def _options(rng: random.Random, correct: int, distractors: list[int]) -> tuple[str, int]:
    values = [correct, *distractors[:3]]
    rng.shuffle(values)
    return " ".join(f"{L}) {v}" for L, v in zip(LETTERS, values, strict=True)), values.index(
        correct
    )


def _extreme(rng: random.Random) -> tuple[str, str, int]:
    values = rng.sample(range(10, 1000), 4)
    largest = rng.random() < 0.5
    word = "largest" if largest else "smallest"
    best = max(values) if largest else min(values)
    opts = " ".join(f"{L}) {v}" for L, v in zip(LETTERS, values, strict=True))
    steps, cur = [], 0
    for i in range(1, 4):
        better = values[i] > values[cur] if largest else values[i] < values[cur]
        steps.append(
            f"{LETTERS[cur]}{values[cur]} vs {LETTERS[i]}{values[i]}: {LETTERS[i if better else cur]}"
        )
        cur = i if better else cur
    prompt = f"Which number is {word}? {opts}"
    return prompt, "\n".join(steps), values.index(best)


def _sum(rng: random.Random) -> tuple[str, str, int]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    s = a + b
    wrong = rng.sample([s + 1, s - 1, s + 10, s - 10, s + 11, s - 9], 3)
    opts, idx = _options(rng, s, wrong)
    ones = a % 10 + b % 10
    trace = f"{a % 10}+{b % 10}={ones} w{ones % 10} c{ones // 10}\n"
    trace += (
        f"{a // 10}+{b // 10}+{ones // 10}={a // 10 + b // 10 + ones // 10}\n={s}: {LETTERS[idx]}"
    )
    return f"What is {a}+{b}? {opts}", trace, idx


def make(rng: random.Random) -> Task:
    prompt, trace, idx = rng.choice([_extreme, _sum])(rng)
    letter = LETTERS[idx]
    return Task("mcq", "", prompt, letter, trace, f"The answer is ({letter}).")
