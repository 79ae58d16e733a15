"""Bad input: every broken file, row and recipe gives an error naming the file, line and field.

The corpus is generated here (nothing large lives in git). `on_error: skip` keeps bad rows in
the version's quarantine instead; a full disk or a read-only store gives one clean line and no
half-written version.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.context import RunContext
from curation.recipe import RecipeError, load_recipe
from curation.runner import Builder, BuildError
from curation.sources import JsonlSource, ParquetSource, SourceError
from curation.store import Store

from .conftest import thinkmix

BIG_ROW_BYTES = 50 << 20


def context(tmp_path: Path, on_error: str = "fail") -> RunContext:
    return RunContext(dataset="t", version="v", seed=0, base_dir=tmp_path, on_error=on_error)


def _big_row(path: Path) -> None:
    """A good line, then one 50 MB line, then a good line; written in chunks."""
    with path.open("wb") as f:
        f.write(b'{"problem": "1+1?"}\n{"problem": "')
        chunk = b"x" * (1 << 20)
        for _ in range(BIG_ROW_BYTES // len(chunk)):
            f.write(chunk)
        f.write(b'"}\n{"problem": "2+2?"}\n')


def _parquet(columns: dict[str, list]) -> Callable[[Path], None]:
    return lambda path: pq.write_table(pa.table(columns), path)


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


# (case, file name, writer, source params, substrings the error must contain)
SOURCE_CASES = [
    (
        "malformed_json",
        "p.jsonl",
        _bytes(b'{"problem": "ok"}\n{"problem": \n'),
        {},
        ["p.jsonl:2: ", "invalid JSON"],
    ),
    (
        "json_list_not_object",
        "p.jsonl",
        _bytes(b'{"problem": "ok"}\n["a", "list"]\n'),
        {},
        ["p.jsonl:2: ", "expected a JSON object, got list"],
    ),
    (
        "prompt_is_an_int",
        "p.jsonl",
        _bytes(b'{"problem": 5}\n'),
        {},
        ["p.jsonl:1: ", "problem: ", "got int"],
    ),
    (
        "missing_field",
        "p.jsonl",
        _bytes(b'{"problem": "ok"}\n{"question": "x"}\n'),
        {},
        ["p.jsonl:2: ", "problem: ", "missing"],
    ),
    (
        "row_of_50_mb",
        "p.jsonl",
        _big_row,
        {},
        ["p.jsonl:2: ", "52,428,8", "max_row_bytes"],
    ),
    (
        "invalid_utf8",
        "p.jsonl",
        _bytes(b'{"problem": "ok"}\n{"problem": "caf\xe9"}\n'),
        {},
        ["p.jsonl:2: ", "invalid UTF-8 at byte 16"],
    ),
    (
        "deeply_nested_json",
        "p.jsonl",
        _bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        {},
        ["p.jsonl:1: ", "invalid JSON"],
    ),
    ("empty_file", "p.jsonl", _bytes(b""), {}, ["p.jsonl: ", "no rows", "empty"]),
    ("only_blank_lines", "p.jsonl", _bytes(b"\n  \n\r\n\n"), {}, ["p.jsonl: ", "blank lines"]),
    (
        "code_task_tests_without_outputs",
        "c.jsonl",
        _bytes(b'{"question": "q", "input_output": {"inputs": ["1"]}}\n'),
        {"layout": "code_task"},
        ["c.jsonl:1: ", "input_output: ", "outputs"],
    ),
    (
        "code_task_tests_of_wrong_type",
        "c.jsonl",
        _bytes(b'{"question": "q", "public_tests": [1, 2]}\n'),
        {"layout": "code_task"},
        ["c.jsonl:1: ", "public_tests: "],
    ),
    (
        "parquet_wrong_columns",
        "p.parquet",
        _parquet({"question": ["1+1?"], "answer": ["2"]}),
        {},
        ["p.parquet: ", "problem: no such column", "question, answer", "prompt_field"],
    ),
    (
        "parquet_bad_row",
        "p.parquet",
        _parquet({"problem": ["1+1?", None], "answer": ["2", "3"]}),
        {},
        ["p.parquet:2: ", "problem: ", "missing"],
    ),
    (
        "parquet_not_parquet",
        "p.parquet",
        _bytes(b'{"problem": "this is jsonl"}\n'),
        {},
        ["p.parquet: ", "not a readable parquet file"],
    ),
    (
        "parquet_empty",
        "p.parquet",
        _parquet({"problem": pa.array([], pa.string())}),
        {},
        ["p.parquet: ", "no rows"],
    ),
]


def _source(name: str, params: dict) -> JsonlSource:
    cls = ParquetSource if name.endswith(".parquet") else JsonlSource
    return cls(path=name, **params)


@pytest.mark.parametrize(
    ("name", "write", "params", "expected"),
    [case[1:] for case in SOURCE_CASES],
    ids=[case[0] for case in SOURCE_CASES],
)
def test_bad_input_names_file_line_and_field(tmp_path, name, write, params, expected):
    write(tmp_path / name)
    with pytest.raises(SourceError) as info:
        list(_source(name, params).read(context(tmp_path)))
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert "\n" not in message


def test_a_50_mb_row_is_read_in_bounded_memory(tmp_path):
    _big_row(tmp_path / "p.jsonl")
    source = JsonlSource(path="p.jsonl", max_row_bytes=1 << 20)
    ctx = context(tmp_path, on_error="skip")
    tracemalloc.start()
    try:
        rows = list(source.read(ctx))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.input[0]["content"] for r in rows] == ["1+1?", "2+2?"]
    assert peak < 8 << 20, f"reading a 50 MB line peaked at {peak:,} bytes"
    (bad,) = ctx.quarantine
    assert bad["where"] == "p.jsonl:2" and bad["raw"] == '{"problem": "' + "x" * 1987
    assert bad["reason"].startswith("row is 52,428,8")


def test_max_row_bytes_is_checked(tmp_path):
    with pytest.raises(ValueError, match="max_row_bytes must be >= 1"):
        JsonlSource(path="p.jsonl", max_row_bytes=0)


# ---------------------------------------------------------------- recipe typos

RECIPE = """\
name: bad-input
sources:
  - {type: jsonl, path: rows.jsonl}
