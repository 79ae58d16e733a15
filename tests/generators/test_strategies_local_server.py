"""Every generation strategy end to end over HTTP: `thinkmix build` with the embedded teacher
behind `transformers serve` (the `local-server` backend; one server per teacher per build).

Builds: question_variation -> multi_sample -> reasoning_off_pair on tinyworld math (one recipe);
mcq_grid -> mcq_synth; and ITS (Feedback -> Edit -> Select) on tinyworld instructions with every
role on one server, selected once by the judge and once by a reward function.

The tiny char-level teacher has a context of 512 tokens (about one per character) and the shipped
templates are written for large models (the MCQ one alone is 584 characters). The server neither
refuses nor truncates a longer prompt: it decodes past the positions the model was trained on.
So `local-server` refuses a prompt that fills the context and caps `max_tokens` to the room left
(tested below), and these recipes use short templates written next to the recipe, so that every
request fits (checked in the request cache). The teacher was never trained on these meta-prompts,
so most of what comes back is junk: the tests assert what each strategy promises for whatever
comes back — counts add up, every drop has a reason, links point at real rows.

Timings on 2 shared CPU cores: a server starts in 7-13 s (imports and the model load); the
chain build, the one test in the default run, takes about 8-12 s, the whole module about 40 s.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from curation.generation import GenerationRequest, SamplingParams
from curation.record import Record
from curation.store import Store
from generators.local_server import LocalServerBackend
from tests.curation.conftest import thinkmix
from tests.generators.test_its import built_ref

pytest.importorskip("fastapi", reason="the local-server backend needs transformers[serving]")

CONTEXT = 512  # the embedded teacher's max_position_embeddings
ON, OFF = "detailed thinking on", "detailed thinking off"

# Short templates for the tiny teacher: a shipped one plus a prompt does not fit its context.
TEMPLATES = {
    "variation.txt": "Problem: $problem\nWrite a new problem like it.\nNew problem:",
    "mcq.txt": (
        "Write a $difficulty $topic question on $subtopic with $options options "
        "A) to $last_letter) and a line Answer: X.\nQuestion:"
    ),
    "feedback.txt": "Task: $prompt\nResponse: $response\nWhat should change?",
    "edit.txt": "Task: $prompt\nResponse: $response\nFeedback: $feedback\nEdited response:",
    "select.txt": "Task: $prompt\nResponse: $response\nRate it 1 to 10.\nScore:",
}

TEACHER = "tiny: {backend: local-server, model: embedded, max_concurrency: 4}"

CHAIN = f"""\
name: http-chain
sources:
  - {{type: tinyworld.math, count: 2, seed: 4}}
teachers:
  {TEACHER}
stages:
  - {{type: generators.question_variation, teacher: tiny, variants: 1, max_tokens: 80,
     template: variation.txt}}
  - {{type: generators.multi_sample, teacher: tiny, samples_on: 2, samples_off: 1,
     temperature: 0.8, max_tokens: 96}}
  - {{type: filters.think_format}}
  - {{type: generators.reasoning_off_pair, teacher: tiny, max_tokens: 48, drop_truncated: false}}
shards: 1
"""

MCQ = f"""\
name: http-mcq
sources:
  - {{type: generators.mcq_grid, topics: {{physics: [optics, waves]}}, difficulties: [easy]}}
teachers:
  {TEACHER}
stages:
  - {{type: generators.mcq_synth, teacher: tiny, samples: 2, max_tokens: 80, template: mcq.txt}}
shards: 1
"""

ITS = """\
name: http-its-{selector}
sources:
  - {{type: tinyworld.instruct, count: 3, seed: 1}}
teachers:
  {teacher}
stages:
  - {{type: generators.its, draft_teacher: tiny, feedback_teacher: tiny, edit_teacher: tiny,
     select_teacher: tiny, drafts: 2, max_tokens: 40, helper_max_tokens: 24,
     feedback_template: feedback.txt, edit_template: edit.txt, select_template: select.txt{reward}}}
