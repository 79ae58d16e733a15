"""Blend statistics and the filter funnel of a dataset version (DESIGN §8, `thinkmix stats`).

Tokens are an estimate, not a tokenizer count: `output_tokens_est = ceil(chars / 4)` per row
(about four characters per token for English BPE vocabularies). It is cheap, needs no model
download and is the same on every machine; the column name says it is an estimate.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from curation.store import SPLITS, Store

CHARS_PER_TOKEN = 4
GROUP = ["category", "reasoning", "generator"]

_BLEND_SCHEMA = {
    "category": pl.String,
    "reasoning": pl.String,
    "generator": pl.String,
    "rows": pl.Int64,
    "share": pl.Float64,
    "output_tokens_est": pl.Int64,
    "mean_output_tokens_est": pl.Float64,
}
_FUNNEL_SCHEMA = {
    "stage": pl.String,
    "in": pl.Int64,
    "kept": pl.Int64,
    "rejected": pl.Int64,
    "failed": pl.Int64,
    "top_reasons": pl.List(pl.Struct({"reason": pl.String, "count": pl.Int64})),
}


def blend_table(table: pa.Table) -> pl.DataFrame:
    """category x reasoning x generator -> rows, share of all rows, estimated output tokens.

    Columns: category, reasoning, generator, rows, share, output_tokens_est (total of the group),
    mean_output_tokens_est. Sorted by the three keys; shares sum to 1 (empty table -> no rows).
    """
    if table.num_rows == 0:
        return pl.DataFrame(schema=_BLEND_SCHEMA)
    df = pl.from_arrow(table.select([*GROUP, "output"]))
    assert isinstance(df, pl.DataFrame), "a pyarrow Table converts to a DataFrame"
    tokens = (
        pl.col("output").fill_null("").str.len_chars() + CHARS_PER_TOKEN - 1
    ) // CHARS_PER_TOKEN
    return (
        df.with_columns(tokens.cast(pl.Int64).alias("tok"))
        .group_by(GROUP)
        .agg(
            pl.len().cast(pl.Int64).alias("rows"),
            pl.col("tok").sum().alias("output_tokens_est"),
            pl.col("tok").mean().alias("mean_output_tokens_est"),
        )
        .with_columns((pl.col("rows") / pl.col("rows").sum()).alias("share"))
        .select(list(_BLEND_SCHEMA))
        .cast(_BLEND_SCHEMA)
        .sort(GROUP)
    )


def funnel(manifest: dict, top: int = 3) -> pl.DataFrame:
    """Per stage, in recipe order: rows in / kept / rejected / failed and the top reasons.

    Reads `manifest["stages"]`: a list of {"name", "in", "kept", "rejected", "failed",
    "reasons": {reason: count}}, in the order the stages ran. `top_reasons` holds up to `top`
    {"reason", "count"} entries, most frequent first (ties by name).
    """
    rows = []
    for stage in manifest.get("stages", []):
        reasons = sorted(stage.get("reasons", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            {
                "stage": stage["name"],
                "in": stage.get("in", 0),
                "kept": stage.get("kept", 0),
                "rejected": stage.get("rejected", 0),
                "failed": stage.get("failed", 0),
                "top_reasons": [{"reason": r, "count": n} for r, n in reasons[:top]],
            }
        )
    return pl.DataFrame(rows, schema=_FUNNEL_SCHEMA)


def stats_dict(store: Store, ref: str) -> dict[str, Any]:
    """JSON-ready statistics of a version: totals per split, the blend of train, the funnel."""
    dataset, version = store.resolve(ref)
    manifest = store.manifest(f"{dataset}/{version}")
    totals = {s: 0 for s in SPLITS}
    for info in manifest.get("files", []):
        totals[info["split"]] = totals.get(info["split"], 0) + info["rows"]
    blend = blend_table(store.read_table(f"{dataset}/{version}", "train"))
    return {
        "ref": f"{dataset}/{version}",
        "totals": totals,
        "blend": blend.to_dicts(),
        "funnel": funnel(manifest).to_dicts(),
    }


def render_stats(console: Console, stats: dict[str, Any]) -> None:
    """Print the blend table (with a total line) and the funnel (with reasons)."""
    totals = ", ".join(f"{s} {n}" for s, n in stats["totals"].items())
    console.print(f"[bold]{stats['ref']}[/bold]  rows: {totals}")

    blend = Table(title="blend (train)", show_footer=False)
    for name in ("category", "reasoning", "generator"):
        blend.add_column(name)
    for name in ("rows", "share", "tokens (est.)", "mean tokens (est.)"):
        blend.add_column(name, justify="right")
    rows = tokens = 0
    for r in stats["blend"]:
        rows += r["rows"]
        tokens += r["output_tokens_est"]
        blend.add_row(
            r["category"],
            r["reasoning"],
            r["generator"],
            str(r["rows"]),
            f"{r['share']:.1%}",
            str(r["output_tokens_est"]),
            f"{r['mean_output_tokens_est']:.1f}",
        )
    blend.add_section()
    mean = f"{tokens / rows:.1f}" if rows else "-"
    share = "100.0%" if rows else "-"
    blend.add_row("total", "", "", str(rows), share, str(tokens), mean, style="bold")
    console.print(blend)

    table = Table(title="funnel")
    table.add_column("stage")
    for name in ("in", "kept", "rejected", "failed"):
        table.add_column(name, justify="right")
    table.add_column("top reasons")
    for s in stats["funnel"]:
        reasons = ", ".join(f"{r['reason']} ({r['count']})" for r in s["top_reasons"])
        table.add_row(
            s["stage"], str(s["in"]), str(s["kept"]), str(s["rejected"]), str(s["failed"]), reasons
        )
    console.print(table)


def render_diff(console: Console, report: dict[str, Any]) -> None:
    """Print a `diff` report: recipe changes, rows per split and category, ids added/removed."""
    same = "same recipe" if report["recipe_hash"]["equal"] else "recipes differ"
    console.print(f"[bold]{report['a']}[/] vs [bold]{report['b']}[/]: {same}")
    if report["recipe_changes"]:
        changes = Table("recipe field", "a", "b", title="recipe changes")
        for key, values in report["recipe_changes"].items():
            changes.add_row(key, repr(values["a"]), repr(values["b"]))
        console.print(changes)
    rows = Table("split / category", "a", "b", "change", title="rows")
    for name, counts in [*report["rows"].items(), *report["categories"].items()]:
        rows.add_row(name, str(counts["a"]), str(counts["b"]), f"{counts['b'] - counts['a']:+d}")
    console.print(rows)
    ids = report["ids"]
    console.print(
        f"{ids['split']} rows by id: {ids['both']} in both ({ids['changed_output']} with a changed "
        f"output), {ids['only_a']} only in a, {ids['only_b']} only in b",
        highlight=False,
    )
