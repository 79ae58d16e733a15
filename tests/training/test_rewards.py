"""Accuracy and format rewards on crafted completions, as trl calls them."""

from __future__ import annotations

import pytest

from training.rewards import accuracy_reward, completion_text, format_reward

ON = "<think>\n12+30\n</think>\n\n"


def test_math_is_checked_after_think_by_math_verify():
    completions = [
        ON + r"Tom has \boxed{42} apples.",
        ON + r"Tom has \boxed{42.0} apples.",  # math-verify: equal
        ON + r"Tom has \boxed{41} apples.",
        r"<think>\boxed{42}</think> no box in the answer",  # a box in the reasoning never counts
        r"<think>\boxed{42}",  # truncated: no answer part
        r"Tom has \boxed{42} apples.",  # reasoning off, still right
    ]
    assert accuracy_reward(completions, ["42"] * 6, ["math"] * 6) == [1, 1, 0, 0, 0, 1]


def test_mcq_instruct_and_unjudgeable_rows():
    completions = [ON + "The answer is (C).", "The answer is (B).", "CAT", "cat", "x", "x"]
    gold = ["C", "C", "CAT", "CAT", None, "y"]
    family = ["mcq", "mcq", "instruct", "instruct", "math", "poetry"]
    assert accuracy_reward(completions, gold, family) == [1.0, 0.0, 1.0, 0.0, None, None]


def test_code_runs_the_tests_in_the_sandbox():
    good = ON + "```python\ndef add_3(x):\n    return x + 3\n```"
    bad = "```python\ndef add_3(x):\n    return x - 3\n```"
    tests = "assert add_3(0) == 3\nassert add_3(5) == 8"
    rewards = accuracy_reward(
        [good, bad, "no code"], ["add_3"] * 3, ["code"] * 3, [tests, tests, tests]
    )
    assert rewards == [1.0, 0.0, 0.0]


def test_conversational_completions_are_read_as_their_assistant_text():
    conv = [[{"role": "assistant", "content": r"\boxed{7}"}]]
    assert completion_text(conv[0]) == r"\boxed{7}"
    assert accuracy_reward(conv, ["7"], ["math"]) == [1.0]
    with pytest.raises(TypeError, match="str or a list"):
        completion_text(7)


@pytest.mark.parametrize(
    ("text", "toggle", "reward"),
    [
        ("<think>\nsteps\n</think>\n\nanswer", "on", 1.0),
        ("answer", "on", 0.0),  # missing think
        ("<think>\nsteps\n\nanswer", "on", 0.0),  # never closed
        ("steps\n</think>\nanswer", "on", 0.0),  # close without open
        ("<think>a</think><think>b</think>answer", "on", 0.0),  # two blocks
        ("<think>\n</think>\nanswer", "on", 0.0),  # empty reasoning
        ("<think>\nsteps\n</think>\n", "on", 0.0),  # nothing after it
        ("preamble <think>\nsteps\n</think>\nanswer", "on", 0.0),  # text before <think>
        ("answer", "off", 1.0),
        ("<think>\nsteps\n</think>\n\nanswer", "off", 0.0),  # tags when off
        ("answer </think>", "off", 0.0),
        ("", "off", 0.0),
        ("answer", "maybe", None),
    ],
)
def test_format_reward_follows_the_toggle(text, toggle, reward):
    assert format_reward([text], reasoning=[toggle]) == [reward]


def test_columns_must_match_the_completions():
    with pytest.raises(ValueError, match="2 values for 1 completions"):
        accuracy_reward(["x"], ["1", "2"])
