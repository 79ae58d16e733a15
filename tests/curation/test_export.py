"""`thinkmix export`: the public Llama-Nemotron jsonl layout and a `datasets` save_to_disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.export import PUBLIC_COLUMNS, ExportError, export_version
from curation.record import ForeignRow
from curation.store import Store, StoreError
from tests.curation.test_report import make_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "store")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_is_the_public_layout_and_reads_back(store: Store, tmp_path: Path) -> None:
    out = export_version(store, "blend/v1", tmp_path / "jsonl", format="jsonl")
    assert sorted(p.name for p in out.iterdir()) == [
        "failed.jsonl",
        "rejected.jsonl",
        "train.jsonl",
    ]
    rows = read_jsonl(out / "train.jsonl")
    records = store.read_records("blend/v1")
    assert len(rows) == len(records) == 9
    assert all(tuple(r) == PUBLIC_COLUMNS for r in rows)
    # The published layout writes used_in_training as one comma-separated string.
    assert {r["used_in_training"] for r in rows} == {"", "Nano, Super"}
    assert rows[0]["input"] == [{"role": "user", "content": "Question 0: what is 0 * 3?"}]
    for row, rec in zip(rows, records, strict=True):
        back = ForeignRow.model_validate(row).to_record()
        assert (back.input, back.output, back.system_prompt, back.reasoning) == (
            rec.input,
            rec.output,
            rec.system_prompt,
            rec.reasoning,
        )
        assert (back.category, back.generator, back.license, back.version) == (
            rec.category,
            rec.generator,
            rec.license,
            rec.version,
        )
        assert back.used_in_training == rec.used_in_training
    assert len(read_jsonl(out / "rejected.jsonl")) == 6


def test_jsonl_extra_columns_keep_ids(store: Store, tmp_path: Path) -> None:
    out = export_version(store, "blend", tmp_path / "x", splits=("train",), extra=True)
    assert [p.name for p in out.iterdir()] == ["train.jsonl"]
    back = [ForeignRow.model_validate(r).to_record() for r in read_jsonl(out / "train.jsonl")]
    originals = store.read_records("blend/v1")
    assert [r.id for r in back] == [r.id for r in originals]
    assert [r.expected_answer for r in back] == [r.expected_answer for r in originals]


def test_hf_save_to_disk_loads_back(store: Store, tmp_path: Path) -> None:
    import datasets

    out = export_version(store, "blend/v1", tmp_path / "hf", format="hf")
    ds = datasets.load_from_disk(str(out))
    assert set(ds) == {"train", "rejected", "failed"}
    assert (ds["train"].num_rows, ds["rejected"].num_rows, ds["failed"].num_rows) == (9, 6, 1)
    first = ds["train"][0]
    assert first["input"] == [{"role": "user", "content": "Question 0: what is 0 * 3?"}]
    assert first["id"] == store.read_records("blend/v1")[0].id
    leak = next(r for r in ds["rejected"] if r["reason"] == "contaminated_ngram")
    meta = {item["key"]: item["value"] for item in leak["meta"]}
    assert json.loads(meta["decontam.ngram"])["benchmark"] in {"math500", "aime24"}
    assert leak["scores"] == [{"key": "decontam.ngram", "value": 0.9}]


def test_errors_say_what_to_do(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="expected one of jsonl, hf"):
        export_version(store, "blend/v1", tmp_path / "a", format="csv")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="unknown split"):
        export_version(store, "blend/v1", tmp_path / "a", splits=("dev",))
    with pytest.raises(StoreError, match="no version"):
        export_version(store, "blend/v9", tmp_path / "a")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_version(store, "blend/v1", full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
