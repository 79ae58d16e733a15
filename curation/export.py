"""`thinkmix export`: a dataset version in the formats other tools read (DESIGN §2, §8).

- `jsonl`: the public Llama-Nemotron-Post-Training-Dataset SFT layout, one `<split>.jsonl` per
  split: `input` (list of {role, content}, no system turn), `output`, `category`, `license`,
  `reasoning`, `generator`, `used_in_training` (one comma-separated string, as published),
  `version`, `system_prompt`. `curation.record.ForeignRow` reads the rows back. With
  `extra=True` the rows also carry `id`, `expected_answer`, `source` and `source_id` (fields
  ForeignRow knows), so a round trip keeps ids.
- `hf`: `datasets.DatasetDict` (one `Dataset` per split) written with `save_to_disk`, every
  column kept as stored (`scores` and `meta` are lists of {key, value}).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pyarrow as pa

from curation.store import SPLITS, Store, atomic_write_bytes

FORMATS = ("jsonl", "hf")
PUBLIC_COLUMNS = (
    "input",
    "output",
    "category",
    "license",
    "reasoning",
    "generator",
    "used_in_training",
    "version",
    "system_prompt",
)
EXTRA_COLUMNS = ("id", "expected_answer", "source", "source_id")


class ExportError(ValueError):
    """An export a user asked for that cannot be done (unknown format, non-empty target)."""


def _check_target(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; export into a new or empty directory")


def public_rows(table: pa.Table, extra: bool = False) -> list[dict]:
    """Rows of a store table in the public SFT layout (see the module docstring)."""
    columns = PUBLIC_COLUMNS + (EXTRA_COLUMNS if extra else ())
    rows = table.select(list(columns)).to_pylist()
    for row in rows:
        row["used_in_training"] = ", ".join(row["used_in_training"] or [])
    return rows


def write_jsonl(store: Store, ref: str, out: Path, splits=SPLITS, extra: bool = False) -> Path:
    """One `<split>.jsonl` per split in `out` (UTF-8, one JSON object a line)."""
    for split in splits:
        rows = public_rows(store.read_table(ref, split), extra)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write_bytes(out / f"{split}.jsonl", lines.encode("utf-8"))
    return out


def write_hf(store: Store, ref: str, out: Path, splits=SPLITS) -> Path:
    """`DatasetDict.save_to_disk(out)`: every column as stored; `load_from_disk` reads it."""
    import datasets  # heavy: imported only for this format

    parts = {s: datasets.Dataset(store.read_table(ref, s)) for s in splits}
    datasets.DatasetDict(parts).save_to_disk(str(out))
    return out


def export_version(
    store: Store,
    ref: str,
    out: Path,
    format: Literal["jsonl", "hf"] = "jsonl",
    splits: tuple[str, ...] = SPLITS,
    extra: bool = False,
) -> Path:
    """Export version `ref` into the directory `out` (new or empty); returns `out`.

    `format="jsonl"` writes the public Llama-Nemotron SFT layout, one file per split (`extra`
    adds id/expected_answer/source/source_id); `format="hf"` writes a `datasets.DatasetDict`
    with `save_to_disk`. `splits` picks the splits (default: train, rejected, failed).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ExportError(
            f"unknown split(s) {', '.join(unknown)}; expected some of {', '.join(SPLITS)}"
        )
    out = Path(out)
    store.resolve(ref)  # a bad ref fails before anything is written
    _check_target(out)
    if format == "jsonl":
        return write_jsonl(store, ref, out, splits, extra)
    return write_hf(store, ref, out, splits)
