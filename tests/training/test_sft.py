"""SFT runs on a tiny version: the loss falls, the run dir and lineage are written, stages run."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import TINY
from training.lineage import Lineage
from training.sft import train_sft
from training.sft_config import SFTRunConfig, SFTStage


def test_loss_decreases_and_the_run_is_recorded(store, gold, tmp_path):
    config = SFTRunConfig(**TINY, max_steps=16, batch_size=8, logging_steps=1, learning_rate=1e-2)
    summary = train_sft(store, gold, tmp_path / "run", config)
    stage = summary["stages"][0]
    assert stage["steps"] == 16 and stage["rows"] == 32
    assert stage["last_loss"] < stage["first_loss"] - 0.3
    run = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "lineage.json", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoint" / "model.safetensors").is_file()
    assert not (run / "_trainer").exists()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["global_step"] for x in lines if "loss" in x][:3] == [1, 2, 3]
    with Lineage.open(store) as db:
        info = db.run(summary["run_id"])
        assert info.ref == gold and info.kind == "sft" and info.metrics["stages"][0]["steps"] == 16
        assert len(info.rows["all"]) == 32
        row_id = info.rows["all"][0]
        assert [r.run_id for r, _ in db.runs_for_row(row_id)] == [summary["run_id"]]


def test_a_schedule_trains_its_stages_in_order_on_their_rows(store, gold, tmp_path):
    schedule = [
        SFTStage("reasoning", reasoning="on", categories=["math", "code", "science"], max_steps=2),
        SFTStage("mixed", max_steps=2),
        SFTStage("chat", categories=["chat"], max_steps=2),  # no chat rows: skipped
    ]
    config = SFTRunConfig(**TINY, schedule=schedule, batch_size=4, logging_steps=1)
    summary = train_sft(store, gold, tmp_path / "run", config)
    assert [(s["name"], s["rows"], s["steps"]) for s in summary["stages"]] == [
        ("reasoning", 12, 2),
        ("mixed", 32, 2),
    ]
    rows = json.loads((tmp_path / "run" / "lineage.json").read_text())["rows"]
    assert set(rows) == {"reasoning", "mixed"}
    on_ids = {r.id for r in store.read_records(gold) if r.reasoning == "on"}
    assert set(rows["reasoning"]) <= on_ids
    steps = [
        json.loads(x)["global_step"]
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert max(steps) == 4  # the second stage continues the step count


@pytest.mark.slow
def test_packing_trains_too(store, gold, tmp_path):
    config = SFTRunConfig(**TINY, max_steps=3, batch_size=2, packing=True, max_length=256)
    summary = train_sft(store, gold, tmp_path / "run", config)
    assert summary["stages"][0]["steps"] == 3
