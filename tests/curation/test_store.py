"""The versioned store: staging, commit, resolve, verify, diff."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from curation.record import ARROW_SCHEMA, Record, record_id
from curation.store import (
    SPLITS,
    Staging,
    Store,
    StoreError,
    VersionExistsError,
    atomic_write_bytes,
    diff,
    parquet_bytes,
    verify,
)


def make(i: int, category: str = "math", output: str | None = None, **kw) -> Record:
    prompt = [{"role": "user", "content": f"What is {i} + {i}?"}]
    return Record(
        id=record_id(category, str(i), prompt),
        input=prompt,
        output=output if output is not None else f"<think>{i}+{i}</think>\\boxed{{{2 * i}}}",
        system_prompt="detailed thinking on",
        reasoning="on",
        category=category,
        generator="tiny",
        source="tinyworld",
        source_id=str(i),
        expected_answer=str(2 * i),
        scores={"math_verify": 1.0, "len": float(i)},
        meta={"answer": str(2 * i)},
        **kw,
    )


def build(
    store: Store,
    dataset: str,
    version: str,
    shards: list[list[Record]],
    recipe: dict | None = None,
) -> Path:
    """Write each shard's train split plus one rejected row and an empty failed split."""
    staging = store.staging(dataset, version)
    for k, rows in enumerate(shards):
        files = [
            staging.write_shard("train", k, rows),
            staging.write_shard("rejected", k, [make(1000 + k, stage="f", reason="too_long")]),
            staging.write_shard("failed", k, []),
        ]
        staging.mark_done(k, files, {"stages": {"f": {"in": len(rows) + 1}}})
    return staging.commit({"recipe": recipe or {"name": dataset}})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_round_trip(store: Store) -> None:
    rows = [make(i) for i in range(5)]
    build(store, "math", "v1", [rows[:3], rows[3:]])
    assert store.read_records("math/v1") == rows
    table = store.read_table("math/v1")
    assert table.schema.equals(ARROW_SCHEMA)
    assert store.read_table("math/v1", "failed").num_rows == 0
    assert [r.reason for r in store.read_records("math/v1", "rejected")] == ["too_long"] * 2
    paths = store.split_paths("math/v1", "train")
    assert [p.name for p in paths] == ["part-00000.parquet", "part-00001.parquet"]
    assert pl.scan_parquet(paths).select(pl.len()).collect().item() == 5


