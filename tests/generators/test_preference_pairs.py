"""generators.preference_pair: best/worst per prompt and toggle with a margin; and the shipped
preference recipe built end to end on the embedded teacher with a tiny trained reward model."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import generators.preference_pairs  # noqa: F401  (registers the stage until generators imports it)
from curation.context import RunContext
from curation.record import Record
from curation.store import Store
from generators.preference_pairs import PreferencePair, pick_pair

RECIPE = Path(__file__).parents[2] / "curation" / "recipes" / "preference.yaml"


def test_pick_pair_takes_best_and_worst_or_nothing():
    assert pick_pair([0.2, 1.5, -0.3], min_margin=1.0) == (1, 2)
    assert pick_pair([0.2, 1.5, -0.3], min_margin=1.8) == (1, 2)  # the bound is inclusive
    assert pick_pair([0.2, 1.5, -0.3], min_margin=1.81) is None
    assert pick_pair([1.0, 1.0, 1.0]) is None  # all tied: no pair even at margin 0
    assert pick_pair([2.0, 1.0, 2.0, 1.0]) == (0, 1)  # ties go to the earlier sample
    assert pick_pair([3.0]) is None and pick_pair([]) is None


def sample(problem: str, k: int, toggle: str, reward: float | None) -> Record:
    scores = {} if reward is None else {"reward": reward}
    return Record(id=f"{problem}-{toggle}-{k}", input=[{"role": "user", "content": problem}],
                  output=f"answer {k}", reasoning=toggle, source_id=problem, scores=scores,
                  meta={"problem_id": problem})  # fmt: skip


def run(stage: PreferencePair, records: list[Record], tmp_path: Path):
    ctx = RunContext(dataset="prefs", version="v", seed=0, base_dir=tmp_path)
    return asyncio.run(stage.process(records, ctx))


def test_one_pair_per_prompt_and_toggle_with_reasons_for_the_rest(tmp_path):
    records = [sample("p", k, "on", r) for k, r in enumerate([0.2, 1.5, -0.3, 0.9])]
    records += [sample("p", k, "off", r) for k, r in enumerate([0.1, 0.3])]  # gap 0.2 < 0.5
    records += [sample("q", 0, "on", 1.0), sample("q", 0, "off", None)]
    result = run(PreferencePair(min_margin=0.5), records, tmp_path)
    assert len(result.kept) == 1
    pair = result.kept[0]
    assert pair.output == "answer 1" and pair.meta["rejected"] == "answer 2"
    assert pair.meta["chosen_id"] == "p-on-1" and pair.meta["rejected_id"] == "p-on-2"
    assert pair.scores["reward_chosen"] == 1.5 and pair.scores["reward_rejected"] == -0.3
    assert pair.scores["reward_margin"] == pytest.approx(1.8)
    assert pair.reasoning == "on" and pair.id not in {r.id for r in records}
    reasons = {r.id: r.reason for r in result.rejected}
    assert reasons == {
        "p-on-0": "preference_not_extreme",
        "p-on-2": "preference_in_pair",
        "p-on-3": "preference_not_extreme",
        "p-off-0": "preference_margin_too_small",
        "p-off-1": "preference_margin_too_small",
        "q-on-0": "preference_too_few_samples",
        "q-off-0": "preference_missing_reward",
    }
    assert len(result.kept) + len(result.rejected) == len(records)  # every row accounted for


def test_the_pair_does_not_depend_on_row_order(tmp_path):
    records = [sample("p", k, "on", r) for k, r in enumerate([1.0, 1.0, 0.0, 0.0])]
    first = run(PreferencePair(), records, tmp_path).kept[0]
    again = run(PreferencePair(), list(reversed(records)), tmp_path).kept[0]
    assert (first.id, first.meta["rejected_id"]) == (again.id, again.meta["rejected_id"])


def test_negative_margin_is_refused():
    with pytest.raises(ValueError, match="min_margin must be >= 0"):
        PreferencePair(min_margin=-1)


@pytest.fixture
def tiny_policy(tmp_path) -> Path:
    """A randomly initialised 1-layer student saved as a model dir (the RPO policy)."""
    from training.student import fresh_student, load_tokenizer, save_checkpoint

    return save_checkpoint(fresh_student(32, 1, 2), load_tokenizer(), tmp_path / "policy")


def test_the_preference_recipe_builds_pairs_that_rpo_trains_on(tmp_path, tiny_policy):
    """`thinkmix train rm`, then `thinkmix build preference.yaml` (a few prompts), then
    offline `thinkmix train rpo` on the version it made."""
    from tests.curation.conftest import thinkmix
    from training.reward_model import RewardModelConfig, train_reward_model
    from training.rpo import train_rpo
    from training.rpo_config import RPORunConfig

    recipe = tmp_path / "preference.yaml"
    shutil.copy(RECIPE, recipe)
    train_reward_model(tmp_path / "thinkmix-rm",
                       RewardModelConfig(tasks_per_family=8, corruptions_per_task=1, epochs=1,
                                         threads=1))  # fmt: skip
    store = tmp_path / "store"
    code, out = thinkmix("build", recipe, "--store", store, "--cache", tmp_path / "c.sqlite",
                         "--set", "sources.0.count=3", "--set", "sources.1.count=2",
                         "--set", "stages.0.samples_on=2", "--set", "stages.0.samples_off=2",
                         "--set", "stages.0.max_tokens=48", "--set", "stages.2.min_margin=0")  # fmt: skip
    assert code == 0, out
    ref = out.strip().splitlines()[-1]
    the_store = Store(store)
    manifest = the_store.manifest(ref)
    assert sum(manifest["splits"].values()) == 5 * 4  # every sample is in a pair or rejected
    pairs = the_store.read_records(ref, "train")
    assert 1 <= len(pairs) <= 10  # at most one per prompt and toggle
    for pair in pairs:
        assert pair.meta["rejected"] != pair.output or pair.scores["reward_margin"] >= 0
        assert pair.scores["reward_chosen"] >= pair.scores["reward_rejected"]
        assert pair.system_prompt.startswith("detailed thinking")
    config = RPORunConfig(batch_size=2, max_steps=1, max_length=512, threads=1)
    summary = train_rpo(the_store, ref, str(tiny_policy), tmp_path / "rpo", config)
    assert summary["rounds"][0]["pairs"] == len(pairs) and summary["steps"] == 1
