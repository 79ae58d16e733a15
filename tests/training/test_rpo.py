"""RPO: the loss on hand-computed values, then offline and online runs on tiny models."""

from __future__ import annotations

import json
import math

import pytest
import torch

from curation.record import SYSTEM_PROMPTS, Record, record_id
from training.lineage import Lineage
from training.rpo import implicit_reward_gap, online_pairs, rpo_loss, train_rpo
from training.rpo_config import RPORunConfig

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75


def loss(a: float, b: float, distance: str = "bwd_kl", eta: float = 1.0) -> float:
    return rpo_loss(torch.tensor(a), torch.tensor(b), eta, distance).item()


def test_bwd_kl_matches_the_bernoulli_kl_by_hand():
    # a = 0 (policy indifferent), b = ln 3: 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5)
    assert loss(0.0, LN3) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)
    assert loss(0.0, LN3) == pytest.approx(0.130812, abs=1e-6)
    # a = ln 3, b = 0: 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25)
    assert loss(LN3, 0.0) == pytest.approx(0.143841, abs=1e-6)


def test_fwd_kl_is_bwd_kl_with_the_arguments_swapped_and_squared_is_the_square():
    assert loss(0.0, LN3, "fwd_kl") == pytest.approx(0.143841, abs=1e-6)
    assert loss(LN3, 0.0, "fwd_kl") == pytest.approx(0.130812, abs=1e-6)
    assert loss(1.0, -2.0, "squared") == pytest.approx(9.0)


@pytest.mark.parametrize("distance", ["bwd_kl", "fwd_kl", "squared"])
@pytest.mark.parametrize("gap", [-3.0, 0.0, 0.7, 40.0])
def test_zero_when_the_policy_gap_equals_eta_times_the_reward_gap(distance, gap):
    eta = 2.0
    assert loss(gap, gap / eta, distance, eta) == pytest.approx(0.0, abs=1e-6)
    if abs(gap) < 5:  # away from saturation any disagreement costs something
        assert loss(gap + 0.5, gap / eta, distance, eta) > 1e-3
        assert loss(gap - 0.5, gap / eta, distance, eta) > 1e-3


def test_the_kl_distances_saturate_where_both_gaps_are_large_and_agree_in_sign():
    # sig(40.5) and sig(40) are both ~1: the Bernoulli KL sees no difference, the square does
    assert loss(40.5, 40.0) < 1e-12 and loss(40.5, 40.0, "fwd_kl") < 1e-12
    assert loss(40.5, 40.0, "squared") == pytest.approx(0.25)


def test_eta_scales_the_reward_gap_not_the_policy_gap():
    # D[0 || eta * ln3 / 2] with eta = 2 is D[0 || ln 3]
    assert loss(0.0, LN3 / 2, eta=2.0) == pytest.approx(0.130812, abs=1e-6)


def test_the_gradient_pulls_the_policy_gap_toward_the_target():
    # d/da KL(Bern(sig b) || Bern(sig a)) = sig(a) - sig(b): 0.5 - 0.75 = -0.25 at a=0, b=ln 3
    a = torch.tensor(0.0, requires_grad=True)
    rpo_loss(a, torch.tensor(LN3)).backward()
    assert a.grad.item() == pytest.approx(-0.25, abs=1e-6)


def test_large_gaps_stay_finite():
    values = rpo_loss(torch.tensor([80.0, -80.0, 80.0]), torch.tensor([-80.0, 80.0, 80.0]))
    assert torch.isfinite(values).all()
    assert values[2].item() == pytest.approx(0.0, abs=1e-6)
    # b = -80: ~ 1 * (log sig(80) - log sig(-80)) = softplus(80) ~ 80, linear in the policy gap
    assert values[0].item() == pytest.approx(80.0, rel=1e-4)


def test_implicit_reward_gap_is_beta_times_the_log_ratio_difference():
    gap = implicit_reward_gap(torch.tensor(-3.0), torch.tensor(-5.0), torch.tensor(-4.0),
                              torch.tensor(-4.5), beta=0.1)  # fmt: skip
    assert gap.item() == pytest.approx(0.1 * ((-3 + 4) - (-5 + 4.5)))


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="distance must be one of"):
        RPORunConfig(distance="l1")
    with pytest.raises(ValueError, match="thinkmix train rm"):
        RPORunConfig(online=True)


