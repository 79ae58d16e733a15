"""Addition and subtraction word problems with a digit-by-digit trace and a boxed answer.

Operands have two digits: with three, the ~1M-parameter teacher reached only 6% (it lost track of
carries and borrows), too low for filters and curricula to have anything to keep.
"""

from __future__ import annotations

import random

from curation.tinyworld.task import Task

NAMES = ["Tom", "Ana", "Ben", "Mia", "Sam", "Lea", "Max", "Ivy", "Leo", "Zoe", "Eli", "Amy"]
OBJECTS = ["apples", "coins", "books", "cards", "pens", "shells", "stamps", "marbles", "cups"]

ADD = [
    "{n} has {a} {o} and gets {b} more. How many {o} does {n} have?",
    "{n} had {a} {o} and found {b} more. How many {o} now?",
]
SUB = [
    "{n} has {a} {o} and gives away {b}. How many {o} are left?",
    "{n} had {a} {o} and lost {b}. How many {o} remain?",
]


def _add_trace(a: int, b: int) -> str:
    x, y = f"{a:02d}", f"{b:02d}"
    lines, carry = [f"{x}+{y}"], 0
    for i in (1, 0):
        s = int(x[i]) + int(y[i]) + carry
        lines.append(f"{x[i]}+{y[i]}+{carry}={s} w{s % 10} c{s // 10}")
        carry = s // 10
    lines.append(f"={a + b}")
    return "\n".join(lines)


def _sub_trace(a: int, b: int) -> str:
    x, y = f"{a:02d}", f"{b:02d}"
    lines, borrow = [f"{x}-{y}"], 0
    for i in (1, 0):
        d = int(x[i]) - int(y[i]) - borrow
        nb = 1 if d < 0 else 0
        lines.append(f"{x[i]}-{y[i]}-{borrow}={d + 10 * nb} w{d + 10 * nb} b{nb}")
        borrow = nb
    lines.append(f"={a - b}")
    return "\n".join(lines)


def make(rng: random.Random) -> Task:
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        prompt = rng.choice(ADD).format(n=name, o=obj, a=a, b=b)
        result, trace = a + b, _add_trace(a, b)
        answer = f"{name} has \\boxed{{{result}}} {obj}."
    else:
        a, b = max(a, b), min(a, b)
        prompt = rng.choice(SUB).format(n=name, o=obj, a=a, b=b)
        result, trace = a - b, _sub_trace(a, b)
        answer = f"{name} has \\boxed{{{result}}} {obj} left."
    return Task("math", "", prompt, str(result), trace, answer)
