"""filters.think_format: `<think>` exactly when reasoning is on."""

import pickle

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.format import ThinkFormat


def row(output, reasoning="on"):
    return Record(
        id="x",
        input=[{"role": "user", "content": "What is 2+2?"}],
        output=output,
        reasoning=reasoning,
    )


@pytest.mark.parametrize(
    ("output", "reasoning", "verdict"),
    [
        ("<think>2+2=4</think>4", "on", True),
        ("\n  <think>\n2+2=4\n</think>\n\nThe answer is 4.", "on", True),
        ("4", "on", "format_missing_think"),
        ("Sure! <think>2+2=4</think>4", "on", "format_missing_think"),
        ("2+2=4</think>4", "on", "format_unbalanced_think"),  # opening tag left in the prompt
        ("<think>2+2=4", "on", "format_unbalanced_think"),  # truncated
        ("<think>a</think><think>b</think>4", "on", "format_multiple_think"),
        ("<think>a<think>b</think></think>4", "on", "format_multiple_think"),
        ("</think>a<think>4", "on", "format_unbalanced_think"),
        ("<think>  \n </think>4", "on", "format_empty_think"),
        ("<think>2+2=4</think>", "on", "format_empty_answer"),
        ("<think>2+2=4</think>\n\n ", "on", "format_empty_answer"),
        ("4", "off", True),
        ("The answer is 4.", "off", True),
        ("<think>2+2=4</think>4", "off", "format_think_when_off"),
        ("4 </think>", "off", "format_think_when_off"),
        ("<think></think>4", "off", "format_think_when_off"),
        ("  ", "off", "format_empty_answer"),
        ("4", "", "format_reasoning_unknown"),
    ],
)
def test_think_format(output, reasoning, verdict):
    got = ThinkFormat().keep(row(output, reasoning))
    assert got == (verdict if verdict is True else Drop(verdict))


def test_judge_splits_and_stamps():
    result = ThinkFormat().judge(
        [row("<think>a</think>4"), row("4"), row("4", "off"), row("<think>a</think>4", "off")]
    )
    assert [r.output for r in result.kept] == ["<think>a</think>4", "4"]
    assert all(r.scores == {"filters.think_format": 1.0} for r in result.kept)
    assert [(r.stage, r.reason, r.scores["filters.think_format"]) for r in result.rejected] == [
        ("filters.think_format", "format_missing_think", 0.0),
        ("filters.think_format", "format_think_when_off", 0.0),
    ]


def test_registered_and_picklable():
    assert stage_class("filters.think_format") is ThinkFormat
    assert pickle.loads(pickle.dumps(ThinkFormat())) == ThinkFormat()
