"""generators.reasoning_off_pair: parsing, pairing flow with a scripted teacher, and a small build."""

from __future__ import annotations

import asyncio

import pytest

from curation.record import THINKING_OFF, THINKING_ON, Record
from curation.stage import Drop
from curation.store import Store
from generators.base import GenerationResponse
from generators.reasoning_off import ReasoningOffPair, parse_output
from tests.curation.conftest import thinkmix
from tests.generators.test_its import built_ref, scripted_ctx, user_text


@pytest.mark.parametrize(
    ("text", "finish", "expected"),
    [
        ("  The answer is \\boxed{7}.\n", "stop", "The answer is \\boxed{7}."),
        ("<think>hmm</think>7", "stop", Drop("off_has_think")),
        ("7 </think>", "stop", Drop("off_has_think")),
        ("   ", "stop", Drop("off_empty")),
        ("The answer is", "length", Drop("off_truncated")),
    ],
)
def test_parse_output(text, finish, expected):
    assert parse_output(text, finish) == expected


def test_truncated_answers_can_be_kept():
    assert parse_output("The answer is", "length", drop_truncated=False) == "The answer is"


def row(rid: str, problem: str, reasoning: str = "on", **meta: str) -> Record:
    return Record(
        id=rid,
        input=[{"role": "user", "content": f"What is {problem}?"}],
        output="<think>...</think>\\boxed{1}" if reasoning == "on" else "\\boxed{1}",
        system_prompt=THINKING_ON if reasoning == "on" else THINKING_OFF,
        reasoning=reasoning,
        category="math",
        generator="R1",
        source_id=problem,
        expected_answer="1",
        scores={"filters.math_verify": 1.0},
        meta={"problem_id": f"p-{problem}", "answer": "1", "sample": "0", "tests": "t", **meta},
    )


def off_answer(request):
    assert request.messages[0] == ("system", THINKING_OFF)
    return f"Direct: {user_text(request)}"


def test_one_off_row_per_prompt_linked_both_ways(tmp_path):
    rows = [row("b", "1+0"), row("a", "1+0"), row("c", "2-1"), row("d", "3-2", reasoning="off")]
    ctx = scripted_ctx(tmp_path, chat=off_answer)
    result = asyncio.run(ReasoningOffPair(teacher="chat").process(rows, ctx))
    assert result.kept[:4] == rows  # every input row stays
    offs = result.kept[4:]
    assert [o.meta["pair_id"] for o in offs] == ["a", "c"]  # smallest id of each prompt
    for off in offs:
        on = next(r for r in rows if r.id == off.meta["pair_id"])
        assert on.meta["pair_id"] == off.id
        assert off.input == on.input and off.expected_answer == on.expected_answer
        assert (off.reasoning, off.system_prompt) == ("off", THINKING_OFF)
        assert off.output == f"Direct: {on.input[0]['content']}"
        assert off.generator == "chat-model" and off.scores == {}
        assert off.meta["problem_id"] == on.meta["problem_id"] and off.meta["tests"] == "t"
        assert "answer" not in off.meta and "sample" not in off.meta  # they described the on answer
    assert "pair_id" not in rows[0].meta and "pair_id" not in rows[3].meta
    assert len(ctx.teacher("chat").backend.seen) == 2


def test_per_row_pairs_samples_and_fraction(tmp_path):
    rows = [row("b", "1+0"), row("a", "1+0")]
    ctx = scripted_ctx(tmp_path, chat=lambda r: f"answer {r.sample_index}")
    stage = ReasoningOffPair(teacher="chat", per_prompt=False, samples=2, temperature=0.7)
    result = asyncio.run(stage.process(rows, ctx))
    offs = result.kept[2:]
    assert len(offs) == 4 and len({o.id for o in offs}) == 4
    assert sorted(o.output for o in offs) == ["answer 0", "answer 0", "answer 1", "answer 1"]
    assert rows[1].meta["pair_id"] == ",".join(o.id for o in offs if o.meta["pair_id"] == "a")
    many = [row(f"r{i}", f"{i}+0") for i in range(60)]
    stage = ReasoningOffPair(teacher="chat", fraction=0.5)
    picked = {r.id for r in stage.pairs(many)}
    assert 15 < len(picked) < 45 and picked == {r.id for r in stage.pairs(list(reversed(many)))}


def test_bad_answers_are_rejected_and_failed_requests_fail(tmp_path):
    def script(request):
        text = user_text(request)
        if "1+0" in text:
            return "<think>oops</think>1"
        if "2-1" in text:
            return GenerationResponse("", "error", error="HTTP 500")
        return "1"

    rows = [row("a", "1+0"), row("b", "2-1"), row("c", "3-2")]
    result = asyncio.run(
        ReasoningOffPair(teacher="chat").process(rows, scripted_ctx(tmp_path, chat=script))
    )
    assert len(result.kept) == 4 and result.kept[3].output == "1"
    (rejected,) = result.rejected
    assert rejected.reason == "off_has_think" and rejected.output == "<think>oops</think>1"
    (failed,) = result.failed
    assert failed.reason == "request_failed: HTTP 500" and failed.meta["pair_id"] == "b"
    assert "pair_id" not in rows[0].meta and rows[2].meta["pair_id"] == result.kept[3].id


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fraction": 0}, "fraction"),
        ({"samples": 2}, "temperature 0"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        ReasoningOffPair(**params)


RECIPE = """\
name: tiny-pairs
sources:
  - {type: tinyworld.math, count: 2, seed: 5}
teachers:
  reasoner: {backend: transformers, model: embedded, batch_size: 16}
stages:
  - {type: generators.multi_sample, teacher: reasoner, samples_on: 2, max_tokens: 40}
  - {type: generators.reasoning_off_pair, teacher: reasoner, max_tokens: 30, drop_truncated: false}
shards: 1
"""


def test_build_with_the_embedded_teacher_pairs_kept_rows(tmp_path):
    recipe = tmp_path / "pairs.yaml"
    recipe.write_text(RECIPE)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--no-stats")
    assert code == 0, output
    store = Store(tmp_path / "store")
    ref = built_ref(output)
    manifest = store.manifest(ref)
    stages = {s["name"]: s for s in manifest["stages"]}
    pair = stages["generators.reasoning_off_pair"]
    kept_on = stages["generators.multi_sample"]["kept"]
    prompts_on = len(
        {r.meta["problem_id"] for r in store.read_records(ref, "train") if r.reasoning == "on"}
    )
    # every kept on row passes through; one off row per prompt is kept or rejected with a reason
    assert pair["in"] == kept_on
    assert pair["kept"] + pair["rejected"] + pair["failed"] == kept_on + prompts_on
    train = store.read_records(ref, "train")
    by_id = {r.id: r for r in train}
    for off in (r for r in train if r.reasoning == "off"):
        assert off.meta["pair_id"] in by_id and "<think>" not in off.output
        assert by_id[off.meta["pair_id"]].meta["pair_id"] == off.id
    for rejected in store.read_records(ref, "rejected"):
        assert rejected.stage and rejected.reason
