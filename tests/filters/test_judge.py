"""filters.math_judge and judge_agreement: verdict parsing, the math-verify/judge flow with a
scripted judge, the embedded teacher as a judge through the transformers backend, and the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from curation.record import Record
from curation.registry import make_backend, stage_class
from filters.cli import filters_app
from filters.judge import MathJudge, judge_agreement, load_template, parse_verdict

from .conftest import ScriptedBackend, make_context


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Judgement: Yes", True),
        ("Judgement: No", False),
        ("**YES**", True),
        ("no", False),
        ("Yes.", True),
        ("No, 5 is not 6.", False),
        ("The answers are equivalent.", True),
        ("The answers are not equivalent.", False),
        ("They aren't the same.", False),
        ("These do not match.", False),
        ("Both expressions are the same number.", True),
        ("The two answers differ in sign.", False),
        ("Reasoning: 6 and 5 are different numbers.\nJudgement: No", False),
        ("Reasoning: the order does not matter, so not different.\n\n**Judgement:** **Yes**", True),
        ("<think>maybe they are different</think>Judgement: yes", True),
        ("Verdict: correct", True),
        ("Final verdict = incorrect", False),
        ("I think the answer should be yes", True),
        ("", None),
        ("<think>still thinking", None),
        ("Let me think about the weather instead.", None),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def row(answer, gold, problem="What is 1/2 as a decimal?", rid=None):
    record = Record(
        id=rid or f"{answer}|{gold}",
        input=[{"role": "user", "content": problem}],
        output=f"\\boxed{{{answer}}}",
        reasoning="off",
        expected_answer=gold,
    )
    if answer is not None:
        record.meta["answer"] = answer
    return record


def run(stage, records, ctx):
    return asyncio.run(stage.process(records, ctx))


def outcome(result):
    """id -> (kept?, reason, verified_by, judge_verdict) for every row of a result."""
    out = {r.id: (True, None, r.meta["verified_by"], r.meta["judge_verdict"]) for r in result.kept}
    for r in result.rejected:
        out[r.id] = (False, r.reason, r.meta.get("verified_by"), r.meta.get("judge_verdict"))
    for r in result.failed:
        out[r.id] = ("failed", r.reason, r.meta.get("verified_by"), None)
    return out


ROWS = [
    ("0.5", "1/2", (True, None, "math_verify", "skipped")),
    ("3", "4", (False, "math_answer_mismatch", "math_verify", "skipped")),
    ("one half", "0.5", (False, "math_answer_mismatch", "math_verify", "skipped")),
    ("}{", "}{", (True, None, "judge", "yes")),  # math-verify parses neither; the judge decides
    ("}{", "2", (False, "judge_mismatch", "judge", "no")),
    (None, "2", (False, "math_answer_missing", None, None)),
    ("2", "", (False, "expected_answer_missing", None, None)),
]


def test_fallback_asks_the_judge_only_what_math_verify_cannot_parse(tmp_path):
    judge = ScriptedBackend("judge")
    ctx = make_context(tmp_path, judge=judge)
    records = [row(a, g) for a, g, _ in ROWS]
    result = run(MathJudge(), records, ctx)
    assert outcome(result) == {f"{a}|{g}": want for a, g, want in ROWS}
    assert len(judge.calls) == 2
    assert all(r.scores["filters.math_judge"] == 1.0 for r in result.kept)
    assert all(r.scores["filters.math_judge"] == 0.0 for r in result.rejected)
    (asked, *_) = [r for r in result.kept if r.meta["verified_by"] == "judge"]
    assert asked.meta["math_verify_verdict"] == "math_answer_unparsed"
    assert "Judgement: **Yes**" in asked.meta["judge_output"]


def test_mismatch_mode_lets_the_judge_rescue_text_answers(tmp_path):
    judge = ScriptedBackend("judge")
    records = [row("one half", "0.5"), row("twelve", "12"), row("13", "12"), row("12", "12")]
    result = run(MathJudge(mode="mismatch"), records, make_context(tmp_path, judge=judge))
    got = outcome(result)
    assert got["one half|0.5"] == (True, None, "judge", "yes")
    assert got["twelve|12"] == (True, None, "judge", "yes")
    assert got["13|12"] == (False, "judge_mismatch", "judge", "no")
    assert got["12|12"] == (True, None, "math_verify", "skipped")
    assert len(judge.calls) == 3


def test_always_mode_dedupes_caches_and_fails_honestly(tmp_path):
    def script(request):
        return "ERROR: HTTP 503" if "Predicted answer: 7" in request.messages[-1][1] else "Yes"

    judge = ScriptedBackend("flaky", script=script)
    ctx = make_context(tmp_path, judge=judge)
    records = [row("0.5", "1/2", rid=f"s{k}") for k in range(4)] + [row("7", "7", rid="bad")]
    result = run(MathJudge(mode="always"), records, ctx)
    assert len(judge.calls) == 2  # four identical questions asked once, plus the failing one
    assert {r.id for r in result.kept} == {"s0", "s1", "s2", "s3"}
    assert all(r.meta["verified_by"] == "judge" for r in result.kept)
    assert all(r.meta["math_verify_verdict"] == "equal" for r in result.kept)
    (failed,) = result.failed
    assert (
        failed.reason == "request_failed: ERROR: HTTP 503" and failed.stage == "filters.math_judge"
    )
    # a second run asks only the request that failed: answers are cached, failures are not
    again = run(MathJudge(mode="always"), [row("0.5", "1/2", rid="s9"), row("7", "7")], ctx)
    assert len(judge.calls) == 3 and [r.id for r in again.kept] == ["s9"]


def test_unparsed_verdict_keeps_the_reply_and_a_reason(tmp_path):
    ctx = make_context(tmp_path, judge=ScriptedBackend("judge"))
    result = run(MathJudge(mode="always"), [row("GIBBERISH", "5")], ctx)
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.meta["judge_verdict"]) == ("judge_unparsed", "unparsed")
    assert rejected.meta["judge_output"] == "Let me think about the weather instead."


def test_prompt_template_and_params(tmp_path):
    stage = MathJudge()
    prompt = stage.prompt(row("\\frac{1}{2}", "0.5", problem="Halve {1}."))
    task = prompt.rsplit("YOUR TASK", 1)[1]
    assert "Problem: Halve {1}." in task
    assert "Predicted answer: \\frac{1}{2}" in task and "Expected answer: 0.5" in task
    custom = tmp_path / "mine.txt"
    custom.write_text("Is {predicted_answer} = {expected_answer} for {problem}? Say yes or no.")
    assert MathJudge(template=str(custom)).prompt(row("1", "2")).startswith("Is 1 = 2 for")
    (tmp_path / "bad.txt").write_text("Compare {predicted_answer} and {expected_answer}.")
    with pytest.raises(ValueError, match=r"lacks \{problem\}"):
        load_template(str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="math_judge"):
        MathJudge(template="nope")
    with pytest.raises(ValueError, match="mode"):
        MathJudge(mode="sometimes")
    assert stage_class("filters.math_judge") is MathJudge


def test_judge_agreement_report(tmp_path):
    records = [
        row("0.5", "1/2"),  # both equal
        row("3", "4"),  # both different
        row("one half", "0.5"),  # math-verify: mismatch; judge: yes -> a disagreement
        row("}{", "2"),  # math-verify cannot parse: not counted in the agreement rate
        row(None, "2"),  # no answer: not sampled
    ]
    ctx = make_context(tmp_path, judge=ScriptedBackend("judge"))
    report = asyncio.run(judge_agreement(records, ctx, judge="judge", sample=0))
    assert report["rows"] == 4 and report["decided"] == 3
    assert report["agreement"] == pytest.approx(2 / 3)
    assert report["confusion"]["equal"]["yes"] == 1
    assert report["confusion"]["math_answer_mismatch"] == {"yes": 1, "no": 1, "unparsed": 0}
    assert report["confusion"]["math_answer_unparsed"]["no"] == 1
    (example,) = report["disagreements"]
    assert example["answer"] == "one half" and example["judge"] == "yes"
    assert "meta" not in records[0].meta and "verified_by" not in records[0].meta  # untouched


def test_embedded_teacher_as_judge_through_the_transformers_backend(tmp_path):
    """The tiny teacher is no judge, but every row still ends with a verdict or a reason."""
    backend = make_backend("transformers", model="embedded", batch_size=8)
    ctx = make_context(tmp_path, judge=backend)
    records = [row("one half", "0.5"), row("7", "7"), row("}{", "3")]
    short = tmp_path / "short.txt"  # the few-shot default is longer than the tiny model's context
    short.write_text("{problem}\nIs {predicted_answer} the same as {expected_answer}?")
    stage = MathJudge(mode="mismatch", template=str(short), max_tokens=16)
    result = run(stage, records, ctx)
    assert len(result.kept) + len(result.rejected) == 3 and not result.failed
    for r in result.kept + result.rejected:
        assert r.meta["verified_by"] in ("math_verify", "judge")
        assert r.meta["judge_verdict"] in ("yes", "no", "unparsed", "skipped")
        if r in result.rejected:
            assert r.reason in ("judge_mismatch", "judge_unparsed")
    usage = ctx.teacher("judge").usage
    assert usage.new_requests == 2
    run(stage, [row("one half", "0.5"), row("}{", "3")], ctx)
    assert usage.new_requests == 2 and usage.cached_requests == 2


def test_agreement_cli_on_a_built_version(tmp_path):
    """`thinkmix filters agreement` on a stored version, the judge named by a recipe."""
    from curation.runner import SPLITS
    from curation.store import Store

    store = Store(tmp_path / "store")
    staging = store.staging("mathy", "v1")
    rows = [row("0.5", "1/2"), row("one half", "0.5"), row("5", "6")]
    files = [staging.write_shard(s, 0, rows if s == "train" else []) for s in SPLITS]
    staging.mark_done(0, files)
    staging.commit({"dataset": "mathy", "version": "v1", "shards": 1})
    recipe = tmp_path / "judge.yaml"
    recipe.write_text(
        "name: judging\nsources: [{type: tinyworld.math, count: 1}]\n"
        "teachers:\n  referee: {backend: scripted-judge, model: judge}\n"
    )
    args = ["agreement", "mathy/v1", "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(
        filters_app, [*args, "--recipe", str(recipe), "--judge", "referee", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == 3 and report["agreement"] == pytest.approx(2 / 3)
    assert report["disagreements"][0]["answer"] == "one half"
    result = CliRunner().invoke(filters_app, [*args, "--teacher", "scripted-judge:judge"])
    assert result.exit_code == 0, result.output
    assert "agreement 66.7%" in result.output
    result = CliRunner().invoke(filters_app, args)
    assert result.exit_code == 2 and "--teacher" in result.output


PIPELINE = """\
name: judged
sources:
  - {type: tinyworld.math, count: 4, seed: 1}