def test_online_pairs_keep_best_and_worst_above_the_margin():
    rows = [{"prompt": [{"role": "system", "content": SYSTEM_PROMPTS["off"]},
                        {"role": "user", "content": q}], "row_id": q} for q in ("a", "b")]  # fmt: skip
    scored = [[("x", 0.1), ("y", 2.0), ("z", -1.0)], [("u", 0.3), ("v", 0.5)]]
    pairs = online_pairs(scored, rows, min_margin=1.0)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair["chosen"][0]["content"] == "y" and pair["rejected"][0]["content"] == "z"
    assert (pair["chosen_reward"], pair["rejected_reward"]) == (2.0, -1.0)
    assert pair["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPTS["off"]}


def write_pairs(store, version: str = "pairs") -> str:
    """A tiny preference version, as `generators.preference_pair` writes it."""
    records = []
    for i in range(6):
        turns = [{"role": "user", "content": f"Say {i}."}]
        toggle = "on" if i % 2 else "off"
        records.append(Record(
            id=record_id("prefs", str(i), turns), input=turns, output=f"{i}",
            system_prompt=SYSTEM_PROMPTS[toggle], reasoning=toggle, source_id=str(i),
            meta={"rejected": f"{i}{i}{i} no", "problem_id": str(i)},
            scores={"reward_chosen": 1.0 + i / 10, "reward_rejected": -0.5},
        ))  # fmt: skip
    staging = store.staging("prefs", version)
    staging.mark_done(0, [staging.write_shard("train", 0, records)])
    staging.commit({"recipe": {"source": "tests"}, "shards": 1})
    return f"prefs/{version}"


TINY_RPO = dict(batch_size=2, max_steps=2, max_length=64, threads=1)


def test_offline_rpo_trains_on_pairs_and_records_lineage(store, tiny_model, tmp_path):
    ref = write_pairs(store)
    config = RPORunConfig(**{**TINY_RPO, "max_steps": 3, "learning_rate": 1e-3})
    summary = train_rpo(store, ref, str(tiny_model), tmp_path / "run", config)
    assert summary["mode"] == "offline" and summary["steps"] == 3
    run = tmp_path / "run"
    assert (run / "checkpoint" / "model.safetensors").is_file()
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [m for m in metrics if "rpo/target_gap" in m]
    assert logged and all(m["rpo/target_gap"] > 1.4 for m in logged)  # eta * (>=1.0 - -0.5)
    # step 1: policy == reference, so the policy gap is 0 and the loss is D[0 || target] > 0
    assert logged[0]["rpo/policy_gap"] == pytest.approx(0.0, abs=1e-6) and logged[0]["loss"] > 0
    assert logged[-1]["rpo/policy_gap"] > 0  # pulled toward the (positive) target gap
    with Lineage.open(store) as db:
        info = db.run(summary["run_id"])
    assert info.kind == "rpo" and len(info.rows["rpo"]) == 6


def test_offline_rpo_refuses_what_it_cannot_train_on(store, prompts, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="no preference pair"):
        train_rpo(store, prompts, str(tiny_model), tmp_path / "run", RPORunConfig(**TINY_RPO))
    config = RPORunConfig(**{**TINY_RPO, "max_length": 4})
    with pytest.raises(ValueError, match="raise max_length"):
        train_rpo(store, write_pairs(store), str(tiny_model), tmp_path / "run2", config)


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """A reward model from `thinkmix train rm`'s code at its smallest (a few seconds)."""
    from training.reward_model import RewardModelConfig, train_reward_model

    out = tmp_path_factory.mktemp("rm")
    config = RewardModelConfig(tasks_per_family=8, corruptions_per_task=1, epochs=1, threads=1)
    return train_reward_model(out, config)["dir"]


def test_online_rpo_samples_scores_pairs_and_trains_each_round(store, prompts, tiny_model,
                                                               tiny_rm, tmp_path):  # fmt: skip
    config = RPORunConfig(**{**TINY_RPO, "max_length": 512}, online=True, iterations=2,
                          samples_per_prompt=2,
                          max_prompts=4, min_margin=0.0, max_completion_length=8,
                          reward_model=tiny_rm)  # fmt: skip
    summary = train_rpo(store, prompts, str(tiny_model), tmp_path / "run", config)
    assert summary["mode"] == "online" and [r["round"] for r in summary["rounds"]] == [0, 1]
    assert all(r["pairs"] >= 1 and r["steps"] >= 1 for r in summary["rounds"])
    assert len(summary["mean_reward"]) == 3  # before each round, and the final policy
    run = tmp_path / "run"
    assert len((run / "rounds.jsonl").read_text().splitlines()) == 2
    assert (run / "checkpoint" / "config.json").is_file() and not (run / "round-0").exists()


def test_reward_model_prefers_gold_answers(tiny_rm):
    from training.reward_model import pair_accuracy, preference_pairs

    assert pair_accuracy(tiny_rm, preference_pairs(5, 1, seed=123)) > 0.5


def test_rm_and_rpo_commands(store, prompts, tiny_model, tmp_path):
    from tests.training.conftest import thinkmix

    code, out = thinkmix("train", "rm", "--out", tmp_path / "rm", "--set", "tasks_per_family=4",
                         "--set", "corruptions_per_task=1", "--set", "epochs=1")  # fmt: skip
    assert code == 0, out
    assert "pairwise accuracy" in out and (tmp_path / "rm" / "config.json").is_file()
    code, out = thinkmix("train", "rpo", "--data", write_pairs(store), "--model", tiny_model,
                         "--store", store.root, "--out", tmp_path / "off", "--set", "max_steps=1",
                         "--set", "batch_size=2", "--set", "threads=1")  # fmt: skip
    assert code == 0, out
    assert "round 0: 6 pairs, 1 steps" in out and out.strip().splitlines()[-1].startswith("rpo-")
    code, out = thinkmix("train", "rpo", "--data", prompts, "--model", tiny_model, "--online",
                         "--store", store.root, "--out", tmp_path / "on")  # fmt: skip
    assert code == 2 and "thinkmix train rm" in out  # online needs a reward model
    code, out = thinkmix("train", "rpo", "--data", prompts, "--model", tiny_model, "--online",
                         "--reward-model", tmp_path / "rm", "--store", store.root,
                         "--out", tmp_path / "on", "--set", "iterations=1",
                         "--set", "samples_per_prompt=2", "--set", "max_prompts=2",
                         "--set", "min_margin=0", "--set", "max_completion_length=6",
                         "--set", "batch_size=2", "--set", "threads=1")  # fmt: skip
    assert code == 0, out
    assert "round 0: 2 pairs" in out and "final policy mean reward" in out
