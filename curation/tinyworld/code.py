"""Tiny Python functions: the answer is a fenced solution, the tests are assert lines."""

from __future__ import annotations

import random

from curation.tinyworld.task import Task


def _affine(rng: random.Random) -> tuple[str, str, str, list[tuple[str, str]]]:
    k, m = rng.randint(2, 9), rng.randint(1, 30)
    name = rng.choice(["calc", "scale", "shift", "compute"]) + f"_{k}"
    return (
        f"Write a function {name}(x) that returns x times {k} plus {m}.",
        name,
        f"x * {k} + {m}",
        [(str(v), str(v * k + m)) for v in (0, 3, 10)],
    )


def _add(rng: random.Random) -> tuple[str, str, str, list[tuple[str, str]]]:
    k = rng.randint(2, 99)
    name = rng.choice(["add", "plus", "inc"]) + f"_{k}"
    return (
        f"Write a function {name}(x) that returns x plus {k}.",
        name,
        f"x + {k}",
        [(str(v), str(v + k)) for v in (0, 5, 40)],
    )


_LISTS = {
    "max": ("the max of a list", "max(x)", lambda v: max(v)),
    "min": ("the min of a list", "min(x)", lambda v: min(v)),
    "sum": ("the sum of a list", "sum(x)", lambda v: sum(v)),
    "len": ("the length of a list", "len(x)", lambda v: len(v)),
    "first": ("the first item of a list", "x[0]", lambda v: v[0]),
    "last": ("the last item of a list", "x[-1]", lambda v: v[-1]),
}
_STRINGS = {
    "reverse": ("a string reversed", "x[::-1]", lambda s: s[::-1]),
    "upper": ("a string in uppercase", "x.upper()", lambda s: s.upper()),
    "double": ("a string repeated twice", "x * 2", lambda s: s * 2),
}


def _builtin(rng: random.Random) -> tuple[str, str, str, list[tuple[str, str]]]:
    if rng.random() < 0.6:
        key = rng.choice(sorted(_LISTS))
        text, expr, fn = _LISTS[key]
        cases = [[rng.randint(1, 50) for _ in range(rng.randint(1, 4))] for _ in range(3)]
    else:
        key = rng.choice(sorted(_STRINGS))
        text, expr, fn = _STRINGS[key]
        cases = [rng.choice(["ab", "cat", "xyz", "hello", "go"]) for _ in range(3)]
    name = f"{key}_of" if key in _LISTS else f"{key}_str"
    return (
        f"Write a function {name}(x) that returns {text}.",
        name,
        expr,
        [(repr(c), repr(fn(c))) for c in cases],
    )


def make(rng: random.Random) -> Task:
    prompt, name, expr, cases = rng.choice([_affine, _add, _builtin])(rng)
    solution = f"def {name}(x):\n    return {expr}"
    arg, out = cases[0]
    trace = f"name: {name}, one arg x\nreturn {expr}\ncheck {name}({arg}) == {out}"
    tests = "\n".join(f"assert {name}({a}) == {o}" for a, o in cases)
    return Task("code", "", prompt, name, trace, f"```python\n{solution}\n```", tests)
