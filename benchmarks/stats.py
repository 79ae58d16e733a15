"""Blend statistics over 10M synthetic rows: thinkmix `blend_table` (polars) vs pandas.

The table is built in memory, column by column with numpy (no Python string per row):
category, reasoning and generator drawn with realistic shares, as dictionary columns (that is how
`thinkmix stats` reads them from the store's parquet files), and `output` strings whose
lengths are lognormal (mean `--mean-chars`, sigma 1, capped at 20k). The output bytes are one
random 1 MiB block tiled, so 10M strings cost only their total size (1.5 GB at the default mean
of 150 chars). Real reasoning traces are longer (thousands of chars); a larger mean scales the
string-length part of both implementations linearly and needs that much more memory.

thinkmix runs the real `curation.stats.blend_table`; pandas runs the same table from the same
Arrow table (`to_pandas`, `.str.len`, `groupby`). Both include their conversion from Arrow.
The results are checked equal before timings and their ratio are printed (best of `--repeat`).

The random text is ASCII, where thinkmix takes character counts from the Arrow offsets. A
second run puts one non-ASCII character in the first row, which sends thinkmix through its
UTF-8 path for the whole column: both ratios are printed.

    .venv/bin/python benchmarks/stats.py [--rows 10000000] [--mean-chars 150] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from curation.stats import CHARS_PER_TOKEN, GROUP, blend_table

CATEGORIES = {
    "math": 0.3,
    "code": 0.25,
    "science": 0.15,
    "chat": 0.15,
    "safety": 0.05,
    "instruction following": 0.1,
}
REASONING = {"on": 0.6, "off": 0.4}
GENERATORS = {
    "DeepSeek-R1": 0.4,
    "Qwen2.5-Math-7B-Instruct": 0.2,
    "Qwen2.5-Coder-32B-Instruct": 0.2,
    "Llama-3.3-70B-Instruct": 0.2,
}


def _strings(rng: np.random.Generator, shares: dict[str, float], n: int) -> pa.Array:
    idx = rng.choice(len(shares), size=n, p=list(shares.values())).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(list(shares)))


def synthetic_table(
    rows: int, mean_chars: float, seed: int = 0, non_ascii: bool = False
) -> pa.Table:
    """category, reasoning, generator (dictionaries), output; `non_ascii`: row 0 starts with é."""
    rng = np.random.default_rng(seed)
    sigma = 1.0
    lengths = np.clip(rng.lognormal(np.log(mean_chars) - sigma**2 / 2, sigma, rows), 0, 20_000)
    lengths[0] = max(lengths[0], 2)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths.astype(np.int64), out=offsets[1:])
    total = int(offsets[-1])
    block = rng.integers(ord("a"), ord("z") + 1, size=1 << 20, dtype=np.uint8)
    data = np.tile(block, -(-total // block.size))[:total]
    if non_ascii:
        data[:2] = list("é".encode())
    kind = pa.string() if total < 2**31 else pa.large_string()
    offsets = offsets.astype(np.int32 if kind == pa.string() else np.int64)
    output = pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pa.table(
        {
            "category": _strings(rng, CATEGORIES, rows),
            "reasoning": _strings(rng, REASONING, rows),
            "generator": _strings(rng, GENERATORS, rows),
            "output": output,
        }
    )


def pandas_blend(table: pa.Table) -> pd.DataFrame:
    """The blend table with pandas: the same columns, keys and token estimate."""
    df = table.select([*GROUP, "output"]).to_pandas()
    df["tok"] = (df["output"].fillna("").str.len() + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    out = (
        df.groupby(GROUP, sort=True, observed=True)["tok"]
        .agg(rows="size", output_tokens_est="sum", mean_output_tokens_est="mean")
        .reset_index()
    )
    out["share"] = out["rows"] / out["rows"].sum()
    # categorical keys sort by their dictionary order; the blend table sorts by the strings
    out[GROUP] = out[GROUP].astype(str)
    return out.sort_values(GROUP, ignore_index=True)


def best_of(repeat: int, fn, *args):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--mean-chars", type=float, default=150.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    start = time.perf_counter()
    table = synthetic_table(args.rows, args.mean_chars)
    output_bytes = table.column("output").nbytes
    print(
        f"table: {args.rows:,} rows, output {output_bytes / 1e9:.2f} GB "
        f"(built in {time.perf_counter() - start:.1f} s)"
    )
    t_ours, ours = best_of(args.repeat, blend_table, table)
    t_pandas, theirs = best_of(args.repeat, pandas_blend, table)
    theirs = theirs[list(ours.columns)]
    assert ours["rows"].to_list() == theirs["rows"].tolist(), "row counts differ"
    assert ours["output_tokens_est"].to_list() == theirs["output_tokens_est"].tolist(), (
        "tokens differ"
    )
    assert np.allclose(ours["mean_output_tokens_est"].to_numpy(), theirs["mean_output_tokens_est"])
    print(f"groups: {ours.height}, results equal")
    del table
    mixed = synthetic_table(args.rows, args.mean_chars, non_ascii=True)
    t_mixed, mixed_ours = best_of(args.repeat, blend_table, mixed)
    t_mixed_pandas, mixed_theirs = best_of(args.repeat, pandas_blend, mixed)
    assert mixed_ours["rows"].to_list() == mixed_theirs["rows"].tolist(), "row counts differ"
    assert mixed_ours["output_tokens_est"].sum() == mixed_theirs["output_tokens_est"].sum()
    print(f"thinkmix blend_table, ASCII text:     {t_ours:.2f} s")
    print(f"pandas {pd.__version__}, ASCII text:         {t_pandas:.2f} s")
    print(f"thinkmix blend_table, non-ASCII text: {t_mixed:.2f} s")
    print(f"pandas {pd.__version__}, non-ASCII text:     {t_mixed_pandas:.2f} s")
    print(
        f"ratio pandas / thinkmix: {t_pandas / t_ours:.1f}x ASCII, {t_mixed_pandas / t_mixed:.1f}x non-ASCII"
    )


if __name__ == "__main__":
    main()