teachers:
  reasoner: {backend: transformers, model: embedded}
stages:
  - {type: generators.multi_sample, teacher: reasoner, samples_on: 1}
  - {type: filters.boxed_answer}
shards: 3
"""

RECIPE_CASES = [
    (
        "unknown_stage_type",
        ("filters.boxed_answer", "filters.boxed_answr"),
        ["bad.yaml:8: ", "stages[1].type: ", "did you mean 'filters.boxed_answer'?"],
    ),
    (
        "unknown_teacher",
        ("teacher: reasoner", "teacher: reasoners"),
        ["bad.yaml:7: ", "stages[0].teacher: ", "'reasoners'", "did you mean 'reasoner'?"],
    ),
    (
        "wrong_field_type",
        ("samples_on: 1", "samples_on: one"),
        ["bad.yaml:7: ", "stages[0].samples_on: ", "expected int, got 'one'"],
    ),
    (
        "unknown_top_level_key",
        ("stages:", "stage:"),
        ["bad.yaml:6: ", "stage: unknown field", "did you mean 'stages'?"],
    ),
    (
        "unknown_source_parameter",
        ("path: rows.jsonl", "pth: rows.jsonl"),
        ["bad.yaml:3: ", "sources[0].pth: ", "did you mean 'path'?"],
    ),
    (
        "on_error_value",
        ("shards: 3", "shards: 3\non_error: ignore"),
        ["bad.yaml:10: ", "on_error: ", "'fail' or 'skip'"],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES]
)
def test_recipe_typos_name_file_line_and_field(tmp_path, change, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(RECIPE.replace(*change))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    for part in expected:
        assert part in str(info.value), str(info.value)


# ---------------------------------------------------------------- on_error: skip

SOURCES_ONLY = """\
name: bad-input
sources:
  - {type: jsonl, path: rows.jsonl}
