"""Perturbed copies of benchmark items and unrelated code, for the decontamination tests."""

from __future__ import annotations

import inspect
import keyword
import re

_DEF = re.compile(r"def\s+(\w+)\s*\(([^)]*)\)")
_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)(\1)', re.S)


def reformat(text: str) -> str:
    """Layout-only changes: quote style, 2-space indents, spaces inside brackets, no blanks."""
    text = text.replace('"""', "'''").replace("    ", "  ")
    text = re.sub(r"([(\[,])", r"\1 ", text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def rename(text: str) -> str:
    """Rename every function and parameter name, everywhere it appears (docstring included)."""
    names = []
    for fn, params in _DEF.findall(text):
        names.append(fn)
        names += [p.split(":")[0].split("=")[0].strip().lstrip("*") for p in params.split(",")]
    names = [n for n in dict.fromkeys(names) if n and not keyword.iskeyword(n)]
    for i, name in enumerate(names):
        text = re.sub(rf"\b{re.escape(name)}\b", f"v{i}_renamed", text)
    return text


def reword(text: str) -> str:
    """Replace the docstring's prose (not its >>> examples) with other words."""

    def swap(m: re.Match) -> str:
        lines = m.group(2).splitlines()
        kept = [ln for ln in lines if ln.strip().startswith(">>>")]
        outs = [lines[i + 1] for i, ln in enumerate(lines[:-1]) if ln.strip().startswith(">>>")]
        examples = [x for pair in zip(kept, outs, strict=True) for x in pair]
        prose = "    Implement the behaviour the examples below show, for any valid input."
        return m.group(1) + "\n".join([prose, *examples]) + "\n    " + m.group(3)

    return _DOCSTRING.sub(swap, text, count=1)


def embed_in_answer(text: str) -> str:
    """The item quoted inside a longer chat answer."""
    return (
        "Sure! Let me restate the task first, then walk through a solution step by step.\n\n"
        f"```python\n{text}    pass  # solution below\n```\n\n"
        "We iterate over the input once, keeping the state we need, and return early when "
        "the condition holds. The complexity is linear in the size of the input, and memory "
        "stays constant apart from the output. Edge cases such as empty inputs are handled by "
        "the initial checks. I hope this helps; let me know if you want a version with tests."
    )


def stdlib_functions(limit: int = 150) -> list[str]:
    """Sources of Python standard-library functions: real code unrelated to HumanEval."""
    import bisect, calendar, fractions, heapq, json.decoder, shlex, statistics, textwrap  # noqa: E401, I001

    out = []
    for module in (textwrap, statistics, heapq, bisect, shlex, calendar, fractions, json.decoder):
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__:
                try:
                    out.append(inspect.getsource(fn))
                except (OSError, TypeError):
                    continue
    return out[:limit]


PROSE = [
    "The committee met on Tuesday to discuss the budget for next year and agreed to postpone "
    "the decision until the auditors have finished reviewing the accounts of the last quarter.",
    "Photosynthesis converts light energy into chemical energy stored in glucose; the light "
    "reactions take place in the thylakoid membranes and the Calvin cycle in the stroma.",
    "Given a list of integers, many interview questions ask you to return a new list in which "
    "every element is doubled, or to find the two numbers whose sum is closest to a target.",
]
