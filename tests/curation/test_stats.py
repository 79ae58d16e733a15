"""Blend table, funnel and the rendered stats of a version."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from rich.console import Console

from curation.record import Record, to_table
from curation.stats import blend_table, funnel, render_stats, stats_dict
from curation.store import Store


def rec(i: int, category: str, reasoning: str, generator: str, output: str) -> Record:
    return Record(
        id=f"r{i}",
        input=[{"role": "user", "content": f"q{i}"}],
        output=output,
        reasoning=reasoning,
        category=category,
        generator=generator,
    )


ROWS = [
    rec(0, "math", "on", "R1", "x" * 8),  # 2 tokens
    rec(1, "math", "on", "R1", "x" * 9),  # 3 tokens (ceil)
    rec(2, "math", "off", "R1", "x" * 4),  # 1
    rec(3, "code", "on", "Qwen", ""),  # 0
    rec(4, "math", "on", "Qwen", "x" * 40),  # 10
]

MANIFEST = {
    "stages": [
        {
            "name": "generators.multi_sample",
            "in": 30,
            "kept": 120,
            "rejected": 0,
            "failed": 2,
            "reasons": {},
        },
        {
            "name": "filters.math_verify",
            "in": 120,
            "kept": 80,
            "rejected": 40,
            "failed": 0,
            "reasons": {"math_answer_mismatch": 30, "no_boxed": 6, "empty": 2, "aaa": 2},
        },
        {
            "name": "filters.think_format",
            "in": 80,
            "kept": 75,
            "rejected": 5,
            "failed": 0,
            "reasons": {"format_missing_think": 5},
        },
    ]
}


def test_blend_table() -> None:
    df = blend_table(to_table(ROWS))
    assert df.columns == [
        "category",
        "reasoning",
        "generator",
        "rows",
        "share",
        "output_tokens_est",
        "mean_output_tokens_est",
    ]
    got = {(r["category"], r["reasoning"], r["generator"]): r for r in df.to_dicts()}
    assert list(got) == [
        ("code", "on", "Qwen"),
        ("math", "off", "R1"),
        ("math", "on", "Qwen"),
        ("math", "on", "R1"),
    ]
    assert got[("math", "on", "R1")]["rows"] == 2
    assert got[("math", "on", "R1")]["share"] == pytest.approx(0.4)
    assert got[("math", "on", "R1")]["output_tokens_est"] == 5
    assert got[("math", "on", "R1")]["mean_output_tokens_est"] == pytest.approx(2.5)
    assert got[("code", "on", "Qwen")]["output_tokens_est"] == 0
    assert df["share"].sum() == pytest.approx(1.0)
    assert df["rows"].sum() == len(ROWS)


def test_blend_table_empty() -> None:
    df = blend_table(to_table([]))
    assert df.height == 0 and "output_tokens_est" in df.columns


def _reference_blend(table: pa.Table) -> pl.DataFrame:
    """The blend table the plain way, to check the dictionary-code implementation against."""
    df = pl.from_arrow(table.select(["category", "reasoning", "generator", "output"]))
    tok = (pl.col("output").fill_null("").str.len_chars() + 3) // 4
    return (
        df.with_columns(tok.cast(pl.Int64).alias("tok"))
        .group_by(["category", "reasoning", "generator"])
        .agg(pl.len().alias("rows"), pl.col("tok").sum().alias("output_tokens_est"))
        .sort(["category", "reasoning", "generator"], nulls_last=False)
    )


@pytest.mark.parametrize("scan_bytes", [7, 1 << 24])
@pytest.mark.parametrize("dictionary", [False, True])
def test_blend_table_matches_a_plain_group_by(
    dictionary: bool, scan_bytes: int, monkeypatch
) -> None:
    """Nulls, non-ASCII text, several chunks and sliced arrays give the plain group-by's numbers."""
    monkeypatch.setattr("curation.stats._SCAN_BYTES", scan_bytes)  # blocks that split characters
    rng = random.Random(3)
    texts = ["", "plain ascii", "déjà vu ≤ 3", "數學 推理", None, "x" * 17]
    chunks = []
    for size in (40, 1, 57):
        columns = {
            "category": [rng.choice(["math", "code", None]) for _ in range(size + 3)],
            "reasoning": [rng.choice(["on", "off"]) for _ in range(size + 3)],
            "generator": [rng.choice(["R1", "Qwen", "", None]) for _ in range(size + 3)],
            "output": [rng.choice(texts) for _ in range(size + 3)],
        }
        chunks.append(pa.table(columns).slice(2, size))
    ascii_only = pa.table(
        {**{k: ["math"] for k in ("category", "reasoning", "generator")}, "output": ["abcd e"]}
    )
    table = pa.concat_tables([*chunks, ascii_only])
    if dictionary:
        for name in ("category", "reasoning", "generator"):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pc.dictionary_encode(table.column(name)))
    got = blend_table(table).select(_reference_blend(table).columns)
    assert got.to_dicts() == _reference_blend(table).to_dicts()
    assert blend_table(table)["rows"].sum() == table.num_rows


def test_funnel() -> None:
    df = funnel(MANIFEST)
    assert df["stage"].to_list() == [
        "generators.multi_sample",
        "filters.math_verify",
        "filters.think_format",
    ]
    row = df.row(1, named=True)
    assert (row["in"], row["kept"], row["rejected"], row["failed"]) == (120, 80, 40, 0)
    assert row["top_reasons"] == [
        {"reason": "math_answer_mismatch", "count": 30},
        {"reason": "no_boxed", "count": 6},
        {"reason": "aaa", "count": 2},  # ties ordered by name
    ]
    assert df.row(0, named=True)["top_reasons"] == []
    assert funnel({}).height == 0


def test_stats_dict_and_render(tmp_path: Path) -> None:
    store = Store(tmp_path)
    staging = store.staging("math", "v1")
    files = [
        staging.write_shard("train", 0, ROWS),
        staging.write_shard("rejected", 0, [rec(9, "math", "on", "R1", "bad")]),
        staging.write_shard("failed", 0, []),
    ]
    staging.mark_done(0, files)
    staging.commit(dict(MANIFEST))
    stats = stats_dict(store, "math")
    assert stats["ref"] == "math/v1"
    assert stats["totals"] == {"train": 5, "rejected": 1, "failed": 0}
    assert len(stats["blend"]) == 4 and len(stats["funnel"]) == 3
    json.dumps(stats)  # JSON-ready
    console = Console(record=True, width=160)
    render_stats(console, stats)
    text = console.export_text()
    assert "total" in text and "100.0%" in text
    assert "math_answer_mismatch (30)" in text and "filters.think_format" in text
