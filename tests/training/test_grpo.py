"""GRPO end to end on tiny parts: pre-filter, curriculum sampler inside trl, lineage, checkpoint."""

from __future__ import annotations

import json

import pytest

from curation.store import Store
from training.data import TINYWORLD_GOLD, prompt_rows, tinyworld_records
from training.grpo import train_grpo
from training.grpo_config import GRPORunConfig
from training.lineage import Lineage
from training.prefilter import sample_pass_rates

TINY_GRPO = dict(prefilter_samples=2, num_generations=2, prompts_per_step=2, max_steps=2,
                 max_completion_length=12, threads=1)  # fmt: skip


def test_grpo_runs_with_the_curriculum_and_records_lineage(store, prompts, tiny_model, tmp_path):
    # a random model solves nothing: keep the never-solved prompts to exercise the whole loop
    config = GRPORunConfig(**TINY_GRPO, drop_pass_rate_at_or_above=0.75,
                           drop_pass_rate_at_or_below=None)  # fmt: skip
    summary = train_grpo(store, prompts, str(tiny_model), tmp_path / "run", config)
    assert summary["steps"] == 2
    assert summary["prefilter"]["prompts"] == 8  # 2 per family, reasoning on
    run = tmp_path / "run"
    prefiltered = [json.loads(x) for x in (run / "prefilter.jsonl").read_text().splitlines()]
    assert len(prefiltered) == 8 and all(0 <= p["pass_rate"] <= 1 for p in prefiltered)
    schedule = json.loads((run / "curriculum.json").read_text())
    assert len(schedule) == 2 and all(len(b["rows"]) == 2 for b in schedule)
    assert (run / "checkpoint" / "model.safetensors").is_file()
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/format_reward/mean" in m for m in metrics)
    with Lineage.open(store) as db:
        info = db.run(summary["run_id"])
    kept = {p["row_id"] for p in prefiltered if p["dropped"] is None}
    assert info.kind == "grpo" and set(info.rows["grpo"]) == kept


def test_grpo_refuses_when_the_prefilter_leaves_nothing(store, prompts, tiny_model, tmp_path):
    config = GRPORunConfig(**TINY_GRPO, drop_pass_rate_at_or_below=0.0)  # a random model: all 0
    with pytest.raises(ValueError, match="dropped every prompt"):
        train_grpo(store, prompts, str(tiny_model), tmp_path / "run", config)


def _instruct_version(store: Store, per_family: int, seed: int) -> str:
    """Tinyworld instruct prompts only: short exact replies, so rollouts are a few tokens."""
    rows = [r for r in tinyworld_records(per_family, seed, outputs=False)
            if r.meta["family"] == "instruct"]  # fmt: skip
    staging = store.staging(TINYWORLD_GOLD, f"instruct-{seed}")
    staging.mark_done(0, [staging.write_shard("train", 0, rows)])
    staging.commit({"recipe": {"source": "tests/training/test_grpo.py", "seed": seed}})
    return f"{TINYWORLD_GOLD}/instruct-{seed}"


def test_grpo_raises_the_reward_on_its_training_prompts(store, tmp_path):
    """The behaviour GRPO exists for: after a few steps from the embedded teacher, the policy
    solves its (pre-filtered) training prompts more often than the starting policy did.

    Reasoning off on instruct prompts keeps completions at <= 24 characters, so this takes
    seconds. Both policies are measured the same way: 16 seeded samples per kept prompt at the
    rollout temperature, scored by the accuracy reward GRPO trained on.
    """
    ref = _instruct_version(store, per_family=8, seed=3)
    config = GRPORunConfig(reasoning="off", rewards=["accuracy"], num_generations=8,
                           prompts_per_step=2, max_steps=8, learning_rate=1e-4,
                           max_completion_length=24, curriculum=False, threads=1)  # fmt: skip
    summary = train_grpo(store, ref, "embedded", tmp_path / "run", config)
    kept_ids = {json.loads(line)["row_id"] for line in
                (tmp_path / "run" / "prefilter.jsonl").read_text().splitlines()
                if json.loads(line)["dropped"] is None}  # fmt: skip
    # the default pre-filter left only prompts with a mixed pass rate: every group has signal
    assert summary["prefilter"]["dropped"].get("pass_rate_too_high", 0) > 0
    rows = [r for r in prompt_rows(store.read_records(ref), "off") if r["row_id"] in kept_ids]
    assert rows

    def mean_reward(model: str) -> float:
        rates = sample_pass_rates(model, rows, samples=16, temperature=config.temperature,
                                  top_p=1.0, max_tokens=24, seed=99)  # fmt: skip
        return sum(rates) / len(rates)

    before, after = mean_reward("embedded"), mean_reward(summary["checkpoint"])
    assert after >= before + 0.15, (before, after)
    assert set(summary["rewards"]) == {"accuracy", "accuracy_over_pass_rate"}


@pytest.mark.slow
def test_grpo_from_the_embedded_teacher_moves_its_rewards(store, tmp_path):
    """A longer run from the embedded teacher on instruct/mcq prompts (seconds per step)."""
    from training.data import write_tinyworld_version

    ref = write_tinyworld_version(store, "p-slow", per_family=6, seed=9, outputs=False)
    config = GRPORunConfig(prefilter_samples=4, num_generations=4, prompts_per_step=2,
                           max_steps=6, max_completion_length=96, learning_rate=1e-4)  # fmt: skip
    summary = train_grpo(store, ref, "embedded", tmp_path / "run", config)
    assert summary["steps"] == 6
    assert set(summary["rewards"]) == {"accuracy", "format", "accuracy_over_pass_rate"}


@pytest.mark.gpu
def test_grpo_with_vllm_on_a_gpu(store, prompts, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm", reason="needs the vllm extra")
    config = GRPORunConfig(**{**TINY_GRPO, "max_completion_length": 64}, use_vllm=True,
                           drop_pass_rate_at_or_above=None)  # fmt: skip
    summary = train_grpo(store, prompts, "embedded", tmp_path / "run", config)
    assert summary["steps"] == 2
