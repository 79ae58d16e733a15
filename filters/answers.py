r"""Pure answer extraction: boxed answers, final-answer lines, MCQ letters, the text after `</think>`.

No stages here, only string functions the filters, rewards and judges share. Each returns the
answer text as written (no normalisation beyond trimming), or None when there is none; deciding
whether two answers are equal is `math_verify`'s job (filters/math.py).

    >>> extract_boxed(r"so \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    >>> strip_think("<think>2+2</think>It is 4.")
    'It is 4.'
    >>> extract_mcq_letter("The answer is (B).")
    'B'
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# `\boxed` or `\fbox` not followed by a letter (so `\boxedx` is another macro), and the spaces
# or tabs after it.
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])[ \t]*")
_BARE_TOKEN = re.compile(r"[^\s$]+")  # `\boxed 5`
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape is two characters, any


def _braced(text: str, start: int) -> str | None:
    """The content of the `{...}` group opening at `text[start]`, or None when never closed.

    Escaped braces (`\\{`, `\\}`) are content, not grouping, so `\\boxed{\\{1,2\\}}` works.
    """
    depth = 0
    for match in _BRACE_OR_ESCAPE.finditer(text, start):
        char = match.group()
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : match.start()]
    return None


def _box_contents(text: str) -> list[str]:
    """Every well-formed box in order; `\\boxed 5` (one bare token) counts as a box too."""
    found = []
    for match in _BOX.finditer(text):
        i = match.end()
        if i < len(text) and text[i] == "{":
            content = _braced(text, i)
        else:
            token = _BARE_TOKEN.match(text, i)
            content = token.group(0) if token else None
        if content is not None:
            found.append(content.strip())
    return found


def extract_boxed(text: str, which: Literal["first", "last"] = "last") -> str | None:
    """The content of the last (or first) `\\boxed{}` / `\\fbox{}` in `text`, or None.

    Nested braces are kept whole (`\\boxed{\\frac{1}{2}}` -> `\\frac{1}{2}`); an empty box gives
    "" so a caller can tell "boxed nothing" from "no box"; an unclosed box is ignored.
    """
    if which not in ("first", "last"):
        raise ValueError(f"extract_boxed: which must be 'first' or 'last', got {which!r}")
    found = _box_contents(text)
    if not found:
        return None
    return found[-1] if which == "last" else found[0]


def strip_think(output: str) -> str:
    """The answer part of an output: the text after the last `</think>`.

    Without any think tags the whole output is the answer (reasoning off). An opened but never
    closed `<think>` (a truncated generation) has no answer part, so this returns "".
    """
    if THINK_CLOSE in output:
        return output.rsplit(THINK_CLOSE, 1)[1].strip()
    if THINK_OPEN in output:
        return ""
    return output.strip()


# "Final answer: 42", "**Final Answer:** $42$", "The final answer is 42.", "The answer is 42.",
# "Answer: 42"; under a "## Final Answer" heading the answer may sit on the next line.
_ANSWER_LINE = re.compile(
    r"(?:\b(?:final\s+)?answer\s+is\b|\b(?:final\s+)?answer[\s*]*[:：]|^[ \t#*]*final\s+answer\b)"
    r"[\s*:：]*(?P<answer>[^\s*:：][^\n]*)",
    re.IGNORECASE | re.MULTILINE,
)
_DELIMITED = re.compile(r"^(?:\$\$?(.*?)\$\$?|\\\((.*?)\\\)|\\\[(.*?)\\\])$", re.DOTALL)


def _clean_answer(answer: str) -> str:
    answer = answer.strip().strip("*").strip().removesuffix(".").rstrip()
    delimited = _DELIMITED.match(answer)
    if delimited:
        answer = next(group for group in delimited.groups() if group is not None).strip()
    return answer


def extract_final_answer_line(text: str) -> str | None:
    """The answer stated in the last "Final answer: X" / "The answer is X." line, or None.

    Trailing periods, bold markers and `$...$` / `\\(...\\)` delimiters are removed; a box
    inside the line wins (`The final answer is $\\boxed{42}$` -> `42`).
    """
    matches = list(_ANSWER_LINE.finditer(text))
    if not matches:
        return None
    answer = matches[-1].group("answer")
    boxed = extract_boxed(answer)
    answer = boxed if boxed is not None else _clean_answer(answer)
    return answer or None


@lru_cache(maxsize=16)
def _mcq_patterns(choices: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    letter = f"([{re.escape(choices)}])"
    stated = re.compile(rf"(?i:\banswer\b(?:\s+is\b)?)[\s*:：]*[(\[]?[\s*]*{letter}(?![A-Za-z0-9])")
    bare = re.compile(rf"^[\s*(\[]*{letter}[\s*)\].:]*$")
    leading = re.compile(rf"^[\s*]*[(\[]?{letter}(?:[)\]]|\*\*|[.:]\s)")
    return stated, bare, leading


_TEXT_MACRO = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$")


def extract_mcq_letter(text: str, choices: str = "ABCD") -> str | None:
    """The chosen option letter, or None. Forms are tried from most to least explicit:

    1. a box: `\\boxed{B}`, `\\boxed{(B)}`, `\\boxed{\\text{B}}`;
    2. the last answer statement: "Answer: B", "The answer is (B).", "**Answer:** **B**";
    3. a last line that is only the letter: "(B)", "**B**", "B)", "B.";
    4. a last line that starts with the option: "(B) 42 m", "B) 42 m".
    Letters are case-sensitive, so "the answer is a prime" picks nothing.
    """
    if not choices or not choices.isalpha():
        raise ValueError(
            f"extract_mcq_letter: choices must be letters like 'ABCD', got {choices!r}"
        )
    stated, bare, leading = _mcq_patterns(choices)
    boxed = extract_boxed(text)
    if boxed is not None:
        macro = _TEXT_MACRO.match(boxed)
        content = macro.group(1) if macro else boxed
        found = bare.match(content) or leading.match(content)
        if found:
            return found.group(1)
    statements = stated.findall(text)
    if statements:
        return statements[-1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    found = bare.match(lines[-1]) or leading.match(lines[-1])
    return found.group(1) if found else None
