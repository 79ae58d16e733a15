"""`thinkmix card`: the Hugging Face dataset card of a version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curation.card import LOAD_SNIPPET, render_card, size_category
from curation.store import Store
from tests.curation.test_report import make_store


def header(card: str) -> dict:
    assert card.startswith("---\n")
    head, _, _ = card[4:].partition("\n---\n")
    return yaml.safe_load(head)


def test_header_parses_and_lists_splits_with_counts(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    card = render_card(store, "blend/v1")
    meta = header(card)
    assert meta["pretty_name"] == "thinkmix blend v1"
    assert meta["license"] == ["apache-2.0", "cc-by-4.0"]
    assert meta["size_categories"] == ["n<1K"]
    assert "text-generation" in meta["task_categories"]
    files = meta["configs"][0]["data_files"]
    assert files == [
        {"split": "train", "path": "train/part-*.parquet"},
        {"split": "rejected", "path": "rejected/part-*.parquet"},
        {"split": "failed", "path": "failed/part-*.parquet"},
    ]
    counts = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert counts == {"train": 9, "rejected": 6, "failed": 1}
    # The globs match the shards of the version directory.
    base = store.path("blend/v1")
    for entry in files:
        assert len(list(base.glob(entry["path"]))) == 2
    for text in [
        "0123456789abcdef0123456789abcdef",
        "| math500 | 2 | 2 | ngram |",
        "| `filters.math_verify` | 15 | 12 | 3 | 0 | math_answer_mismatch (2), no_boxed (1) |",
        "deepseek-ai/DeepSeek-R1",
        "temperature=0.6",
        "| cc-by-4.0 | 7 | 77.8% |",
        "load_dataset(",
    ]:
        assert text in card, text


def test_loading_snippet_loads_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    store = make_store(tmp_path / "store")
    scope: dict = {}
    exec(LOAD_SNIPPET.format(root=store.path("blend/v1")), scope)
    train = scope["ds"]["train"]
    assert train.num_rows == 9
    assert train[0]["input"] == [{"role": "user", "content": "Question 0: what is 0 * 3?"}]


def test_empty_splits_are_left_out_of_configs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    staging = store.staging("empty", "v1")
    staging.mark_done(0, [staging.write_shard(s, 0, []) for s in ("train", "rejected", "failed")])
    staging.commit({"recipe": {"name": "empty"}})
    meta = header(render_card(store, "empty"))
    assert meta["license"] == "unknown"
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["train"]
    assert meta["dataset_info"]["splits"] == [
        {"name": "train", "num_examples": 0, "num_bytes": meta["dataset_info"]["dataset_size"]}
    ]


def test_card_of_a_real_build(built_math) -> None:
    _, store_dir, ref = built_math
    store = Store(store_dir)
    meta = header(render_card(store, ref))
    totals = {s: 0 for s in ("train", "rejected", "failed")}
    for f in store.manifest(ref)["files"]:
        totals[f["split"]] += f["rows"]
    counts = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert counts == {s: n for s, n in totals.items() if n or s == "train"}


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 250_000, 10**7, 2 * 10**9)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "100K<n<1M",
        "10M<n<100M",
        "n>1B",
    ]
