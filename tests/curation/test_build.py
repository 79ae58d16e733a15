"""End to end: the math recipe on the embedded teacher, from problems to a verified version."""

from __future__ import annotations

import shutil
from collections import Counter

import datasets
import polars as pl
import pytest

from curation.runner import shard_of
from curation.stats import stats_dict
from curation.store import Store

from .conftest import thinkmix

SAMPLES_PER_PROBLEM, PROBLEMS = 4, 10


def test_build_keeps_and_rejects_and_accounts_for_every_row(built_math):
    _, store_dir, ref = built_math
    store = Store(store_dir)
    manifest = store.manifest(ref)
    totals = manifest["splits"]
    assert totals["train"] > 0 and totals["rejected"] > 0
    assert sum(totals.values()) == PROBLEMS * SAMPLES_PER_PROBLEM
    for stage in manifest["stages"]:
        assert stage["in"] + stage["created"] == stage["kept"] + stage["rejected"] + stage["failed"]
    names = [s["name"] for s in manifest["stages"]]
    assert names == [
        "source",
        "generators.multi_sample",
        "filters.boxed_answer",
        "filters.math_verify",
        "filters.think_format",
    ]
    assert manifest["usage"]["reasoner"]["requests"] == PROBLEMS * SAMPLES_PER_PROBLEM


def test_rows_explain_their_fate(built_math):
    _, store_dir, ref = built_math
    store = Store(store_dir)
    for row in store.read_records(ref, "train"):
        assert row.scores["filters.math_verify"] == 1.0
        assert row.meta["answer"] == row.expected_answer or row.meta["answer"]
        assert (row.reasoning == "on") == row.output.startswith("<think>")
        assert row.version == ref.split("/")[1]
    rejected = store.read_records(ref, "rejected")
    assert all(r.stage and r.reason for r in rejected)
    assert {r.stage for r in rejected} <= {
        "filters.boxed_answer",
        "filters.math_verify",
        "filters.think_format",
    }


def test_stats_reasoning_on_beats_off(built_math):
    _, store_dir, ref = built_math
    data = stats_dict(Store(store_dir), ref)
    kept = Counter()
    for row in data["blend"]:
        kept[row["reasoning"]] += row["rows"]
    assert kept["on"] > kept["off"]


def test_second_build_calls_no_model(built_math):
    recipe, store, ref = built_math
    code, output = thinkmix("build", recipe, "--store", store, "--no-stats")
    assert code == 0
    assert "already built" in output and "0 new requests" in output
    assert output.strip().splitlines()[-1] == ref


def test_resharding_reuses_every_cached_answer(built_math):
    recipe, store, ref = built_math
    code, output = thinkmix("build", recipe, "--store", store, "--shards", "3", "--no-stats")
    assert code == 0, output
    assert f"0 new requests, {PROBLEMS * SAMPLES_PER_PROBLEM} cached" in output
    resharded = output.strip().splitlines()[-1]
    assert resharded != ref
    ids = [{r.id for r in Store(store).read_records(v, "train")} for v in (ref, resharded)]
    assert ids[0] == ids[1]


def test_one_shard_rebuilds_byte_identical(built_math):
    recipe, store, _ = built_math
    code, output = thinkmix("build", recipe, "--store", store, "--shard", "1", "--no-stats")
    assert code == 0, output
    assert "reproduced" in output


def test_verify_names_a_flipped_shard(built_math, tmp_path):
    _, store_dir, ref = built_math
    copy = tmp_path / "store"
    shutil.copytree(store_dir, copy)
    assert thinkmix("verify", ref, "--store", copy)[0] == 0
    victim = copy / ref / "train" / "part-00001.parquet"
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    code, output = thinkmix("verify", ref, "--store", copy)
    assert code == 1
    assert "train/part-00001.parquet: sha256 mismatch" in output


def test_shards_load_with_datasets_and_polars(built_math):
    _, store_dir, ref = built_math
    files = [str(p) for p in Store(store_dir).split_paths(ref, "train")]
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    frame = pl.read_parquet(files)
    assert len(ds) == frame.height == Store(store_dir).manifest(ref)["splits"]["train"]
    assert {"input", "output", "reasoning", "system_prompt", "category"} <= set(ds.column_names)


def test_cli_inspection_commands(built_math):
    _, store, ref = built_math
    for args in (["ls"], ["show", ref], ["stats", ref], ["stats", ref, "--json"]):
        code, output = thinkmix(*args, "--store", store)
        assert code == 0, output
        assert ref.split("/")[1] in output or "math" in output
    code, output = thinkmix("diff", ref, ref, "--store", store)
    assert code == 0 and "same recipe" in output


def test_unknown_version_is_a_clear_error(built_math):
    _, store, _ = built_math
    code, output = thinkmix("show", "nope/123", "--store", store)
    assert code == 2 and "nope" in output


@pytest.mark.parametrize("shards", [1, 2, 7])
def test_shard_assignment_is_stable_and_covers_all(shards):
    ids = [f"row-{i}" for i in range(700)]
    first = [shard_of(i, shards) for i in ids]
    assert first == [shard_of(i, shards) for i in ids]
    assert set(first) == set(range(shards))
