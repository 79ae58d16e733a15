"""Security: no API key in any artefact, and recipes stay inside the paths they are given.

The key test plants a random key in the environment variable an `openai` teacher names, builds
against a loopback FaultServer that fails on purpose (so error paths run and get logged), and
then searches every byte the build and the inspection commands left behind.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from curation.paths import ENV_ALLOWED
from curation.recipe import RecipeError, load_recipe
from curation.sources import JsonlSource, SourceError
from curation.store import Store, StoreError
from generators.fault_server import FaultPlan, FaultServer
from tests.curation.conftest import thinkmix

KEY_ENV = "THINKMIX_SECURITY_TEST_KEY"

HTTP_RECIPE = """\
name: sec
sources:
  - {{type: tinyworld.math, count: 6, seed: 1}}
teachers:
  reasoner:
    backend: openai
    model: fault-model
    base_url: {base_url}
    api_key_env: {key_env}
    max_retries: 1
    backoff_base_s: 0.01
    backoff_max_s: 0.02
    timeout_s: 10
stages:
  - {{type: generators.multi_sample, teacher: reasoner, samples_on: 2, samples_off: 1,
     max_tokens: 64}}
  - {{type: filters.boxed_answer}}
shards: 2
"""


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Files under `root` holding a needle: raw bytes, and every value of a (compressed) parquet."""
    import pyarrow.parquet as pq

    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if path.suffix == ".parquet":
            data += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        found += [f"{path}: {n.decode()}" for n in needles if n in data]
    return found


def test_the_search_finds_a_planted_key_in_a_shard(tmp_path):
    from curation.record import Record
    from curation.store import parquet_bytes

    key = f"sk-thinkmix-{secrets.token_hex(16)}"
    row = Record(id="r", input=[{"role": "user", "content": f"Bearer {key}"}])
    (tmp_path / "part.parquet").write_bytes(parquet_bytes([row] * 50))
    assert len(_files_holding(tmp_path, [key.encode(), b"Bearer"])) == 2


def test_no_api_key_or_auth_header_in_any_artefact(tmp_path, monkeypatch):
    key = f"sk-thinkmix-{secrets.token_hex(16)}"
    monkeypatch.setenv(KEY_ENV, key)
    store, recipe = tmp_path / "store", tmp_path / "sec.yaml"
    plan = FaultPlan(rates={"server_error": 0.4, "malformed": 0.2}, retry_after_s=0.0, seed=3)
    outputs = []
    with FaultServer(plan) as server:
        recipe.write_text(HTTP_RECIPE.format(base_url=server.base_url, key_env=KEY_ENV))
        code, output = thinkmix("build", recipe, "--store", store, "--workers", "1")
        outputs.append(output)
        assert code == 0, output
        assert server.counts["server_error"] > 0 and server.counts["malformed"] > 0
    ref = output.strip().splitlines()[-1]
    manifest = Store(store).manifest(ref)
    assert manifest["splits"]["failed"] > 0  # some requests failed after their retries
    assert manifest["teachers"]["reasoner"]["api_key_env"] == KEY_ENV
    for args in (
        ["show", ref, "--json"],
        ["show", ref],
        ["stats", ref, "--json"],
        ["report", ref, "--out", tmp_path / "report.html"],
        ["card", ref, "--out", tmp_path / "README.md"],
        ["export", ref, "--out", tmp_path / "export"],
    ):
        code, output = thinkmix(*args, "--store", store)
        assert code == 0, output
        outputs.append(output)
    assert (store / ".cache" / "requests.sqlite").is_file()  # the request cache was searched
    needles = [key.encode(), b"Bearer"]
    assert _files_holding(tmp_path, needles) == []
    assert not [n for n in needles if any(n.decode() in out for out in outputs)]


# ---------------------------------------------------------------- secrets in recipes

SOURCES = """\
name: sec
sources:
  - {type: jsonl, path: data/rows.jsonl}
teachers:
  writer: {backend: openai, model: m, base_url: "http://127.0.0.1:9/v1"}
stages:
  - {type: generators.question_variation, teacher: writer}
"""


def _recipe(folder: Path, text: str = SOURCES) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "rows.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n')
    path = folder / "sec.yaml"
    path.write_text(text)
    return path


def _error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ('base_url: "http://127.0.0.1:9/v1"', "teachers.writer.base_url"),
        ("model: m,", "teachers.writer.extra_body.api_key"),
        ("model: m,", "teachers.writer.headers.Authorization"),
    ],
)
def test_secrets_anywhere_in_a_teacher_are_refused(tmp_path, change, field):
    replacement = {
        "teachers.writer.base_url": 'base_url: "http://user:pw@127.0.0.1:9/v1"',
        "teachers.writer.extra_body.api_key": "model: m, extra_body: {api_key: sk-x},",
        "teachers.writer.headers.Authorization": "model: m, headers: {Authorization: Bearer x},",
    }[field]
    message = _error(_recipe(tmp_path, SOURCES.replace(change, replacement)))
    assert f"sec.yaml:5: {field}: secrets never go in a recipe" in message


