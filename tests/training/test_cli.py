"""`thinkmix train sft|grpo|eval` and `thinkmix lineage` through Typer, on versions built here."""

from __future__ import annotations

import json

from tests.training.conftest import thinkmix


def test_sft_then_lineage_both_ways(store, gold, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("student_hidden: 32\nstudent_layers: 1\nstudent_heads: 2\nthreads: 1\n")
    code, out = thinkmix("train", "sft", "--data", gold, "--store", store.root, "--config", config,
                         "--set", "max_steps=2", "--set", "batch_size=4", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, out
    run_id = out.strip().splitlines()[-1]
    assert run_id.startswith("sft-") and "loss" in out
    code, out = thinkmix("lineage", "--run", run_id, "--store", store.root)
    assert code == 0, out
    assert f"trained on {gold}" in out
    row_id = out.strip().splitlines()[-1]
    code, out = thinkmix("lineage", row_id, "--store", store.root)
    assert code == 0 and run_id in out and gold in out
    code, out = thinkmix("lineage", "nope", "--store", store.root)
    assert code == 0 and "no training run used it" in out
    code, out = thinkmix("lineage", "--run", "nope", "--store", store.root)
    assert code == 2 and "no run 'nope'" in out


def test_sft_runs_the_toggle_audit_at_begin_and_end(store, gold, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("student_hidden: 32\nstudent_layers: 1\nstudent_heads: 2\nthreads: 1\n")
    code, out = thinkmix("train", "sft", "--data", gold, "--store", store.root, "--config", config,
                         "--set", "max_steps=2", "--set", "batch_size=4", "--set", "audit_prompts=2",
                         "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, out
    audits = json.loads((tmp_path / "run" / "summary.json").read_text())["toggle_audit"]
    assert [(a["step"], a["when"]) for a in audits] == [(0, "begin"), (2, "end")]
    assert all(0.0 <= a["off_leakage"] <= 1.0 and "on_think_well_formed" in a for a in audits)
    code, out = thinkmix("train", "sft", "--data", gold, "--store", store.root,
                         "--set", "audit_prompts=-1", "--out", tmp_path / "bad")  # fmt: skip
    assert code == 2 and "audit_prompts must be >= 0" in out


def test_errors_name_the_fix(store, gold, tmp_path):
    code, out = thinkmix("train", "sft", "--data", "missing", "--store", store.root,
                         "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "no dataset or version 'missing'" in out
    code, out = thinkmix("train", "sft", "--data", gold, "--store", store.root, "--set",
                         "learning_rat=1", "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "unknown field(s) learning_rat" in out
    code, out = thinkmix("train", "grpo", "--data", gold, "--model", tmp_path / "nowhere",
                         "--store", store.root, "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "no config.json" in out


def test_eval_on_a_version_reports_family_and_toggle(store, prompts, tiny_model):
    code, out = thinkmix("train", "eval", "--model", tiny_model, "--data", prompts, "--store",
                         store.root, "--per-family", "1", "--max-tokens", "4", "--json")  # fmt: skip
    assert code == 0, out
    report = json.loads(out[out.index("{\n") :])  # CliRunner mixes stderr into the output
    assert set(report["accuracy"]) == {"math", "code", "mcq", "instruct"}
    assert set(report["accuracy"]["math"]) == {"on", "off"}
    assert report["format"]["math"]["on"] == 0.0  # 4 random characters are no think block


def test_grpo_command(store, prompts, tiny_model, tmp_path):
    code, out = thinkmix("train", "grpo", "--data", prompts, "--model", tiny_model, "--store",
                         store.root, "--out", tmp_path / "g", "--set", "max_steps=1",
                         "--set", "num_generations=2", "--set", "prompts_per_step=2",
                         "--set", "prefilter_samples=1", "--set", "max_completion_length=8",
                         "--set", "threads=1",
                         # a random model solves nothing: keep the never-solved prompts here
                         "--set", "drop_pass_rate_at_or_below=null")  # fmt: skip
    assert code == 0, out
    assert "pre-filter: 8 of 8 prompts kept" in out
    assert out.strip().splitlines()[-1].startswith("grpo-")
