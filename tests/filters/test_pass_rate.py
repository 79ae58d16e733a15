"""filters.pass_rate: exact rates with scripted teachers (math, mcq, code in the sandbox), the
paper's pre-filter, honest failures, and the embedded teacher through the transformers backend."""

from __future__ import annotations

import asyncio

import pytest

from curation.record import Record, record_id
from curation.registry import make_backend, stage_class
from curation.tinyworld import generate
from filters.pass_rate import PassRate
from generators.multi_sample import MultiSample

from .conftest import ScriptedBackend, make_context


def prompts(family, count, seed=5):
    rows = []
    for task in generate(family, count, seed):
        turns = [{"role": "user", "content": task.prompt}]
        rows.append(
            Record(
                id=record_id("t", task.task_id, turns),
                input=turns,
                category={"mcq": "science"}.get(family, family),
                source_id=task.task_id,
                expected_answer=task.expected_answer,
                meta={"family": family, "tests": task.tests},
            )
        )
    return rows


def run(stage, records, ctx):
    return asyncio.run(stage.process(records, ctx))


def test_math_rates_and_the_papers_prefilter(tmp_path):
    solver = ScriptedBackend("solver")  # right on samples 0 and 1 only
    ctx = make_context(tmp_path, reasoner=solver)
    rows = prompts("math", 3)
    result = run(PassRate(samples=4), rows, ctx)
    assert len(result.kept) == 3 and len(solver.calls) == 12
    for r in result.kept:
        assert r.scores["pass_rate"] == 0.5
        assert (r.meta["pass_rate"], r.meta["pass_rate_passed"], r.meta["pass_rate_k"]) == (
            "0.5",
            "2",
            "4",
        )
        assert r.meta["pass_rate_verifier"] == "math"
    high = run(PassRate(samples=4, drop_above=0.5), prompts("math", 3), ctx)
    assert not high.kept and {r.reason for r in high.rejected} == {"pass_rate_too_high"}
    assert len(solver.calls) == 12  # same requests: all from the cache
    low = run(PassRate(samples=8, drop_above=0.75, drop_below=0.25), prompts("math", 2), ctx)
    assert {r.reason for r in low.rejected} == {"pass_rate_too_low"}
    assert all(r.scores["pass_rate"] == 0.25 for r in low.rejected)


def test_mcq_and_code_verifiers(tmp_path):
    def script(request):
        prompt = request.messages[-1][1]
        if prompt.startswith("Write a function"):  # sample 0 copies the tests' first case
            name = prompt.split()[3].split("(")[0]
            body = "x + 44" if request.sample_index == 0 else "x"
            return f"```python\ndef {name}(x):\n    return {body}\n```"
        return "The answer is (A)." if request.sample_index % 2 else "The answer is (B)."

    ctx = make_context(tmp_path, reasoner=ScriptedBackend("mixed", script=script))
    mcq, code = prompts("mcq", 4), prompts("code", 2)
    result = run(PassRate(samples=2, reasoning="off"), mcq + code, ctx)
    assert len(result.kept) == 6
    for r in result.kept:
        if r.meta["family"] == "mcq":
            want = 0.5 if r.expected_answer in "AB" else 0.0
            assert (r.meta["pass_rate_verifier"], r.scores["pass_rate"]) == ("mcq", want)
        else:  # inc_44 passes on sample 0; calc_2 (x times 2 plus 16) never
            want = 0.5 if "inc_44" in r.input[0]["content"] else 0.0
            assert (r.meta["pass_rate_verifier"], r.scores["pass_rate"]) == ("code", want)


def test_rows_it_cannot_rate_and_failed_requests(tmp_path):
    def script(request):
        return "ERROR: HTTP 503" if request.sample_index == 1 else "\\boxed{1}"

    ctx = make_context(tmp_path, reasoner=ScriptedBackend("flaky", script=script))
    no_gold, chat, fine = prompts("math", 3)
    no_gold.expected_answer = None
    chat.meta = {}
    chat.category = "chat"
    result = run(PassRate(samples=2), [no_gold, chat, fine], ctx)
    assert {r.id: r.reason for r in result.rejected} == {
        no_gold.id: "pass_rate_no_gold",
        chat.id: "pass_rate_no_verifier",
    }
    (failed,) = result.failed
    assert failed.id == fine.id and failed.reason == "request_failed: ERROR: HTTP 503"
    assert "pass_rate" not in failed.scores


def test_embedded_teacher_shares_requests_with_multi_sample(tmp_path):
    backend = make_backend("transformers", model="embedded", batch_size=8)
    ctx = make_context(tmp_path, reasoner=backend)
    rows = prompts("math", 1, seed=7)
    stage = PassRate(samples=2, temperature=0.7, max_tokens=24)  # short: the trace gets cut
    result = run(stage, rows, ctx)
    assert len(result.kept) == 1
    for r in result.kept:
        assert r.scores["pass_rate"] in (0.0, 0.5, 1.0)
        assert int(r.meta["pass_rate_passed"]) == r.scores["pass_rate"] * 2
    usage = ctx.teacher("reasoner").usage
    assert usage.new_requests == 2
    samples = MultiSample(samples_on=2, temperature=0.7, top_p=0.95, max_tokens=24)
    run(samples, prompts("math", 1, seed=7), ctx)
    assert usage.new_requests == 2 and usage.cached_requests == 2


def test_params_are_checked_and_registered():
    assert stage_class("filters.pass_rate") is PassRate
    with pytest.raises(ValueError, match="drop_above"):
        PassRate(drop_above=1.5)
    with pytest.raises(ValueError, match="samples"):
        PassRate(samples=0)
    assert PassRate().sampling_summary()["samples"] == 8
