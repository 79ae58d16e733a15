"""filters.majority_vote on inline sample groups: winners, shares, ties and every reason."""

from __future__ import annotations

import asyncio

import pytest

from curation.record import Record
from curation.registry import stage_class
from filters.majority import MajorityVote, normalize_answer


def sample(problem, k, output, answer=None, reasoning="off", expected=None):
    record = Record(
        id=f"{problem}-{k}",
        input=[{"role": "user", "content": f"question {problem}"}],
        output=output,
        reasoning=reasoning,
        expected_answer=expected,
        meta={"problem_id": problem},
    )
    if answer is not None:
        record.meta["answer"] = answer
    return record


def vote(stage, records):
    result = asyncio.run(stage.process(records, None))
    fate = {r.id: "kept" for r in result.kept}
    fate.update({r.id: r.reason for r in result.rejected})
    return result, fate


def test_mcq_majority_keeps_the_winners_and_explains_the_rest():
    outputs = [
        "The answer is (B).",
        "<think>hm</think>Answer: B",
        "**B**",
        "The answer is (C).",
        "I don't know.",
    ]
    records = [
        sample("p", k, o, reasoning="on" if "<think>" in o else "off")
        for k, o in enumerate(outputs)
    ]
    result, fate = vote(MajorityVote(answer="mcq"), records)
    assert fate == {
        "p-0": "kept",
        "p-1": "kept",
        "p-2": "kept",
        "p-3": "majority_disagrees",
        "p-4": "majority_no_answer",
    }
    assert all(r.meta["majority_answer"] == "B" for r in result.kept + result.rejected)
    assert all(r.scores["vote_share"] == pytest.approx(3 / 5) for r in result.kept)
    assert [r.meta["vote_answer"] for r in result.rejected] == ["C", ""]
    assert all(r.scores["filters.majority_vote"] == 0.0 for r in result.rejected)
    assert {r.stage for r in result.rejected} == {"filters.majority_vote"}


@pytest.mark.parametrize(
    ("answers", "min_share", "count_unanswered", "want"),
    [
        (
            ["4", "4", "5", None],
            0.5,
            True,
            ["kept", "kept", "majority_disagrees", "majority_no_answer"],
        ),
        (["4", "4", "5", None], 0.6, True, ["majority_share_too_low"] * 3 + ["majority_no_answer"]),
        (
            ["4", "4", "5", None],
            0.6,
            False,
            ["kept", "kept", "majority_disagrees", "majority_no_answer"],
        ),
        (["4", "5", "4", "5"], 0.0, True, ["majority_tie"] * 4),
        ([None, None], 0.0, True, ["majority_no_answer"] * 2),
        (["$4$", " 4.", "4"], 1.0, True, ["kept"] * 3),
    ],
)
def test_shares_thresholds_and_ties(answers, min_share, count_unanswered, want):
    records = [sample("q", k, "", answer=a) for k, a in enumerate(answers)]
    stage = MajorityVote(answer="meta", min_share=min_share, count_unanswered=count_unanswered)
    _, fate = vote(stage, records)
    assert [fate[f"q-{k}"] for k in range(len(answers))] == want


def test_groups_are_by_problem_and_math_verify_merges_spellings():
    records = [
        sample("a", 0, "", answer="\\frac{1}{2}"),
        sample("a", 1, "", answer="0.5"),
        sample("a", 2, "", answer="1/3"),
        sample("b", 0, "", answer="7"),
    ]
    _, exact = vote(MajorityVote(answer="meta"), [r for r in records])
    assert exact["a-0"] == "majority_tie"  # three spellings, one vote each
    assert exact["b-0"] == "kept"
    records = [sample("a", k, "", answer=a) for k, a in enumerate(["\\frac{1}{2}", "0.5", "1/3"])]
    result, fate = vote(
        MajorityVote(answer="meta", compare="math_verify", set_expected=True), records
    )
    assert fate == {"a-0": "kept", "a-1": "kept", "a-2": "majority_disagrees"}
    assert all(r.expected_answer == "\\frac{1}{2}" for r in result.kept)


def test_auto_reads_meta_then_box_then_letter():
    stage = MajorityVote()
    assert stage.vote(sample("x", 0, "so \\boxed{12}", answer=" 12 ")) == "12"
    assert stage.vote(sample("x", 0, "so \\boxed{12}.")) == "12"
    assert (
        stage.vote(sample("x", 0, "<think>\\boxed{3}</think>The answer is (D).", reasoning="on"))
        == "D"
    )
    assert stage.vote(sample("x", 0, "nothing here")) is None
    assert normalize_answer(" $x  + 1$. ") == "x + 1"


def test_params_are_checked_and_registered():
    assert stage_class("filters.majority_vote") is MajorityVote
    with pytest.raises(ValueError, match="min_share"):
        MajorityVote(min_share=1.5)
    with pytest.raises(ValueError, match="answer"):
        MajorityVote(answer="letters")
