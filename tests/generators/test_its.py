"""generators.its (Feedback -> Edit -> Select): parsing tables, the flow with scripted teachers,
and one small build with the embedded teacher through the CLI.

`ScriptedBackend` below is a fake of the Backend *interface* (generators/base.py), registered as
`scripted`; the strategy tests in this folder share it and `scripted_ctx`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from curation.cache import RequestCache
from curation.context import CachedTeacher, RunContext
from curation.recipe import RecipeError, load_recipe
from curation.record import THINKING_OFF, Record
from curation.registry import register_backend
from curation.store import Store
from generators.base import GenerationRequest, GenerationResponse
from generators.its import FeedbackEditSelect, parse_edit, parse_feedback, parse_score
from generators.templates import load_template
from tests.curation.conftest import thinkmix

Script = Callable[[GenerationRequest], "str | GenerationResponse"]


@register_backend("scripted")
class ScriptedBackend:
    """Answers each request with `respond(request)`; keeps every request it saw."""

    name = "scripted"

    def __init__(self, model: str = "scripted", respond: Script | None = None, **_: object):
        self.model = model
        self.respond = respond or (lambda request: "")
        self.seen: list[GenerationRequest] = []

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        out = []
        for request in requests:
            self.seen.append(request)
            got = self.respond(request)
            out.append(got if isinstance(got, GenerationResponse) else GenerationResponse(got))
        return out

    def close(self) -> None:
        pass


def scripted_ctx(tmp_path: Path, **scripts: Script) -> RunContext:
    """A RunContext whose teachers (named by keyword) are scripted backends behind a real cache."""
    cache = RequestCache(tmp_path / "requests.sqlite")
    ctx = RunContext(dataset="t", version="v0", seed=0, base_dir=tmp_path)
    for name, script in scripts.items():
        backend = ScriptedBackend(model=f"{name}-model", respond=script)
        ctx.teachers[name] = CachedTeacher(name, backend, cache)
    return ctx


def built_ref(output: str) -> str:
    """The `dataset/version` line `thinkmix build` prints last (log lines may follow it)."""
    refs = re.findall(r"(?m)^([a-z0-9][a-z0-9_-]*/[0-9a-f]{12})$", output)
    assert refs, output
    return refs[-1]


def user_text(request: GenerationRequest) -> str:
    return request.messages[-1][1]


def prompt_row(i: int, text: str | None = None) -> Record:
    return Record(
        id=f"row{i:03d}",
        input=[{"role": "user", "content": text or f"Write a haiku about topic {i}."}],
        category="chat",
        source="test",
        source_id=str(i),
    )


# ---------------------------------------------------------------- parsing tables


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 8", 8.0),
        ("Clear and correct.\n**Score**: 7.5", 7.5),
        ("Good answer. I'd give it 8/10.", 8.0),
        ("Rating: 4 out of 5", 8.0),
        ("9", 9.0),
        ("Score: [[7]]", 7.0),
        ("It earns a score of 5.", 5.0),
        ("Score: 3 at first glance... final Score: 6", 6.0),
        ("Score: 12", None),  # off the 1-10 scale: not judged rather than judged wrongly
        ("Score: 0", None),
        ("A thoughtful answer, well done.", None),
        ("", None),
    ],
)
def test_parse_score(text, score):
    assert parse_score(text, 1, 10) == score


@pytest.mark.parametrize(
    ("text", "edit"),
    [
        ("Edited response: The sky is blue.", "The sky is blue."),
        ("Sure, here it is.\n\nEdited response:\nLine one.\nLine two.", "Line one.\nLine two."),
        ("**Revised response:** Better text", "Better text"),
        ("Just the new text.", "Just the new text."),  # no marker: the whole reply
        ("Edited response:   ", None),
        ("Edited response: <the revised response>", None),  # the template echoed back
        ("", None),
    ],
)
def test_parse_edit(text, edit):
    assert parse_edit(text) == edit


def test_parse_feedback():
    assert parse_feedback("Feedback: too short; add an example.") == "too short; add an example."
    assert parse_feedback("**Feedback:** ok") == "ok"
    assert parse_feedback("  \n ") is None


def test_templates_are_checked(tmp_path):
    assert load_template("its_edit", ("prompt", "response", "feedback")).fields() == {
        "prompt",
        "response",
        "feedback",
    }
    (tmp_path / "bad.txt").write_text("Rate $response for $user")
    with pytest.raises(ValueError, match=r"unknown field \$user"):
        load_template("bad.txt", ("prompt", "response"), tmp_path)
    (tmp_path / "short.txt").write_text("Rate $response")
    with pytest.raises(ValueError, match=r"missing field\(s\) \$prompt"):
        load_template("short.txt", ("prompt", "response"), tmp_path)
    with pytest.raises(ValueError, match="shipped name"):
        load_template("nope", ("prompt",))


# ---------------------------------------------------------------- the flow


def _teachers(judge: Script | None = None) -> dict[str, Script]:
    return {
        "drafter": lambda r: f"draft {r.sample_index} for: {user_text(r)[:20]}",
        "critic": lambda r: f"Feedback: make draft {r.sample_index} livelier.",
        "editor": lambda r: f"Sure!\nEdited response: edited {r.sample_index}",
        "judge": judge
        or (lambda r: "Nice. Score: 9" if "edited 2" in user_text(r) else "Score: 4"),
    }


def _its(**params) -> FeedbackEditSelect:
    roles = dict(
        draft_teacher="drafter",
        feedback_teacher="critic",
        edit_teacher="editor",
        select_teacher="judge",
    )
    return FeedbackEditSelect(**{**roles, "drafts": 3, **params})


def test_winner_is_the_highest_score_and_the_trail_is_kept(tmp_path):
    ctx = scripted_ctx(tmp_path, **_teachers())
    result = asyncio.run(_its().process([prompt_row(1)], ctx))
    (row,) = result.kept
    assert not result.rejected and not result.failed
    assert row.output == "edited 2"
    assert row.scores["its_select"] == 9.0
    assert row.generator == "editor-model"
    assert (row.reasoning, row.system_prompt) == ("off", THINKING_OFF)
    assert row.meta["its_mode"] == "its" and row.meta["its_winner"] == "2"
    assert row.meta["its_selector"] == "judge:judge-model"
    trail = json.loads(row.meta["its_trail"])
    assert trail["winner"] == 2
    assert [c["index"] for c in trail["candidates"]] == [0, 1, 2]
    first = trail["candidates"][0]
    assert first["draft"].startswith("draft 0")
    assert first["feedback"] == "make draft 0 livelier."
    assert first["edit"] == "edited 0"
    assert first["score"] == 4.0 and first["judge"] == "Score: 4"
    # the editor saw each draft with its own feedback; the judge saw the edits
    editor = ctx.teacher("editor").backend
    assert [user_text(r).count("make draft 1 livelier") for r in editor.seen] == [0, 1, 0]
    assert all("edited" in user_text(r) for r in ctx.teacher("judge").backend.seen)


def test_ties_go_to_the_lower_draft_and_unparsed_judgements_do_not_win(tmp_path):
    judge = {0: "hmm", 1: "Score: 6", 2: "Score: 6"}
    ctx = scripted_ctx(tmp_path, **_teachers(lambda r: judge[r.sample_index]))
    (row,) = asyncio.run(_its().process([prompt_row(1)], ctx)).kept
    assert row.meta["its_winner"] == "1"
    trail = json.loads(row.meta["its_trail"])
    assert trail["candidates"][0]["score"] is None
    assert trail["candidates"][0]["notes"] == ["judge_unparsed"]


def test_no_judged_candidate_rejects_the_row_with_its_trail(tmp_path):
    ctx = scripted_ctx(tmp_path, **_teachers(lambda r: "I cannot decide."))
    result = asyncio.run(_its().process([prompt_row(1)], ctx))
    (row,) = result.rejected
    assert row.reason == "its_unjudged" and row.stage == "generators.its"
    assert json.loads(row.meta["its_trail"])["winner"] is None
    assert row.output == "edited 0"


def test_a_failed_feedback_or_edit_leaves_the_draft_competing_unedited(tmp_path):
    teachers = _teachers(lambda r: "Score: 9" if "draft 1" in user_text(r) else "Score: 2")
    teachers["critic"] = lambda r: (
        GenerationResponse("", "error", error="HTTP 503") if r.sample_index == 1 else "Fix it."
    )
    teachers["editor"] = lambda r: (
        "" if r.sample_index == 0 else f"Edited response: edited {r.sample_index}"
    )
    ctx = scripted_ctx(tmp_path, **teachers)
    (row,) = asyncio.run(_its().process([prompt_row(1)], ctx)).kept
    trail = json.loads(row.meta["its_trail"])["candidates"]
    assert trail[0]["notes"] == ["edit_empty"] and trail[0]["edit"] is None
    assert trail[1]["notes"] == ["feedback_failed: HTTP 503"] and trail[1]["feedback"] is None
    assert row.output.startswith("draft 1")  # unedited draft won
    assert row.generator == "drafter-model"


def test_failed_drafts_go_to_the_failed_split(tmp_path):
    teachers = _teachers()
    teachers["drafter"] = lambda r: GenerationResponse("", "error", error="timeout after 3 retries")
    ctx = scripted_ctx(tmp_path, **teachers)
    result = asyncio.run(_its().process([prompt_row(1), prompt_row(2)], ctx))
    assert not result.kept and len(result.failed) == 2
    assert all(r.reason == "request_failed: timeout after 3 retries" for r in result.failed)
    assert not ctx.teacher("critic").backend.seen  # nothing to critique


@pytest.mark.parametrize("params", [{"subset": 0.5}, {"every_nth": 3}, {"subset": 0.0}])
def test_subset_is_deterministic_by_id_and_the_rest_get_one_draft(tmp_path, params):
    rows = [prompt_row(i) for i in range(40)]
    stage = _its(**params)
    chosen = {r.id for r in rows if stage.selected(r)}
    assert chosen == {r.id for r in rows if _its(**params).selected(r)}
    if params == {"subset": 0.0}:
        assert not chosen
    else:
        assert 0 < len(chosen) < 40
    ctx = scripted_ctx(tmp_path, **_teachers())
    result = asyncio.run(stage.process(rows, ctx))
    assert len(result.kept) == 40
    modes = {r.meta["its_mode"] for r in result.kept if r.source_id in {x.source_id for x in rows}}
    assert modes <= {"its", "single"}
    for row in result.kept:
        parent = next(r for r in rows if r.source_id == row.source_id)
        assert (row.meta["its_mode"] == "its") == (parent.id in chosen)
        if row.meta["its_mode"] == "single":
            assert row.output.startswith("draft 0") and "its_trail" not in row.meta
    drafts = ctx.teacher("drafter").backend.seen
    assert len(drafts) == 3 * len(chosen) + (40 - len(chosen))
    assert len(ctx.teacher("critic").backend.seen) == 3 * len(chosen)


def length_reward(prompts, completions, **kwargs):
    """A plain batch reward (the hook's contract): longer is better, 'skip' cannot be judged."""
    return [None if "skip" in c else float(len(c)) for c in completions]


def test_a_reward_function_replaces_the_judge(tmp_path):
    teachers = _teachers()
    teachers["editor"] = lambda r: (
        "Edited response: " + "x" * (5 + r.sample_index * (2 - r.sample_index))
    )
    del teachers["judge"]
    ctx = scripted_ctx(tmp_path, **teachers)
    stage = _its(reward="tests.generators.test_its:length_reward")
    assert "select_teacher" not in stage.teacher_fields
    (row,) = asyncio.run(stage.process([prompt_row(1)], ctx)).kept
    assert row.meta["its_winner"] == "1" and row.scores["its_select"] == 6.0
    assert row.meta["its_selector"] == "reward:tests.generators.test_its:length_reward"


def test_the_same_build_asks_no_model_twice(tmp_path):
    ctx = scripted_ctx(tmp_path, **_teachers())
    first = asyncio.run(_its().process([prompt_row(1)], ctx)).kept[0]
    again = asyncio.run(_its().process([prompt_row(1)], ctx)).kept[0]
    assert (first.id, first.output, first.meta) == (again.id, again.output, again.meta)
    assert ctx.teacher("drafter").usage.cached_requests == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"drafts": 0}, "drafts must be >= 1"),
        ({"subset": 1.5}, "subset must be a fraction"),
        ({"subset": 0.5, "every_nth": 2}, "not both"),
        ({"reward": "no_such_module:fn"}, "cannot be imported"),
        ({"reward": "length_reward"}, "package.module:function"),
        ({"edit_template": "missing"}, "not found"),
    ],
)
def test_bad_params_say_how_to_fix(params, message):
    with pytest.raises(ValueError, match=message):
        _its(**params)