# ---------------------------------------------------------------- path confinement


def test_paths_resolve_inside_the_recipe_folder(tmp_path):
    loaded = load_recipe(_recipe(tmp_path))
    assert loaded.sources[0].path == str((tmp_path / "data" / "rows.jsonl").resolve())
    assert loaded.recipe.sources[0].params["path"] == "data/rows.jsonl"  # the recipe as written
    # the version does not depend on where the recipe folder is
    elsewhere = load_recipe(_recipe(tmp_path / "copy"))
    assert elsewhere.recipe.version_id() == loaded.recipe.version_id()


def test_relative_path_may_not_leave_the_recipe_folder(tmp_path):
    (tmp_path / "secret.jsonl").write_text('{"problem": "x"}\n')
    recipe = _recipe(tmp_path / "r", SOURCES.replace("data/rows.jsonl", "../secret.jsonl"))
    message = _error(recipe)
    assert message.startswith("sec.yaml:3: sources[0].path: '../secret.jsonl' resolves to ")
    assert f"outside the recipe's folder {(tmp_path / 'r').resolve()}" in message
    assert f"--set KEY=../secret.jsonl) or add its folder to ${ENV_ALLOWED}" in message


def test_absolute_path_needs_the_command_line_or_the_allow_list(tmp_path, monkeypatch):
    outside = tmp_path / "shared" / "rows.jsonl"
    outside.parent.mkdir()
    outside.write_text('{"problem": "x"}\n')
    recipe = _recipe(tmp_path / "r", SOURCES.replace("data/rows.jsonl", str(outside)))
    assert "outside the recipe's folder" in _error(recipe)
    # given on the command line: the person running the build chose it
    plain = _recipe(tmp_path / "r2")
    loaded = load_recipe(plain, [f"sources.0.path={outside}"])
    assert loaded.sources[0].path == str(outside.resolve())
    # or listed in the allow-list
    monkeypatch.setenv(ENV_ALLOWED, os.pathsep.join(["/nonexistent", str(outside.parent)]))
    assert load_recipe(recipe).sources[0].path == str(outside.resolve())


def test_symlinks_are_resolved_before_the_check(tmp_path):
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"problem": "x"}\n')
    recipe = _recipe(tmp_path / "r", SOURCES.replace("data/rows.jsonl", "link.jsonl"))
    (tmp_path / "r" / "link.jsonl").symlink_to(secret)
    assert f"resolves to {secret.resolve()}, outside" in _error(recipe)
    (tmp_path / "r" / "link.jsonl").unlink()
    (tmp_path / "r" / "link.jsonl").symlink_to(tmp_path / "r" / "data" / "rows.jsonl")
    assert load_recipe(recipe).sources[0].path.endswith("/r/data/rows.jsonl")


@pytest.mark.parametrize(
    ("stage", "field"),
    [
        ("{type: generators.question_variation, teacher: writer, template: ../t.txt}", "template"),
        ("{type: decontam.ngram, fields: [input], cache_dir: ../cache}", "cache_dir"),
        ("{type: decontam.ngram, fields: [input], benchmarks: [b=../b.jsonl]}", "benchmarks"),
    ],
)
def test_stage_paths_are_confined_too(tmp_path, stage, field):
    text = SOURCES.replace("{type: generators.question_variation, teacher: writer}", stage)
    message = _error(_recipe(tmp_path, text))
    assert message.startswith(f"sec.yaml:7: stages[0].{field}: '../") and "outside" in message


def test_shipped_names_are_not_paths(tmp_path):
    text = SOURCES.replace("teacher: writer}", "teacher: writer, template: variation}")
    assert load_recipe(_recipe(tmp_path, text)).stages[0].template == "variation"


def test_python_api_sources_are_confined_as_well(tmp_path):
    from curation.context import RunContext

    (tmp_path / "secret.jsonl").write_text('{"problem": "x"}\n')
    ctx = RunContext(dataset="t", version="v", seed=0, base_dir=tmp_path / "base")
    with pytest.raises(SourceError, match="path: '../secret.jsonl' resolves to .* outside"):
        list(JsonlSource(path="../secret.jsonl").read(ctx))


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", ".hidden", "Up"])
def test_dataset_names_cannot_hold_paths(tmp_path, name):
    message = _error(_recipe(tmp_path), [f"name={name}"])
    assert message.startswith(f"--set name={name}: name: ")


@pytest.mark.parametrize(
    ("dataset", "version"),
    [("..", "v1"), ("a/b", "v1"), (".staging", "v1"), ("ds", "../v1"), ("ds", ""), ("ds", "a/b")],
)
def test_store_paths_cannot_escape_the_store(tmp_path, dataset, version):
    with pytest.raises(StoreError, match="no '/', no leading '.', not empty"):
        Store(tmp_path / "store").staging(dataset, version)
    assert not (tmp_path / "store").exists()