shards: 1
"""
REWARD = "tests.generators.test_strategies_local_server:distinct_characters"


def its_recipe(selector: str, reward: str = "") -> str:
    return ITS.format(selector=selector, teacher=TEACHER, reward=reward)


def distinct_characters(prompts: list, completions: list[str], **kwargs) -> list[float | None]:
    """A plain batch reward for the ITS selector: more distinct characters is better."""
    return [float(len(set(c))) if c.strip() else None for c in completions]


def cached_answers(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


def build(folder: Path, recipe_text: str, cache: Path | None = None) -> tuple[Store, str, str]:
    """Write the recipe and the short templates into `folder`, build; (store, ref, CLI output)."""
    folder.mkdir(exist_ok=True)
    for name, text in TEMPLATES.items():
        (folder / name).write_text(text + "\n")
    recipe = folder / f"{recipe_text.split()[1]}.yaml"
    recipe.write_text(recipe_text)
    store = folder / "store"
    extra = ["--cache", cache] if cache else []
    code, output = thinkmix(
        "build", recipe, "--store", store, "--workers", "1", "--no-stats", *extra
    )
    assert code == 0, output
    return Store(store), built_ref(output), output


def stage_counts(store: Store, ref: str) -> dict[str, dict]:
    return {s["name"]: s for s in store.manifest(ref)["stages"]}


def all_rows(store: Store, ref: str) -> list[Record]:
    return store.read_records(ref, "train") + store.read_records(ref, "rejected")


def assert_accounted(store: Store, ref: str, requests: int, cache: Path | None = None) -> None:
    """Nothing failed; every drop has a reason; `requests` were answered, each within context."""
    manifest = store.manifest(ref)
    assert manifest["splits"]["failed"] == 0
    assert sum(manifest["splits"].values()) == len(all_rows(store, ref))
    usage = manifest["usage"]["tiny"]
    assert usage["requests"] == requests and usage["failed_requests"] == 0
    for stage in manifest["stages"]:
        assert stage["failed"] == 0 and sum(stage["reasons"].values()) == stage["rejected"]
    for row in store.read_records(ref, "rejected"):
        assert row.stage and row.reason, row
    with sqlite3.connect(cache or store.root / ".cache" / "requests.sqlite") as db:
        rows = db.execute("SELECT backend, model, response FROM responses").fetchall()
    assert {(b, m.split("@")[0]) for b, m, _ in rows} == {("local-server", "embedded")}
    answers = [json.loads(r) for _, _, r in rows]
    assert cache or len(answers) == requests
    assert all(
        a["prompt_tokens"] > 0 and a["prompt_tokens"] + a["completion_tokens"] <= CONTEXT
        for a in answers
    ), answers


@pytest.mark.slow
def test_mcq_grid_and_synth_rows_are_parsed_or_rejected_with_a_reason(tmp_path):
    store, ref, _ = build(tmp_path, MCQ)
    synth = stage_counts(store, ref)["generators.mcq_synth"]
    assert synth["in"] == 2 and synth["kept"] + synth["rejected"] == 2 * 2
    assert set(synth["reasons"]) <= {
        "mcq_unparsed",
        "mcq_bad_options",
        "mcq_missing_answer",
        "mcq_answer_not_in_options",
    }
    rows = all_rows(store, ref)
    assert Counter(r.meta["cell_id"] for r in rows) == {
        "physics/optics/easy": 2,
        "physics/waves/easy": 2,
    }
    assert {r.meta["sample"] for r in rows} == {"0", "1"}
    for row in store.read_records(ref, "train"):  # whatever the tiny teacher got right is valid
        assert row.expected_answer in "ABCD" and "A) " in row.input[0]["content"]
        assert row.category == "science" and row.output == ""
    for row in store.read_records(ref, "rejected"):  # the raw text stays beside the reason
        assert row.stage == "generators.mcq_synth" and row.reason.startswith("mcq_") and row.output
    assert_accounted(store, ref, requests=4)


def test_variation_then_multi_sample_then_reasoning_off_pairs(tmp_path):
    store, ref, _ = build(tmp_path, CHAIN)
    stages, rows = stage_counts(store, ref), all_rows(store, ref)
    train = store.read_records(ref, "train")

    # question_variation: parents kept, one variant each, kept or rejected, linked to its parent
    variation = stages["generators.question_variation"]
    assert variation["in"] == 2 and variation["kept"] + variation["rejected"] == 2 + 2
    generated = [r for r in rows if "sample" in r.meta]  # multi_sample's rows
    parents = {r.meta["problem_id"]: r.source_id for r in generated if "parent_id" not in r.meta}
    assert len(parents) == 2
    variants = [r for r in rows if "parent_id" in r.meta]
    assert {r.meta["parent_id"] for r in variants} == set(parents)
    for v in variants:
        assert v.source_id == f"{parents[v.meta['parent_id']]}~v{v.meta['variant']}"
        assert v.expected_answer in (None, "") or v.meta["answer_source"] == "teacher_unverified"
    for r in rows:
        if r.stage == "generators.question_variation":
            assert r.reason.startswith("variation_") and "parent_id" in r.meta

    # multi_sample: per prompt 2 answers behind the "on" system prompt and 1 behind "off"
    prompts = variation["kept"]
    sample = stages["generators.multi_sample"]
    assert sample["in"] == prompts and sample["kept"] + sample["rejected"] == prompts * 3
    per_prompt = defaultdict(Counter)
    for r in generated:
        per_prompt[r.meta["problem_id"]][(r.system_prompt, r.reasoning)] += 1
    assert len(per_prompt) == prompts
    assert all(c == {(ON, "on"): 2, (OFF, "off"): 1} for c in per_prompt.values()), per_prompt
    for r in generated:
        if r.reason is None and r.reasoning == "on":
            assert r.output.lstrip().startswith("<think>")  # what think_format keeps

    # reasoning_off_pair: one off answer per prompt with a kept on row, linked both ways
    pair = stages["generators.reasoning_off_pair"]
    assert pair["in"] == stages["filters.think_format"]["kept"]
    kept_on = {r.id: r for r in train if r.reasoning == "on"}
    offs = [r for r in rows if "pair_id" in r.meta and "sample" not in r.meta]
    assert len(offs) == len({r.meta["problem_id"] for r in kept_on.values()})
    assert pair["kept"] + pair["rejected"] == pair["in"] + len(offs)
    for off in offs:
        on = kept_on[off.meta["pair_id"]]
        assert off.meta["problem_id"] == on.meta["problem_id"] and off.input == on.input
        assert (off.system_prompt, off.reasoning) == (OFF, "off")
        if off.reason is None:
            assert on.meta["pair_id"] == off.id and "<think>" not in off.output
        else:
            assert off.reason.startswith("off_") and "pair_id" not in on.meta
    assert_accounted(store, ref, requests=2 + prompts * 3 + len(offs))


@pytest.mark.slow
def test_its_keeps_the_trail_and_selects_among_the_edits(tmp_path):
    """Judged by the tiny teacher (which rarely writes a score), then by a reward on the same
    drafts, feedback and edits: the second build finds every answer in the shared cache, so it
    starts no server."""
    cache = tmp_path / "requests.sqlite"
    *judged, _ = build(tmp_path / "judge", its_recipe("judge"), cache)
    answered = cached_answers(cache)
    *rewarded, output = build(
        tmp_path / "reward", its_recipe("reward", f", reward: '{REWARD}'"), cache
    )
    # drafts, feedback and edits all came from the cache: no request, so no server start
    assert cached_answers(cache) == answered and "teacher tiny: 0 new requests" in output
    for (store, ref), selector in ((judged, "judge:embedded"), (rewarded, f"reward:{REWARD}")):
        its = stage_counts(store, ref)["generators.its"]
        assert its["in"] == 3 and its["kept"] + its["rejected"] == 3
        requests = 0
        for row in all_rows(store, ref):
            assert row.meta["its_mode"] == "its" and row.meta["its_selector"] == selector
            assert (row.system_prompt, row.reasoning) == (OFF, "off")
            trail = json.loads(row.meta["its_trail"])
            candidates = trail["candidates"]
            assert 1 <= len(candidates) <= 2 and all(c["draft"] for c in candidates)
            for c in candidates:  # each step left its text or a note saying why not
                assert c["feedback"] or "feedback_empty" in c["notes"]
                asked = c["feedback"] is not None  # no feedback, no edit request
                assert c["edit"] or not asked or any(n.startswith("edit_") for n in c["notes"])
                if selector.startswith("reward"):  # a non-empty text always gets a reward
                    assert c["score"] == distinct_characters([], [c["edit"] or c["draft"]])[0]
                else:
                    assert c["score"] is not None or "judge_unparsed" in c["notes"]
            requests += 2 + len(candidates) + sum(c["feedback"] is not None for c in candidates)
            # drafts, feedback per candidate, an edit per feedback (and a judgement below)
            if selector.startswith("judge"):
                requests += len(candidates)
                assert all(c["judge"] or c["score"] is None for c in candidates)
            if trail["winner"] is None:
                assert row.reason == "its_unjudged"
                assert row.output == (candidates[0]["edit"] or candidates[0]["draft"])
                continue
            (winner,) = [c for c in candidates if c["index"] == trail["winner"]]
            assert row.reason is None and row.meta["its_winner"] == str(winner["index"])
            assert row.output == (winner["edit"] or winner["draft"])
            assert (
                row.scores["its_select"]
                == winner["score"]
                == max(c["score"] for c in candidates if c["score"] is not None)
            )
        assert_accounted(store, ref, requests, cache)
    # the reward scores every non-empty text, so every row is kept with its best candidate:
    # an edit wherever its draft got feedback and an edit (junk from the tiny teacher, but text)
    store, ref = rewarded
    assert stage_counts(store, ref)["generators.its"]["kept"] == 3
    won_by_edits = 0
    for row in store.read_records(ref, "train"):
        candidates = json.loads(row.meta["its_trail"])["candidates"]
        assert row.output in [c["edit"] or c["draft"] for c in candidates]
        won_by_edits += row.output in [c["edit"] for c in candidates]
    assert won_by_edits > 0


# ---------------------------------------------------------------- the backend itself


def ask(text: str, max_tokens: int) -> GenerationRequest:
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    return GenerationRequest.build([{"role": "user", "content": text}], sampling)


def test_no_server_starts_until_a_request_needs_one_and_a_failed_start_says_why():
    backend = LocalServerBackend("embedded", startup_timeout_s=0.01)
    try:
        assert backend.context_tokens == CONTEXT and not backend.running
        (refused,) = asyncio.run(backend.generate([ask("What is 2+3? " * 45, 16)]))
        assert refused.error.startswith("prompt_too_long: the prompt has")
        assert "max_position_embeddings" in refused.error and "(not retried)" in refused.error
        assert not backend.running and backend.stats.calls == 0  # refused here, not sent
        for _ in range(2):  # a start that failed fails every later call the same way
            with pytest.raises(RuntimeError, match="was not healthy within 0 s"):
                asyncio.run(backend.generate([ask("What is 2+3?", 8)]))
        assert not backend.running
    finally:
        backend.close()


@pytest.mark.slow
def test_prompts_past_the_context_are_refused_and_long_answers_capped():
    backend = LocalServerBackend("embedded", max_concurrency=2)
    try:
        too_long, near = ask("What is 2+3? " * 45, 16), ask("What is 2+3? " * 37, 200)
        assert backend.prompt_tokens(too_long) >= CONTEXT > backend.prompt_tokens(near) + 16
        refused, capped = asyncio.run(backend.generate([too_long, near]))
        assert refused.error.startswith("prompt_too_long: ") and backend.running
        assert backend.stats.calls == 1  # the refused prompt never reached the server
        # the server counts the prompt as we do, and stops where the context ends
        assert capped.error is None and capped.prompt_tokens == backend.prompt_tokens(near)
        assert capped.prompt_tokens + capped.completion_tokens <= CONTEXT
    finally:
        backend.close()
    assert not backend.running
