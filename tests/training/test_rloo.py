"""RLOO end to end on tiny parts: constrained prompts, the verifier + format rewards inside trl,
lineage, checkpoint; and the held-out pass-rate metric."""

from __future__ import annotations

import json

import pytest

from training.lineage import Lineage
from training.rl_common import rl_prompt_rows
from training.rloo import (
    constrained_records,
    reward_functions,
    train_rloo,
    verifier_pass_rate,
    write_constrained_version,
)
from training.rloo_config import RLOORunConfig

TINY_RLOO = dict(num_generations=2, prompts_per_step=2, max_steps=2, max_completion_length=12,
                 threads=1)  # fmt: skip


@pytest.fixture
def ifeval(store) -> str:
    return write_constrained_version(store, "ifeval", n=6, seed=3)


def test_constrained_rows_carry_their_constraints_to_the_reward():
    rows = rl_prompt_rows(constrained_records(4, seed=1), reasoning="off")
    assert len(rows) == 4 and all(json.loads(r["constraints"]) for r in rows)
    instruction, fmt = reward_functions(["instruction", "format"])
    gold = [r["expected_answer"] for r in rows]  # meets every constraint by construction
    assert instruction(gold, constraints=[r["constraints"] for r in rows]) == [1.0] * 4
    assert fmt(gold, reasoning=["off"] * 4) == [1.0] * 4


def test_rloo_runs_with_the_verifier_reward_and_records_lineage(store, ifeval, tiny_model,
                                                                tmp_path):  # fmt: skip
    summary = train_rloo(
        store, ifeval, str(tiny_model), tmp_path / "run", RLOORunConfig(**TINY_RLOO)
    )
    assert summary["steps"] == 2 and summary["prompts"] == 6
    run = tmp_path / "run"
    assert (run / "checkpoint" / "model.safetensors").is_file()
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/instruction_reward/mean" in m for m in metrics)
    assert set(summary["rewards"]) == {"instruction", "format"}
    with Lineage.open(store) as db:
        info = db.run(summary["run_id"])
    assert info.kind == "rloo" and len(info.rows["rloo"]) == 6


def test_rloo_refuses_prompts_without_constraints(store, prompts, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="no row has meta.constraints"):
        train_rloo(store, prompts, str(tiny_model), tmp_path / "run", RLOORunConfig(**TINY_RLOO))
    with pytest.raises(ValueError, match="rewards: expected"):
        RLOORunConfig(rewards=["helpfulness"])


def test_verifier_pass_rate_on_held_out_prompts(tiny_model):
    rows = rl_prompt_rows(constrained_records(3, seed=99), reasoning="off")
    rate = verifier_pass_rate(str(tiny_model), rows, max_tokens=4)
    assert rate["answers"] == 3 and 0.0 <= rate["strict"] <= rate["loose"] <= 1.0


def test_rloo_command(store, ifeval, tiny_model, tmp_path):
    from tests.training.conftest import thinkmix

    code, out = thinkmix("train", "rloo", "--data", ifeval, "--model", tiny_model, "--store",
                         store.root, "--out", tmp_path / "r", "--set", "max_steps=1",
                         "--set", "num_generations=2", "--set", "prompts_per_step=2",
                         "--set", "max_completion_length=8", "--set", "threads=1")  # fmt: skip
    assert code == 0, out
    assert "6 prompts, 1 steps" in out and "instruction reward" in out
    assert out.strip().splitlines()[-1].startswith("rloo-")