shards: 3
"""

GOOD_LINES = [json.dumps({"id": f"g{i}", "problem": f"{i} + {i} = ?"}) for i in range(12)]
BAD_LINES = {  # line number -> (text, reason's start)
    3: ('{"problem": ', "invalid JSON"),
    6: ('["not", "an", "object"]', "expected a JSON object"),
    9: ('{"problem": 7}', "problem: expected a non-empty string, got int"),
    12: ('{"question": "no prompt"}', "problem: expected a non-empty string, missing"),
}


def _rows_file(folder: Path) -> Path:
    lines, good = [], iter(GOOD_LINES)
    for number in range(1, len(GOOD_LINES) + len(BAD_LINES) + 1):
        lines.append(BAD_LINES[number][0] if number in BAD_LINES else next(good))
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    recipe = folder / "bad-input.yaml"
    recipe.write_text(SOURCES_ONLY)
    return recipe


def test_skip_keeps_good_rows_and_collects_bad_ones(tmp_path):
    _rows_file(tmp_path)
    ctx = context(tmp_path, on_error="skip")
    rows = list(JsonlSource(path="rows.jsonl").read(ctx))
    assert [r.source_id for r in rows] == [f"g{i}" for i in range(12)]
    assert [q["where"] for q in ctx.quarantine] == [f"rows.jsonl:{n}" for n in BAD_LINES]
    for entry, (text, reason) in zip(ctx.quarantine, BAD_LINES.values(), strict=True):
        assert entry["raw"] == text and entry["reason"].startswith(reason)


def test_fail_is_the_default_and_publishes_nothing(tmp_path):
    recipe, store = _rows_file(tmp_path), tmp_path / "store"
    code, output = thinkmix("build", recipe, "--store", store, "--workers", "1")
    assert code == 2
    assert "rows.jsonl:3: invalid JSON" in output
    assert Store(store).versions() == []
    code, output = thinkmix("build", recipe, "--store", store, "--on-error", "ignore")
    assert code == 2 and "on_error" in output and "skip" in output, output


@pytest.mark.parametrize("policy", [("--set", "on_error=skip"), ("--on-error", "skip")])
def test_skip_quarantines_each_bad_row_once_and_shows_it(tmp_path, policy):
    recipe, store_dir = _rows_file(tmp_path), tmp_path / "store"
    args = ("--store", store_dir, "--workers", "1")
    code, output = thinkmix("build", recipe, *policy, *args)
    assert code == 0, output
    ref = output.strip().splitlines()[-1]
    store = Store(store_dir)
    manifest = store.manifest(ref)
    assert manifest["recipe"]["on_error"] == "skip"
    assert manifest["splits"]["train"] == len(GOOD_LINES)
    assert manifest["splits"]["quarantine"] == len(BAD_LINES)
    assert manifest["quarantined"] == {
        "rows": 4,
        "reasons": {"invalid JSON": 1, "expected a JSON object, got list": 1, "problem": 2},
    }
    files = [f for f in manifest["files"] if f["split"] == "quarantine"]
    assert sum(f["rows"] for f in files) == len(BAD_LINES)
    # every shard read every line, yet each bad row is in exactly one shard's file
    bad = store.read_records(ref, "quarantine")
    assert sorted(r.meta["where"] for r in bad) == sorted(f"rows.jsonl:{n}" for n in BAD_LINES)
    for row in bad:
        text, reason = BAD_LINES[int(row.source_id)]
        assert row.meta["raw"] == text and row.reason.startswith(reason)
        assert row.stage == "source" and row.source == "rows.jsonl"
    code, output = thinkmix("verify", ref, "--store", store_dir)
    assert code == 0, output
    code, output = thinkmix("show", ref, "--store", store_dir)
    assert code == 0 and "'quarantine': 4" in output, output
    code, output = thinkmix("stats", ref, "--store", store_dir)
    assert code == 0 and "quarantine 4" in output, output


def test_skip_without_bad_rows_writes_no_quarantine(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(GOOD_LINES) + "\n")
    (tmp_path / "r.yaml").write_text(SOURCES_ONLY.replace("shards: 3", "shards: 2"))
    code, output = thinkmix("build", tmp_path / "r.yaml", "--store", tmp_path / "s")
    assert code == 0, output
    manifest = Store(tmp_path / "s").manifest(output.strip().splitlines()[-1])
    assert manifest["quarantined"] == {"rows": 0, "reasons": {}}
    assert "quarantine" not in manifest["splits"]
    assert {f["split"] for f in manifest["files"]} == {"train", "rejected", "failed"}
    assert "on_error" not in manifest["recipe"]  # the default keeps older version ids


# ---------------------------------------------------------------- full disk, read-only store


def _builder(recipe: Path, store: Path) -> Builder:
    from rich.console import Console

    from curation.cache import RequestCache
    from curation.progress import BuildProgress

    loaded = load_recipe(recipe)
    cache = RequestCache(recipe.parent / "cache.sqlite")
    progress = BuildProgress(Console(quiet=True), loaded.recipe.shards)
    return Builder(loaded, Store(store), cache, progress)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_one_clean_line_and_no_version(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(GOOD_LINES) + "\n")
    recipe, store = tmp_path / "r.yaml", tmp_path / "store"
    recipe.write_text(SOURCES_ONLY)
    version = load_recipe(recipe).recipe.version_id()
    # The first shard file's temp name (store.atomic_write_bytes) is a link to /dev/full, so
    # the real write path gets a real ENOSPC from the kernel.
    train = store / ".staging" / "bad-input" / version / "version" / "train"
    train.mkdir(parents=True)
    full = train / f".part-00000.parquet.tmp-{os.getpid()}"
    full.symlink_to("/dev/full")
    code, output = thinkmix("build", recipe, "--store", store, "--cache", tmp_path / "c.sqlite")
    assert code == 2
    flat = " ".join(output.split())
    assert f"{store}: No space left on device (ENOSPC)" in flat, output
    assert "no version was published" in flat
    assert Store(store).versions() == []
    assert not list(store.glob("bad-input/*/manifest.json"))
    # the failed write removed its temporary file (the link), so nothing takes space
    assert not full.is_symlink() and not full.exists()
    # and the same build now finishes
    code, output = thinkmix("build", recipe, "--store", store, "--cache", tmp_path / "c.sqlite")
    assert code == 0, output
    assert [v.version for v in Store(store).versions()] == [version]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_read_only_store_is_one_clean_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(GOOD_LINES) + "\n")
    recipe, store = tmp_path / "r.yaml", tmp_path / "store"
    recipe.write_text(SOURCES_ONLY)
    store.mkdir()
    store.chmod(0o555)
    try:
        with pytest.raises(BuildError) as info:
            _builder(recipe, store).build()
        code, output = thinkmix("build", recipe, "--store", store, "--cache", tmp_path / "c.db")
    finally:
        store.chmod(0o755)
    message = str(info.value)
    assert "\n" not in message
    assert f"{store / '.staging'}: Permission denied (EACCES)" in message
    assert code == 2 and "no version was published" in " ".join(output.split())
    assert Store(store).versions() == []


def test_an_unusable_cache_path_is_one_clean_line(tmp_path):
    recipe, store = _rows_file(tmp_path), tmp_path / "store"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, output = thinkmix("build", recipe, "--store", store, "--cache", blocker / "c.sqlite")
    assert code == 2 and "Traceback" not in output
    assert f"request cache {blocker / 'c.sqlite'}" in " ".join(output.split()), output
