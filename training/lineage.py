"""Which rows trained which run: a real sqlite database beside the store's versions (DESIGN §9).

Versions are immutable, so lineage cannot be written into their shards; it lives in
`STORE/.lineage/lineage.sqlite` instead, one row per run and one row per (run, row id, part).
`part` names where in the run the row was used (an SFT schedule stage, or `grpo`). Exporting a
version through `export_records` fills each row's `used_in_training` from here.

    lineage = Lineage.open(store)
    lineage.start(run)                       # before training: the rows it will read
    lineage.finish(run.run_id, {"loss": 0.4}) # after: its metrics
    lineage.runs_for_row("3fa2...")          # -> [RunInfo(run_id="sft-...", ...)]
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curation.record import Record, stable_hash
from curation.store import Store

LINEAGE_DIR = ".lineage"
LINEAGE_DB = "lineage.sqlite"
SCHEMA_VERSION = 1  # bump with any change to the tables below

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    dataset TEXT NOT NULL,
    version TEXT NOT NULL,
    model TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    config TEXT NOT NULL,
    metrics TEXT
);
CREATE TABLE IF NOT EXISTS run_rows (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    row_id TEXT NOT NULL,
    part TEXT NOT NULL,
    PRIMARY KEY (run_id, part, row_id)
);
CREATE INDEX IF NOT EXISTS run_rows_by_row ON run_rows(row_id);
"""


class LineageError(ValueError):
    """A lineage query a user can fix (unknown run id)."""


@dataclass(slots=True)
class RunInfo:
    """One training run as lineage knows it; `rows` maps a part to the row ids it used."""

    run_id: str
    kind: str  # sft | grpo
    dataset: str
    version: str
    model: str  # the starting model ("fresh" for a new student)
    out_dir: str
    config: dict[str, Any]
    created_at: str = ""
    finished_at: str | None = None
    metrics: dict[str, Any] | None = None
    rows: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.dataset}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "version": self.ref,
            "model": self.model,
            "out_dir": self.out_dir,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "config": self.config,
            "metrics": self.metrics,
            "rows": self.rows,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(kind: str, ref: str, out_dir: str | Path) -> str:
    """`sft-20250101-120000-1a2b3c4d`: readable, sortable, unique per (ref, dir, start time)."""
    stamp = datetime.now(UTC)
    return f"{kind}-{stamp:%Y%m%d-%H%M%S}-{stable_hash(ref, str(out_dir), stamp.isoformat(), length=8)}"


class Lineage:
    """The lineage database of one store."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.commit()

    @classmethod
    def open(cls, store: Store) -> Lineage:
        return cls(store.root / LINEAGE_DIR / LINEAGE_DB)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Lineage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, run: RunInfo) -> None:
        """Record a run and the rows it will train on (before training, so a crash still shows)."""
        run.created_at = run.created_at or _now()
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, kind, dataset, version, model, out_dir, created_at,"
                " config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.kind, run.dataset, run.version, run.model, run.out_dir,
                 run.created_at, json.dumps(run.config, sort_keys=True, default=str)),
            )  # fmt: skip
            self._db.executemany(
                "INSERT OR IGNORE INTO run_rows (run_id, row_id, part) VALUES (?, ?, ?)",
                ((run.run_id, row_id, part) for part, ids in run.rows.items() for row_id in ids),
            )

    def finish(self, run_id: str, metrics: dict[str, Any]) -> None:
        with self._db:
            done = self._db.execute(
                "UPDATE runs SET finished_at = ?, metrics = ? WHERE run_id = ?",
                (_now(), json.dumps(metrics, sort_keys=True, default=str), run_id),
            )
        if done.rowcount != 1:
            raise LineageError(f"unknown run {run_id!r}; start() it first")

    def run(self, run_id: str) -> RunInfo:
        """One run with its rows; raises naming the known runs when the id is unknown."""
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self._db.execute("SELECT run_id FROM runs ORDER BY created_at")]
            raise LineageError(
                f"no run {run_id!r} in {self.path}; known: {', '.join(known) or '(none)'}"
            )
        info = _run_info(row)
        for part, row_id in self._db.execute(
            "SELECT part, row_id FROM run_rows WHERE run_id = ? ORDER BY part, row_id", (run_id,)
        ):
            info.rows.setdefault(part, []).append(row_id)
        return info

    def runs(self) -> list[RunInfo]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY created_at, rowid").fetchall()
        return [_run_info(r) for r in rows]

    def runs_for_row(self, row_id: str) -> list[tuple[RunInfo, list[str]]]:
        """The runs that used `row_id`, in the order they started, each with the parts."""
        found: dict[str, list[str]] = {}
        for run_id, part in self._db.execute(
            "SELECT r.run_id, p.part FROM run_rows p JOIN runs r ON r.run_id = p.run_id"
            " WHERE p.row_id = ? ORDER BY r.created_at, r.rowid, p.part",
            (row_id,),
        ):
            found.setdefault(run_id, []).append(part)
        return [(self.run_header(run_id), parts) for run_id, parts in found.items()]

    def run_header(self, run_id: str) -> RunInfo:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise LineageError(f"no run {run_id!r} in {self.path}")
        return _run_info(row)

    def used_in_training(self, row_ids: Iterable[str]) -> dict[str, list[str]]:
        """row id -> the run ids that used it (only rows some run used appear)."""
        out: dict[str, set[str]] = {}
        ids = list(row_ids)
        for lo in range(0, len(ids), 500):  # sqlite's parameter limit
            chunk = ids[lo : lo + 500]
            marks = ",".join("?" * len(chunk))
            for row_id, run_id in self._db.execute(
                f"SELECT row_id, run_id FROM run_rows WHERE row_id IN ({marks})", chunk
            ):
                out.setdefault(row_id, set()).add(run_id)
        return {k: sorted(v) for k, v in out.items()}


def _run_info(row: tuple) -> RunInfo:
    (run_id, kind, dataset, version, model, out_dir, created, finished, config, metrics) = row
    return RunInfo(
        run_id=run_id,
        kind=kind,
        dataset=dataset,
        version=version,
        model=model,
        out_dir=out_dir,
        config=json.loads(config),
        created_at=created,
        finished_at=finished,
        metrics=json.loads(metrics) if metrics else None,
    )


def export_records(store: Store, ref: str, split: str = "train") -> list[Record]:
    """A version's rows with `used_in_training` filled from lineage (the shards stay untouched)."""
    records = store.read_records(ref, split)
    with Lineage.open(store) as lineage:
        used = lineage.used_in_training(r.id for r in records)
    for record in records:
        record.used_in_training = sorted(
            set(record.used_in_training) | set(used.get(record.id, []))
        )
    return records


def export_jsonl(store: Store, ref: str, path: Path | str, split: str = "train") -> int:
    """Write `export_records` as JSON Lines; returns the number of rows."""
    records = export_records(store, ref, split)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    return len(records)


__all__ = [
    "Lineage",
    "LineageError",
    "RunInfo",
    "export_jsonl",
    "export_records",
    "new_run_id",
]