def test_shard_bytes_are_deterministic(store: Store) -> None:
    rows = [make(i) for i in range(4)]
    a, b = parquet_bytes(rows), parquet_bytes([make(i) for i in range(4)])
    assert a == b
    # Map order in the Python dict must not matter (to_table sorts maps).
    shuffled = [make(i) for i in range(4)]
    for r in shuffled:
        r.scores = dict(reversed(list(r.scores.items())))
    assert parquet_bytes(shuffled) == a
    # Another interpreter (another hash seed, another allocator) writes the same bytes.
    make_rows = (
        "[Record(id=str(i), input=[{'role': 'user', 'content': 'q'}], output='a' * i,"
        " scores={'z': 1.0, 'a': float(i)}, meta={'k': 'v'}) for i in range(4)]"
    )
    code = (
        "import hashlib; from curation.record import Record; from curation.store import parquet_bytes;"
        f"print(hashlib.sha256(parquet_bytes({make_rows})).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    )
    here = eval(make_rows, {"Record": Record})
    assert run.stdout.strip() == hashlib.sha256(parquet_bytes(here)).hexdigest()
    # write_shard reports the sha of exactly these bytes.
    info = store.staging("math", "v1").write_shard("train", 0, rows)
    assert info == {
        "path": "train/part-00000.parquet",
        "split": "train",
        "shard": 0,
        "rows": 4,
        "sha256": hashlib.sha256(a).hexdigest(),
    }


def test_staging_resumes_from_a_fresh_store(tmp_path: Path) -> None:
    staging = Store(tmp_path).staging("math", "v1")
    f0 = [staging.write_shard(s, 0, [make(1)] if s == "train" else []) for s in SPLITS]
    staging.mark_done(0, f0, {"kept": 1})
    # Shard 1 was killed half way: train written, no marker.
    staging.write_shard("train", 1, [make(2)])

    again = Store(tmp_path).staging("math", "v1")
    assert again.shard_done(0)
    assert not again.shard_done(1)
    assert again.shard_info(0)["extra"] == {"kept": 1}
    assert again.shard_info(1) is None
    assert again.shard_done(0, splits=("train",))
    # A marker covering only train does not make the shard done for all splits.
    again.mark_done(1, [again.write_shard("train", 1, [make(2)])])
    assert again.shard_done(1, splits=("train",)) and not again.shard_done(1)


def test_no_partial_version_is_visible(store: Store) -> None:
    staging = store.staging("math", "v1")
    files = [staging.write_shard(s, 0, [make(1)]) for s in SPLITS]
    staging.mark_done(0, files)
    assert store.versions() == []
    assert not store.exists("math", "v1")
    assert not (store.root / "math").exists()
    with pytest.raises(StoreError):
        store.resolve("math")
    staging.commit({"recipe": {}})
    assert [v.ref for v in store.versions()] == ["math/v1"]
    assert not (store.root / ".staging" / "math" / "v1").exists()


def test_commit_is_immutable(store: Store) -> None:
    path = build(store, "math", "v1", [[make(1), make(2)]])
    assert store.exists("math", "v1")
    manifest = store.manifest("math/v1")
    assert manifest["dataset"] == "math" and manifest["version"] == "v1" and manifest["created_at"]
    assert [f["path"] for f in manifest["files"]] == sorted(
        f"{s}/part-00000.parquet" for s in SPLITS
    )
    for f in path.rglob("*"):
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o444, f
    with pytest.raises(VersionExistsError, match="immutable"):
        store.staging("math", "v1")
    # A staging object opened before the first commit cannot commit over it either.
    other = Store(store.root)
    staging = other.staging("math", "v2")
    staging.mark_done(0, [staging.write_shard("train", 0, [make(3)])])
    staging.commit({})
    late = Staging(other, "math", "v2")
    late.mark_done(0, [late.write_shard("train", 0, [make(4)])])
    with pytest.raises(VersionExistsError):
        late.commit({})
    assert [r.id for r in other.read_records("math/v2")] == [make(3).id]


def test_commit_refuses_files_of_unfinished_shards(store: Store) -> None:
    staging = store.staging("math", "v1")
    staging.mark_done(0, [staging.write_shard("train", 0, [make(1)])])
    staging.write_shard("train", 1, [make(2)])
    (staging.data_dir / "train" / ".part-00002.parquet.tmp-99").write_bytes(b"junk")
    with pytest.raises(StoreError, match=r"train/part-00001\.parquet"):
        staging.commit({})
    assert not store.exists("math", "v1")


def test_verify(store: Store) -> None:
    path = build(store, "math", "v1", [[make(i) for i in range(3)] for _ in range(3)])
    assert verify(store, "math/v1") == []
    target = path / "train" / "part-00002.parquet"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    (path / "rejected" / "part-00001.parquet").unlink()
    (path / "train" / "extra.parquet").write_bytes(b"x")
    problems = verify(store, "math/v1")
    assert len(problems) == 3, problems
    assert problems[0] == "rejected/part-00001.parquet: missing"
    assert problems[1].startswith("train/part-00002.parquet: sha256 mismatch (expected ")
    assert problems[2] == "train/extra.parquet: unexpected file (not in the manifest)"


def test_versions_and_resolve(store: Store) -> None:
    build(store, "math", "v1", [[make(1)]])
    build(store, "math", "v2", [[make(2)]])
    build(store, "code", "v2", [[make(3, "code")]])
    build(store, "code", "c9", [[make(4, "code")]])
    infos = store.versions("math")
    assert [i.ref for i in infos] == ["math/v1", "math/v2"]
    assert infos[0].rows == {"train": 1, "rejected": 1, "failed": 0}
    assert infos[0].path == store.root / "math" / "v1"
    assert len(store.versions()) == 4
    assert store.resolve("math/v1") == ("math", "v1")
    assert store.resolve("math") == ("math", "v2")  # newest
    assert store.resolve("c9") == ("code", "c9")  # unique bare version
    with pytest.raises(
        StoreError, match=r"ambiguous.*code/v2.*math/v2|ambiguous.*math/v2.*code/v2"
    ):
        store.resolve("v2")
    with pytest.raises(StoreError, match=r"'math' has: math/v1, math/v2"):
        store.resolve("math/v9")
    with pytest.raises(StoreError, match="no dataset or version 'nope'"):
        store.resolve("nope")


def test_a_reference_cannot_leave_the_store(store: Store, tmp_path: Path) -> None:
    """`../x/v` would read a version-shaped folder outside the store: refused as a path."""
    outside = Store(tmp_path / "elsewhere")
    build(outside, "x", "v", [[make(1)]])
    escape = os.path.relpath(outside.root / "x", store.root)
    for ref in (f"{escape}/v", "../x/v", "math/..", "./v1", "math/v1/../v2"):
        with pytest.raises(StoreError, match="not a version reference"):
            store.resolve(ref)


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full for a real ENOSPC")
    target = tmp_path / "file.bin"
    os.symlink("/dev/full", target.with_name(f".{target.name}.tmp-{os.getpid()}"))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"x" * 100_000)
    assert list(tmp_path.iterdir()) == [] and not target.exists()


def test_from_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKMIX_STORE", str(tmp_path / "env"))
    assert Store.from_option(str(tmp_path / "opt")).root == tmp_path / "opt"
    assert Store.from_option(None).root == tmp_path / "env"
    monkeypatch.delenv("THINKMIX_STORE")
    assert Store.from_option(None).root == Path("thinkmix-store")


def test_diff(store: Store) -> None:
    a = [make(i) for i in range(4)]
    b = [make(i, output="changed" if i == 1 else None) for i in range(1, 5)] + [make(9, "code")]
    build(store, "math", "v1", [a], recipe={"name": "math", "stages": [{"type": "f", "k": 1}]})
    build(
        store,
        "math",
        "v2",
        [b],
        recipe={"name": "math", "stages": [{"type": "f", "k": 2}], "shards": 1},
    )
    d = diff(store, "math/v1", "math/v2")
    assert d["a"] == "math/v1" and d["b"] == "math/v2"
    assert d["recipe_hash"]["equal"] is False
    assert d["recipe_changes"] == {"stages.0.k": {"a": 1, "b": 2}, "shards": {"a": None, "b": 1}}
    assert d["rows"]["train"] == {"a": 4, "b": 5}
    assert d["rows"]["rejected"] == {"a": 1, "b": 1}
    ids = d["ids"]
    assert (ids["only_a"], ids["only_b"], ids["both"], ids["changed_output"]) == (1, 2, 3, 1)
    assert ids["only_a_examples"] == [make(0).id]
    assert ids["changed_output_examples"] == [make(1).id]
    assert d["categories"] == {"code": {"a": 0, "b": 1}, "math": {"a": 4, "b": 4}}
    same = diff(store, "math/v1", "math/v1")
    assert same["recipe_hash"]["equal"] and same["recipe_changes"] == {}