teachers:
  reasoner: {backend: scripted-judge, model: solver}
  referee: {backend: scripted-judge, model: judge}
stages:
  - {type: filters.pass_rate, teacher: reasoner, samples: 4}
  - {type: generators.multi_sample, teacher: reasoner, samples_on: 4, temperature: 0.6}
  - {type: filters.boxed_answer}
  - {type: filters.math_judge, judge: referee, mode: always}
  - {type: filters.majority_vote, answer: meta, min_share: 0.25}
  - {type: filters.quality}
shards: 2
"""


def test_a_recipe_with_these_stages_builds_and_explains_every_row(tmp_path):
    """Through `thinkmix build`: validation of teachers and columns, then every row's fate."""
    from curation.cli import app
    from curation.store import Store

    recipe = tmp_path / "judged.yaml"
    recipe.write_text(PIPELINE)
    args = ["build", str(recipe), "--store", str(tmp_path / "store"), "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--no-stats"])
    assert result.exit_code == 0, result.output
    store = Store(tmp_path / "store")
    ref = result.output.strip().splitlines()[-1]
    train, rejected = store.read_records(ref, "train"), store.read_records(ref, "rejected")
    # the solver is right on samples 0 and 1: pass rate 0.5, the judge keeps those two
    assert len(train) == 4 * 2 and len(rejected) == 4 * 2
    assert {r.meta["sample"] for r in train} == {"0", "1"}
    for r in train:
        assert r.meta["pass_rate"] == "0.5" and r.meta["verified_by"] == "judge"
        assert r.meta["majority_answer"] == r.meta["answer"] and r.scores["vote_share"] == 1.0
    assert {(r.stage, r.reason) for r in rejected} == {("filters.math_judge", "judge_mismatch")}
    # the pass-rate requests and the samples are the same requests: asked once
    assert "teacher reasoner: 16 new requests, 16 cached" in result.output
    assert "teacher referee: 8 new requests" in result.output  # one per distinct answer
