"""Simple instructions whose exact reply is known."""

from __future__ import annotations

import random

from curation.tinyworld.task import Task

WORDS = [
    "cat", "dog", "apple", "table", "house", "river", "green", "music", "bird", "chair",
    "lemon", "cloud", "stone", "tiger", "plant", "water", "light", "bread", "paper", "smile",
    "ocean", "train", "horse", "candy", "night", "sugar", "robot", "pizza", "mouse", "grape",
]  # fmt: skip


def make(rng: random.Random) -> Task:
    word = rng.choice(WORDS)
    kind = rng.choice(["repeat", "upper", "reverse", "spell"])
    if kind == "repeat":
        n = rng.randint(2, 5)
        prompt = f"Repeat the word {word} {n} times."
        reply = " ".join([word] * n)
        trace = f"word {word}, {n} times\n" + "\n".join(f"{i} {word}" for i in range(1, n + 1))
    elif kind == "upper":
        prompt = f"Write the word {word} in uppercase."
        reply = word.upper()
        trace = f"word {word}\n" + " ".join(f"{c}>{c.upper()}" for c in word)
    elif kind == "reverse":
        prompt = f"Write the word {word} backwards."
        reply = word[::-1]
        trace = f"letters {'-'.join(word)}\nlast to first {'-'.join(reversed(word))}"
    else:
        prompt = f"Spell the word {word} with dashes."
        reply = "-".join(word)
        trace = f"word {word}, {len(word)} letters\n" + " ".join(word)
    return Task("instruct", "", prompt, reply, trace, reply)
