"""Every shipped blend recipe builds end to end at a tiny size, and the mix combines them."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.store import Store

from .conftest import thinkmix

RECIPES = Path(__file__).resolve().parents[2] / "curation" / "recipes"
TINY = {
    "code": ["sources.0.count=3", "stages.multi_sample.samples_on=2"],
    "science": [
        "sources.0.count=3",
        "stages.multi_sample.samples_on=2",
        "stages.multi_sample.samples_off=1",
    ],
    "chat": [
        "sources.0.count=3",
        "stages.multi_sample.samples_on=1",
        "stages.multi_sample.samples_off=1",
    ],
    "reasoning_off": ["sources.0.count=3", "stages.multi_sample.samples_on=1"],
}


def build(store: Path, name: str, *overrides: str) -> str:
    args = ["build", RECIPES / f"{name}.yaml", "--store", store, "--no-stats", "--workers", "1"]
    for item in overrides:
        args += ["--set", item]
    code, output = thinkmix(*args)
    assert code == 0, output
    return output.strip().splitlines()[-1]


def accounted(store: Path, ref: str) -> dict:
    manifest = Store(store).manifest(ref)
    for stage in manifest["stages"]:
        assert stage["in"] + stage["created"] == stage["kept"] + stage["rejected"] + stage["failed"]
    return manifest


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_blend_recipe_builds(tmp_path, name):
    ref = build(tmp_path, name, *TINY[name])
    manifest = accounted(tmp_path, ref)
    assert sum(manifest["splits"].values()) > 0
    rows = Store(tmp_path).read_records(ref, "train") + Store(tmp_path).read_records(
        ref, "rejected"
    )
    assert all(r.stage and r.reason for r in rows if r.stage)


def test_mix_combines_blend_versions_with_parents(tmp_path, built_math):
    _, math_store, math_ref = built_math
    store = tmp_path / "store"
    import shutil

    shutil.copytree(math_store, store)
    science = build(store, "science", *TINY["science"])
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        f"""
name: mix
sources:
  - type: mix
    blends: [{{ref: {math_ref}, weight: 0.75}}, {{ref: science, weight: 0.25}}]
    total: 8
shards: 1
"""
    )
    code, output = thinkmix("build", mix, "--store", store, "--no-stats")
    assert code == 0, output
    ref = output.strip().splitlines()[-1]
    manifest = accounted(store, ref)
    assert manifest["parents"] == sorted([math_ref, science])
    rows = Store(store).read_records(ref, "train")
    parents = [r.meta["mix_parent"] for r in rows]
    assert 0 < len(rows) <= 8
    assert set(parents) <= {math_ref, science}
    assert all(r.version != ref.split("/")[1] for r in rows), "rows keep the version that made them"


def test_mix_names_a_missing_parent(tmp_path):
    mix = tmp_path / "mix.yaml"
    mix.write_text("name: mix\nsources:\n  - {type: mix, blends: [{ref: nowhere, count: 3}]}\n")
    code, output = thinkmix("build", mix, "--store", tmp_path / "store")
    assert code == 2 and "nowhere" in output
