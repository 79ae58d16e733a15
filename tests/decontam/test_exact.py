"""decontam.exact: short benchmark items that n-grams cannot see, and the tinyworld held-out set."""

from __future__ import annotations

import asyncio
import json

import pytest

from curation.context import RunContext
from curation.record import Record
from curation.registry import stage_class
from curation.teacher.evaluate import EVAL_PER_FAMILY, EVAL_SEED
from curation.tinyworld import generate
from decontam.bench import BenchItem, load_benchmark
from decontam.exact import ExactDecontam, ExactIndex
from decontam.ngram import NgramDecontam

ITEMS = [
    BenchItem("quiz", "q1", "What is 97+67? A) 175 B) 164 C) 163 D) 165"),
    BenchItem("quiz", "q2", "Write the word river in uppercase."),
    BenchItem("quiz", "q3", "Say hi."),  # under min_tokens
]


def verdicts(texts: list[str], **options):
    index = ExactIndex(ITEMS, **options)
    return [index.find(t) for t in texts]


def test_copies_match_whatever_their_case_spacing_and_punctuation():
    found = verdicts(
        ["what is 97 + 67?\n a) 175  b) 164 c) 163 d) 165", "WRITE the word: river, in uppercase"]
    )
    assert [(m.item_id, m.details["match"]) for m in found] == [("q1", "exact"), ("q2", "exact")]
    assert found[0].as_dict() == {
        "benchmark": "quiz",
        "item_id": "q1",
        "score": 1.0,
        "match": "exact",
        "tokens": 12,  # what is 97 67 a 175 b 164 c 163 d 165
        "mode": "text",
    }


def test_an_item_inside_a_longer_row_matches_unless_it_is_very_short():
    found = verdicts(
        [
            "Please help. Write the word river in uppercase. Thanks!",
            "Say hi.",  # the whole row is the short item
            "Say hi. Then tell me a story.",  # the short item inside: everyday words, not a copy
        ]
    )
    assert found[0].item_id == "q2" and found[0].details == {
        "match": "contains",
        "tokens": 6,
        "mode": "text",
    }
    assert found[1].item_id == "q3"
    assert found[2] is None


def test_unrelated_and_near_miss_rows_do_not_match():
    found = verdicts(
        [
            "What is 97+68? A) 175 B) 164 C) 163 D) 165",  # another number
            "Write the word river in lowercase.",
            "The river flows in uppercase letters of the alphabet.",
            "",
        ]
    )
    assert found == [None, None, None, None]


def test_contains_off_matches_whole_rows_only():
    index = ExactIndex(ITEMS)
    assert index.find("Please: write the word river in uppercase", contains=False) is None
    assert index.find("write the word river in uppercase", contains=False).item_id == "q2"


def test_the_tinyworld_benchmark_is_the_held_out_evaluation_set():
    items = load_benchmark("tinyworld").items
    expected = [
        (t.task_id, t.prompt)
        for family in ("math", "mcq", "code", "instruct")
        for t in generate(family, EVAL_PER_FAMILY, EVAL_SEED)
    ]
    assert sorted((i.item_id, i.text) for i in items) == sorted(expected)


@pytest.mark.parametrize("family", ["code", "instruct", "math"])
def test_training_prompts_that_are_evaluation_prompts_are_dropped(family):
    held_out = {t.prompt for t in generate(family, EVAL_PER_FAMILY, EVAL_SEED)}
    train = generate(family, 60, 0)
    records = [
        Record(id=f"r{i}", input=[{"role": "user", "content": t.prompt}], category=family)
        for i, t in enumerate(train)
    ]
    stage = stage_class("decontam.exact")(benchmarks=["tinyworld"])
    ctx = RunContext(dataset="d", version="v", seed=0)
    result = asyncio.run(stage.process(records, ctx))
    dropped = {r.input[0]["content"] for r in result.rejected}
    assert dropped == {t.prompt for t in train if t.prompt in held_out}
    if family == "math":
        assert not dropped  # 2-digit word problems: a space far bigger than the samples
    else:
        assert dropped  # the code and instruct families are small: seeds meet again
    for r in result.rejected:
        meta = json.loads(r.meta["decontam.exact"])
        assert r.reason == "contaminated_exact" and meta["benchmark"] == "tinyworld"
        assert meta["item_id"].startswith(f"{family}-{EVAL_SEED}-")
    assert all(r.scores["decontam.exact"] == 0.0 for r in result.kept)


def test_ngrams_cannot_see_these_items_which_is_why_the_method_exists(cache):
    stage = NgramDecontam(benchmarks=["tinyworld"], n=13, fields=["input"], cache_dir=cache)
    prompts = [t.prompt for t in generate("instruct", EVAL_PER_FAMILY, EVAL_SEED)]
    assert stage.find(prompts, None) == [None] * len(prompts)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        ExactDecontam(benchmarks=["tinyworld"], mode="words")
    with pytest.raises(ValueError, match="min_tokens"):
        ExactDecontam(benchmarks=["tinyworld"], min_tokens=0)


def test_cli_flags_evaluation_prompts_in_a_file(tmp_path):
    from typer.testing import CliRunner

    from decontam.cli import decontam_app

    held_out = generate("instruct", EVAL_PER_FAMILY, EVAL_SEED)
    rows = [{"text": held_out[3].prompt.upper()}, {"text": "Write a haiku about the sea."}]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.jsonl"
    args = ["run", str(src), "--bench", "tinyworld", "--method", "exact", "--report", str(report)]
    result = CliRunner().invoke(decontam_app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    first = next(t for t in held_out if t.prompt == held_out[3].prompt)  # the set repeats prompts
    assert [(x["row"], x["method"], x["item_id"]) for x in lines] == [(0, "exact", first.task_id)]
