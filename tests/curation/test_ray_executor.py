"""`thinkmix build --executor ray`: the same shards as the local executor, resume across both."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from .conftest import thinkmix, write_recipe

SHARDS = 3


def manifest_of(store: Path) -> dict:
    (path,) = store.glob("tiny-math/*/manifest.json")
    return json.loads(path.read_text())


def shard_files(manifest: dict) -> dict[str, tuple[str, int]]:
    return {f["path"]: (f["sha256"], f["rows"]) for f in manifest["files"]}


def funnel(manifest: dict) -> list[dict]:
    """Per-stage counts without the timings, which differ from run to run."""
    return [{k: v for k, v in s.items() if k != "seconds"} for s in manifest["stages"]]


def new_and_cached(output: str) -> tuple[int, int]:
    found = re.search(r"teacher reasoner: (\d+) new requests, (\d+) cached", output)
    assert found, output
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_build(tmp_path_factory) -> tuple[Path, dict, str]:
    """(recipe, manifest, output) of a 3-shard build with the local executor."""
    folder = tmp_path_factory.mktemp("local")
    recipe = write_recipe(folder, count=8, shards=SHARDS)
    code, output = thinkmix(
        "build", recipe, "--store", folder / "store", "--workers", "1", "--no-stats"
    )
    assert code == 0, output
    return recipe, manifest_of(folder / "store"), output


def test_ray_executor_writes_the_same_shards_as_the_local_one(ray_cluster, local_build, tmp_path):
    recipe, local, local_output = local_build
    store = tmp_path / "store"
    code, output = thinkmix("build", recipe, "--store", store, "--executor", "ray", "--no-stats")
    assert code == 0, output
    on_ray = manifest_of(store)
    assert on_ray["version"] == local["version"]
    assert len(on_ray["files"]) == 3 * SHARDS
    assert shard_files(on_ray) == shard_files(local)
    assert on_ray["splits"] == local["splits"] and on_ray["splits"]["train"] > 0
    assert funnel(on_ray) == funnel(local)
    assert on_ray["usage"] == local["usage"]
    # Every request was really sent from the Ray tasks: this store has its own, empty cache.
    assert new_and_cached(output) == new_and_cached(local_output)


def test_a_build_started_locally_finishes_on_ray(ray_cluster, local_build, tmp_path):
    recipe, local, _ = local_build
    store = tmp_path / "store"
    code, output = thinkmix("build", recipe, "--store", store, "--shard", "1", "--no-stats")
    assert code == 0 and "built shard(s) [1]" in output, output
    first, _ = new_and_cached(output)

    code, output = thinkmix("build", recipe, "--store", store, "--executor", "ray", "--no-stats")
    assert code == 0, output
    assert "shard 1: already built, reused" in output
    rest, cached = new_and_cached(output)
    assert cached == 0 and first + rest == local["usage"]["reasoner"]["requests"]
    assert shard_files(manifest_of(store)) == shard_files(local)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_a_vllm_teacher_without_vllm_fails_on_ray_with_the_fix(ray_cluster, tmp_path):
    recipe = write_recipe(tmp_path, count=2, shards=2)
    text = recipe.read_text().replace(
        "{backend: transformers, model: embedded, batch_size: 16}",
        "{backend: ray, model: some/model, engine: vllm}",
    )
    recipe.write_text(text)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--executor", "ray")
    assert code == 2
    assert "teacher 'reasoner' (backend: ray, engine: vllm)" in output
    assert "vllm cannot be imported" in output and "pip install" in output
    assert "redoes only these" in output  # which shards failed on Ray, and how to resume


def test_missing_ray_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    recipe = write_recipe(tmp_path)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--executor", "ray")
    assert code == 2 and "pip install 'thinkmix[ray]'" in output
    assert not (tmp_path / "store").exists()


def test_executor_options_are_checked(tmp_path):
    recipe = write_recipe(tmp_path)
    code, output = thinkmix("build", recipe, "--executor", "dask")
    assert code == 2 and "unknown executor 'dask'; expected one of: local, ray" in output
    code, output = thinkmix("build", recipe, "--address", "auto")
    assert code == 2 and "--address is an option of the Ray executor" in output


def test_a_task_that_sees_another_recipe_or_code_refuses_to_build(tmp_path):
    from curation.executors import BuildSpec
    from curation.executors.ray import build_shard
    from curation.runner import BuildError

    recipe = write_recipe(tmp_path)
    spec = BuildSpec(recipe, (), tmp_path / "store", tmp_path / "cache.sqlite", 1, "0" * 12)
    with pytest.raises(BuildError, match="but 000000000000 on the driver: every node must run"):
        build_shard(spec, 0, spec.version)
    gone = BuildSpec(tmp_path / "elsewhere.yaml", (), tmp_path / "store", spec.cache_path, 1, "")
    with pytest.raises(BuildError, match="must be on a filesystem every node shares"):
        build_shard(gone, 0, gone.version)
    assert not (tmp_path / "store").exists()


@pytest.mark.gpu
def test_ray_data_llm_vllm_teacher_builds_on_gpu(tmp_path):
    """The ray.data.llm vLLM engine path end to end, with the embedded teacher's weights."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm")
    pytest.importorskip("ray.data.llm")
    model = Path(__file__).resolve().parents[2] / "curation" / "teacher_model"
    recipe = write_recipe(tmp_path, count=4, shards=2)
    recipe.write_text(
        recipe.read_text().replace(
            "{backend: transformers, model: embedded, batch_size: 16}",
            f"{{backend: ray, model: {model}, engine: vllm, num_cpus: 4}}",
        )
    )
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--no-stats")
    assert code == 0, output
    new, _ = new_and_cached(output)
    assert new == 4 * 4
    assert manifest_of(tmp_path / "store")["splits"]["failed"] == 0
