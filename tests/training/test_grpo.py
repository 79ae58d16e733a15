"""GRPO end to end on tiny parts: pre-filter, curriculum sampler inside trl, lineage, checkpoint."""

from __future__ import annotations

import json

import pytest

from training.grpo import train_grpo
from training.grpo_config import GRPORunConfig
from training.lineage import Lineage

TINY_GRPO = dict(prefilter_samples=2, num_generations=2, prompts_per_step=2, max_steps=2,
                 max_completion_length=12, threads=1)  # fmt: skip


def test_grpo_runs_with_the_curriculum_and_records_lineage(store, prompts, tiny_model, tmp_path):
    config = GRPORunConfig(**TINY_GRPO, drop_pass_rate_at_or_above=0.75)
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


@pytest.mark.slow
def test_grpo_from_the_embedded_teacher_moves_its_rewards(store, tmp_path):
    """A longer run from the embedded teacher on instruct/mcq prompts (seconds per step)."""
    from training.data import write_tinyworld_version

    ref = write_tinyworld_version(store, "p-slow", per_family=6, seed=9, outputs=False)
    config = GRPORunConfig(prefilter_samples=4, num_generations=4, prompts_per_step=2,
                           max_steps=6, max_completion_length=96, learning_rate=1e-4)  # fmt: skip
    summary = train_grpo(store, ref, "embedded", tmp_path / "run", config)
    assert summary["steps"] == 6 and set(summary["rewards"]) == {"accuracy", "format"}


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
