"""Lineage in a real sqlite database under the store: runs, their rows, and exports."""

from __future__ import annotations

import json

import pytest

from training.lineage import Lineage, LineageError, RunInfo, export_jsonl, export_records


def test_runs_and_rows_are_queryable_both_ways(store, gold):
    ids = [r.id for r in store.read_records(gold)]
    dataset, version = gold.split("/")
    with Lineage.open(store) as db:
        db.start(RunInfo("sft-a", "sft", dataset, version, "fresh", "/runs/a", {"lr": 1},
                         rows={"reasoning": ids[:4], "mixed": ids[:10]}))  # fmt: skip
        db.start(RunInfo("grpo-b", "grpo", dataset, version, "/runs/a/ckpt", "/runs/b", {},
                         rows={"grpo": ids[2:3]}))  # fmt: skip
        db.finish("sft-a", {"loss": 0.5})
    assert (store.root / ".lineage" / "lineage.sqlite").is_file()
    with Lineage.open(store) as db:  # a fresh connection: it is on disk
        run = db.run("sft-a")
        assert run.ref == gold and run.metrics == {"loss": 0.5} and run.finished_at
        assert run.rows == {"mixed": sorted(ids[:10]), "reasoning": sorted(ids[:4])}
        found = db.runs_for_row(ids[2])
        assert [(r.run_id, parts) for r, parts in found] == [
            ("sft-a", ["mixed", "reasoning"]),
            ("grpo-b", ["grpo"]),
        ]
        assert db.runs_for_row(ids[20]) == []
        with pytest.raises(LineageError, match="known: sft-a, grpo-b|known: grpo-b, sft-a"):
            db.run("nope")
        with pytest.raises(LineageError, match="start"):
            db.finish("nope", {})


def test_export_fills_used_in_training_without_touching_the_version(store, gold, tmp_path):
    ids = [r.id for r in store.read_records(gold)]
    dataset, version = gold.split("/")
    with Lineage.open(store) as db:
        db.start(
            RunInfo("sft-a", "sft", dataset, version, "fresh", "/r", {}, rows={"all": ids[:3]})
        )
    records = export_records(store, gold)
    used = {r.id: r.used_in_training for r in records}
    assert all(used[i] == ["sft-a"] for i in ids[:3])
    assert all(used[i] == [] for i in ids[3:])
    assert all(r.used_in_training == [] for r in store.read_records(gold))  # shards unchanged
    path = tmp_path / "export.jsonl"
    assert export_jsonl(store, gold, path) == len(ids)
    first = json.loads(path.read_text().splitlines()[0])
    assert "used_in_training" in first and "input" in first
