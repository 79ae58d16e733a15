"""`thinkmix teacher build` at a toy size: it trains, saves a loadable model and evaluates it."""

from __future__ import annotations

import json

import pytest

from curation.teacher.build import build_teacher


@pytest.mark.slow  # ~45 s: an untrained model generates to the token limit in the evaluation
def test_build_trains_saves_and_evaluates(tmp_path):
    out = tmp_path / "teacher"
    report = build_teacher(
        out, examples=64, hidden=32, layers=1, heads=2, batch_size=8, max_steps=6, eval_per_family=2
    )
    assert report["train_steps"] == 6 and report["examples_seen"] == 48
    assert report["train_loss"] > 0
    saved = json.loads((out / "eval.json").read_text())
    assert saved["eval"] == report["eval"]
    families = {"math", "code", "mcq", "instruct"}
    assert set(report["eval"]["accuracy"]) == set(report["eval"]["format"]) == families
    assert (out / "config.json").is_file() and not (out / "_run").exists()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.use_cache and model.generation_config.eos_token_id is not None
