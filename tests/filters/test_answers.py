"""Answer extraction, table-driven; each row is one tricky form seen in model outputs."""

import random
import re

import pytest

from filters.answers import (
    _box_contents,
    extract_boxed,
    extract_final_answer_line,
    extract_mcq_letter,
    strip_think,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{3}}{2}} done", r"\frac{\sqrt{3}}{2}"),
        (r"\boxed {7}", "7"),
        (r"\fbox{x=3}", "x=3"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{ 12 }", "12"),
        (r"\boxed{}", ""),
        (r"$\boxed 5$", "5"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{\text{Tuesday}}", r"\text{Tuesday}"),
        (r"\boxed{1} and \boxed{2", "1"),  # the unclosed box is ignored
        (r"\boxed{\boxed{3}}", "3"),
        (r"\boxedx{3}", None),  # another macro
        ("no box here", None),
        ("", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_boxed_first():
    assert extract_boxed(r"\boxed{1} then \fbox{2}", which="first") == "1"
    with pytest.raises(ValueError, match="which"):
        extract_boxed(r"\boxed{1}", which="middle")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think>2+2</think>It is 4.", "It is 4."),
        ("<think>a</think>\n\n  4  ", "4"),
        ("<think>a</think><think>b</think>c", "c"),  # answer after the last close
        ("It is 4.", "It is 4."),  # reasoning off
        ("<think>truncated reasoning", ""),  # never closed: no answer part
        ("<think>a</think>", ""),
    ],
)
def test_strip_think(output, expected):
    assert strip_think(output) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final answer: 42", "42"),
        ("The answer is 42.", "42"),
        ("The answer is 4.5.", "4.5"),
        ("**Final Answer:** $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("**Final Answer**: 7", "7"),
        ("The final answer is $\\boxed{12}$.", "12"),
        ("## Final Answer\n\n-3", "-3"),
        ("Answer: x = 2", "x = 2"),
        ("answer is \\(3\\sqrt{2}\\)", "3\\sqrt{2}"),
        ("First I thought the answer is 5.\nFinal answer: 6", "6"),  # the last line wins
        ("I answered the question.", None),
        ("nothing here", None),
        ("Final answer:", None),
    ],
)
def test_extract_final_answer_line(text, expected):
    assert extract_final_answer_line(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(B)", "B"),
        ("Answer: B", "B"),
        ("**B**", "B"),
        ("B)", "B"),
        ("The answer is B.", "B"),
        ("The correct answer is **(C)**.", "C"),
        ("**Answer:** **D**", "D"),
        ("\\boxed{A}", "A"),
        ("\\boxed{\\text{(C)}}", "C"),
        ("Option (A) is wrong because ...\nThe answer is (D)", "D"),
        ("A fails, C fails.\n(B) 42 meters", "B"),
        ("the answer is a prime number", None),  # lowercase article, not an option
        ("The answer is Alpha", None),
        ("Answer: E", None),  # not a choice
        ("I cannot decide.", None),
        ("", None),
    ],
)
def test_extract_mcq_letter(text, expected):
    assert extract_mcq_letter(text) == expected


def test_extract_mcq_letter_more_choices():
    assert extract_mcq_letter("Answer: (H)", choices="ABCDEFGHIJ") == "H"
    with pytest.raises(ValueError, match="choices"):
        extract_mcq_letter("Answer: B", choices="1234")


# --- the regex scan against the character loop it replaced ----------------------------------

_OLD_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _old_braced(text: str, start: int) -> str | None:
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def _old_box_contents(text: str) -> list[str]:
    found = []
    for match in _OLD_BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            content = _old_braced(text, i)
        else:
            token = re.match(r"[^\s$]+", text[i:])
            content = token.group(0) if token else None
        if content is not None:
            found.append(content.strip())
    return found


BOX_PIECES = [r"\boxed", r"\fbox", r"\boxedx", "\\", "{", "}", r"\{", r"\}", "\\\\", " ", "\t",
              "\n", "$", "x", "42", r"\frac", "é", "数", "\\\n", "  ", "\t "]  # fmt: skip


def test_box_scan_is_the_character_loop():
    rng = random.Random(0)
    texts = [
        "",
        "\\",
        r"\boxed",
        r"\boxed{",
        r"\boxed{}",
        r"\boxed \{",
        r"\boxed{a\}",
        "\\boxed{\\",
    ]
    texts += [
        "".join(rng.choice(BOX_PIECES) for _ in range(rng.randint(1, 40))) for _ in range(5000)
    ]
    for text in texts:
        old = _old_box_contents(text)
        assert _box_contents(text) == old, text
        assert extract_boxed(text) == (old[-1] if old else None)
        assert extract_boxed(text, which="first") == (old[0] if old else None)
