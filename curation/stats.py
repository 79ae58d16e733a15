"""Blend statistics and the filter funnel of a dataset version (DESIGN §8, `thinkmix stats`).

Tokens are an estimate, not a tokenizer count: `output_tokens_est = ceil(chars / 4)` per row
(about four characters per token for English BPE vocabularies). It is cheap, needs no model
download and is the same on every machine; the column name says it is an estimate.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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
    mean_output_tokens_est. Sorted by the three keys (nulls first); shares sum to 1 (empty table ->
    no rows).

    The keys are few distinct strings in many rows, so they are grouped by their dictionary codes
    (free when the column is read as a dictionary, see `stats_dict`) and counted with
    `np.bincount`; character counts come from the Arrow offsets when the text is ASCII, which is
    exact and skips a UTF-8 decode of every byte.
    """
    if table.num_rows == 0:
        return pl.DataFrame(schema=_BLEND_SCHEMA)
    # The keys and the text are independent: numpy and Arrow release the GIL, so two threads.
    with ThreadPoolExecutor(max_workers=2) as pool:
        token_future = pool.submit(_tokens, table.column("output"))
        keys = [_codes(table.column(name)) for name in GROUP]
        sizes = [len(values) for _, values in keys]
        combined = _combine([codes for codes, _ in keys], sizes)
        tokens = token_future.result()
    space = math.prod(sizes)
    if space <= 1 << 24:  # a dense count over every possible key is cheaper than sorting
        rows = np.bincount(combined, minlength=space)
        token_sums = np.bincount(combined, weights=tokens, minlength=space)
        groups = np.flatnonzero(rows)
        rows, token_sums = rows[groups], token_sums[groups]
    else:
        groups, inverse = np.unique(combined, return_inverse=True)
        rows = np.bincount(inverse)
        token_sums = np.bincount(inverse, weights=tokens)
    token_sums = token_sums.astype(np.int64)
    labels: dict[str, list[str | None]] = {name: [] for name in GROUP}
    for group in groups.tolist():
        for name, (_, values), size in reversed(list(zip(GROUP, keys, sizes, strict=True))):
            group, code = divmod(group, size)
            labels[name].append(values[code])
    return (
        pl.DataFrame(
            {
                **labels,
                "rows": rows,
                "share": rows / rows.sum(),
                "output_tokens_est": token_sums,
                "mean_output_tokens_est": token_sums / rows,
            }
        )
        .cast(_BLEND_SCHEMA)
        .sort(GROUP, nulls_last=False)
    )


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Dictionary codes of a string column (null -> its own last code) and the decoded values."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    array = (
        column.unify_dictionaries().combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    )
    values = array.dictionary.to_pylist()
    indices = array.indices
    if indices.null_count:
        indices = indices.fill_null(len(values))
        values.append(None)
    return indices.to_numpy(), values


def _combine(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """One integer per row for the tuple of codes (mixed radix), computed in place."""
    dtype = np.int32 if math.prod(sizes) < 2**31 else np.int64
    combined = codes[0].astype(dtype)
    for column, size in zip(codes[1:], sizes[1:], strict=True):
        np.multiply(combined, size, out=combined)
        np.add(combined, column, out=combined, casting="unsafe")
    return combined


def _tokens(column: pa.ChunkedArray) -> np.ndarray:
    """`ceil(characters / CHARS_PER_TOKEN)` per row; null text counts as empty."""
    lengths = _char_lengths(column)
    np.add(lengths, CHARS_PER_TOKEN - 1, out=lengths)
    np.floor_divide(lengths, CHARS_PER_TOKEN, out=lengths)
    return lengths


def _char_lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Characters per row (null -> 0), exact: bytes minus UTF-8 continuation bytes per row."""
    parts = []
    for chunk in column.chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = chunk.cast(pa.large_string())  # e.g. string_view: offsets are needed
        width = np.int32 if pa.types.is_string(chunk.type) else np.int64
        offsets = np.frombuffer(chunk.buffers()[1], dtype=width)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2] or b"", dtype=np.uint8)
        lengths = np.subtract(offsets[1:], offsets[:-1], dtype=np.int64)
        lengths -= _continuation_bytes(data, offsets)
        if chunk.null_count:
            lengths[chunk.is_null().to_numpy(zero_copy_only=False)] = 0
        parts.append(lengths)
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


_SCAN_BYTES = 1 << 24  # text scanned per step: bounds the memory of the non-ASCII path


def _continuation_bytes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray | int:
    """UTF-8 continuation bytes (0b10xxxxxx) of each row, block by block.

    ASCII blocks cost one `max`; in others the positions of continuation bytes are found and
    each row boundary counts those before it (`searchsorted`), so the work follows the non-ASCII
    text, not the row count times the blocks.
    """
    before = carry = None  # continuation bytes before each offset; blocks wholly before it
    for start in range(int(offsets[0]), int(offsets[-1]), _SCAN_BYTES):
        stop = min(start + _SCAN_BYTES, int(offsets[-1]))
        block = data[start:stop]
        if block.max() < 0x80:
            continue
        if before is None:
            before = np.zeros(len(offsets), dtype=np.int64)
            carry = np.zeros(len(offsets) + 1, dtype=np.int64)
        positions = np.flatnonzero((block & 0xC0) == 0x80) + start
        first, last = np.searchsorted(offsets, [start, stop])  # offsets inside the block
        before[first:last] += np.searchsorted(positions, offsets[first:last])
        carry[last] += positions.size
    if before is None:  # all ASCII: characters are bytes
        return 0
    before += np.cumsum(carry[:-1])
    return np.diff(before)


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
    blend = blend_table(_blend_columns(store, f"{dataset}/{version}"))
    return {
        "ref": f"{dataset}/{version}",
        "totals": totals,
        "blend": blend.to_dicts(),
        "funnel": funnel(manifest).to_dicts(),
    }


def _blend_columns(store: Store, ref: str) -> pa.Table:
    """The train split's key columns as dictionaries (parquet stores them so) and `output`."""
    tables = [
        pq.read_table(path, columns=[*GROUP, "output"], read_dictionary=GROUP)
        for path in store.split_paths(ref, "train")
    ]
    return (
        pa.concat_tables(tables, promote_options="permissive")
        if tables
        else pa.table({name: pa.array([], pa.string()) for name in [*GROUP, "output"]})
    )


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