def test_recipe_names_the_missing_teacher(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: chat\nsources: [{type: tinyworld.instruct, count: 2}]\n"
        "teachers: {chat: {backend: transformers, model: embedded}}\n"
        "stages: [{type: generators.its, edit_teacher: editor}]\n"
    )
    with pytest.raises(RecipeError, match="edit_teacher: unknown teacher 'editor'"):
        load_recipe(recipe)


# ---------------------------------------------------------------- end to end

ITS_RECIPE = """\
name: tiny-its
sources:
  - {type: tinyworld.instruct, count: 4, seed: 1}
teachers:
  chat: {backend: transformers, model: embedded, batch_size: 16}
stages:
  - {type: generators.its, draft_teacher: chat, feedback_teacher: chat, edit_teacher: chat,
     select_teacher: chat, drafts: 2, every_nth: 2, max_tokens: 30, helper_max_tokens: 16}
shards: 1
"""


def test_build_with_the_embedded_teacher_accounts_for_every_row(tmp_path):
    recipe = tmp_path / "its.yaml"
    recipe.write_text(ITS_RECIPE)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--no-stats")
    assert code == 0, output
    ref = built_ref(output)
    store = Store(tmp_path / "store")
    manifest = store.manifest(ref)
    assert sum(manifest["splits"].values()) == 4
    (stage,) = [s for s in manifest["stages"] if s["name"] == "generators.its"]
    assert stage["in"] == 4 == stage["kept"] + stage["rejected"] + stage["failed"]
    assert {s["stage"] for s in manifest["sampling"]} == {"generators.its"}
    rows = store.read_records(ref, "train") + store.read_records(ref, "rejected")
    assert len(rows) == 4
    for row in rows:
        assert row.meta["its_mode"] in ("its", "single")
        if row.meta["its_mode"] == "its":  # the tiny judge rarely says "Score: N": either way
            trail = json.loads(row.meta["its_trail"])  # the trail explains the outcome
            assert len(trail["candidates"]) <= 2
            assert (trail["winner"] is None) == (row.reason == "its_unjudged")
        else:
            assert row.reason in (None, "its_empty")
