"""The versioned store: immutable dataset versions of parquet shards plus a manifest (DESIGN §8).

Layout::

    ROOT/<dataset>/<version>/manifest.json
    ROOT/<dataset>/<version>/<split>/part-NNNNN.parquet      split in train, rejected, failed
    ROOT/.staging/<dataset>/<version>/version/...            a build in progress
    ROOT/.staging/<dataset>/<version>/shards/shard-NNNNN.json  "shard done" markers

Design choices:
- A build writes into a staging area that survives a killed process. Every file is written to a
  temp file, flushed, fsynced and moved into place with `os.replace`; the directory is fsynced
  too. A shard's marker is written last, so "marker present" means "every split of the shard is
  on disk", and a resumed build redoes only shards without one.
- `Staging.commit` writes `manifest.json` and renames the staging `version/` directory to
  `ROOT/<dataset>/<version>` in one `os.rename`, so readers see a complete version or none.
  Committed files are chmod 0o444 and a version is never rewritten.
- Shards are byte-deterministic: fixed parquet writer options, maps sorted by `to_table`, no
  timestamps. The footer's `created_by` names the pyarrow version, so bytes are stable for a
  given pyarrow version (not across pyarrow upgrades).
- The manifest is the authority: readers take the file list from `manifest["files"]`, and
  `verify` checks the directory against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.record import ARROW_SCHEMA, Record, from_table, stable_hash, to_table

SPLITS = ("train", "rejected", "failed")
MANIFEST = "manifest.json"
STAGING = ".staging"
ENV_STORE = "THINKMIX_STORE"
DEFAULT_STORE = "thinkmix-store"

# Fixed writer options: changing any of them changes every shard's bytes and sha256.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
    "store_schema": True,
    "write_page_index": False,
}
_WRITER_OPTIONS = {k: v for k, v in _PARQUET_OPTIONS.items() if k != "row_group_size"}
ROW_GROUP_BUDGET = 32768  # rows buffered per split over all shards of a streamed build
MIN_ROW_GROUP = 1024


class StoreError(ValueError):
    """A store problem a user can cause or fix (unknown ref, ambiguous ref, bad staging)."""


class VersionExistsError(StoreError):
    """The version is already committed; versions are immutable."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    dataset: str
    version: str
    created_at: str
    rows: dict[str, int]  # split -> rows
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.dataset}/{self.version}"


# --- durable writes ------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_REF_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a dataset or version name, never a path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader (or a killed writer) sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # e.g. a full disk: do not leave the partial file taking space
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def parquet_bytes(records: list[Record]) -> bytes:
    """The parquet file for `records`; the same records always give the same bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(to_table(records), sink, **_PARQUET_OPTIONS)
    return sink.getvalue().to_pybytes()


def row_group_rows(shards: int) -> int:
    """Rows per parquet row group of a streamed shard file.

    A function of the shard count only (the recipe's), never of timing or of which shards one
    process builds, so every executor and `--shard K` cut the same row groups. The writers of
    one build together buffer about `ROW_GROUP_BUDGET` rows per split, whatever the shard count.
    """
    return max(MIN_ROW_GROUP, ROW_GROUP_BUDGET // max(1, shards))


class ShardWriter:
    """One split of one shard, written row group by row group as its rows arrive, in order.

    Rows go to a temp file beside the final one; `close` writes the last row group, fsyncs and
    moves the file into place, so a killed build leaves a temp file (removed at commit) and
    never a torn shard. The same rows with the same `row_group` give the same bytes.
    """

    def __init__(self, data_dir: Path, split: str, shard: int, row_group: int):
        self.split, self.shard, self.row_group = split, shard, row_group
        self.rel = f"{split}/{_shard_name(shard)}"
        self.path = data_dir / self.rel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in close() or abort()
        self._writer = pq.ParquetWriter(self._file, ARROW_SCHEMA, **_WRITER_OPTIONS)
        self._buffer: list[Record] = []
        self.rows = 0

    def write(self, records: list[Record]) -> None:
        self._buffer.extend(records)
        while len(self._buffer) >= self.row_group:
            self._flush(self._buffer[: self.row_group])
            del self._buffer[: self.row_group]

    def _flush(self, records: list[Record]) -> None:
        self._writer.write_table(to_table(records), row_group_size=len(records))
        self.rows += len(records)

    def close(self) -> dict:
        """Finish the file and describe it like `Staging.write_shard` does."""
        if self._buffer:
            self._flush(self._buffer)
            self._buffer = []
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)
        return {
            "path": self.rel,
            "split": self.split,
            "shard": self.shard,
            "rows": self.rows,
            "sha256": sha256_file(self.path),
        }

    def abort(self) -> None:
        """Drop the unfinished file (a failed build); the shard is redone on the next run."""
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


# --- staging -------------------------------------------------------------------------------


class Staging:
    """A version being built; survives a killed process and is resumed by opening it again."""

    def __init__(self, store: Store, dataset: str, version: str):
        self.store, self.dataset, self.version = store, dataset, version
        self.root = store.root / STAGING / dataset / version
        self.data_dir = self.root / "version"
        self.marker_dir = self.root / "shards"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.marker_dir.mkdir(parents=True, exist_ok=True)

    def write_shard(self, split: str, shard: int, records: list[Record]) -> dict:
        """Write one split of one shard (an empty list writes an empty file) and describe it."""
        if split not in SPLITS:
            raise StoreError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        data = parquet_bytes(records)
        rel = f"{split}/{_shard_name(shard)}"
        atomic_write_bytes(self.data_dir / rel, data)
        sha = hashlib.sha256(data).hexdigest()
        return {"path": rel, "split": split, "shard": shard, "rows": len(records), "sha256": sha}

    def open_shard(self, split: str, shard: int, row_group: int) -> ShardWriter:
        """A streaming writer for one split of one shard (see `ShardWriter`)."""
        if split not in (*SPLITS, "quarantine"):
            raise StoreError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return ShardWriter(self.data_dir, split, shard, row_group)

    def read_bytes(self, rel: str) -> bytes:
        """A staged file's bytes, by its path relative to the version (a manifest `path`)."""
        return (self.data_dir / rel).read_bytes()

    def read_shard(self, split: str, shard: int) -> list[Record]:
        """The rows of one staged split of a done shard (the global phase reads them back)."""
        return from_table(pq.read_table(self.data_dir / f"{split}/{_shard_name(shard)}"))

    def _marker(self, shard: int) -> Path:
        return self.marker_dir / f"shard-{shard:05d}.json"

    def mark_done(self, shard: int, files: list[dict], extra: dict | None = None) -> None:
        """Record that `shard` is complete; call after every `write_shard` of that shard."""
        for info in files:
            if not (self.data_dir / info["path"]).is_file():
                raise StoreError(f"shard {shard}: {info['path']} was not written")
        files = sorted(files, key=lambda i: i["path"])
        marker = {"shard": shard, "files": files, "extra": extra or {}}
        atomic_write_bytes(self._marker(shard), _json_bytes(marker))

    def shard_info(self, shard: int) -> dict | None:
        """The marker of a done shard ({"shard", "files", "extra"}), or None."""
        path = self._marker(shard)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def shard_done(self, shard: int, splits: tuple[str, ...] = SPLITS) -> bool:
        info = self.shard_info(shard)
        if info is None:
            return False
        written = {f["split"] for f in info["files"] if (self.data_dir / f["path"]).is_file()}
        return set(splits) <= written

    def done_shards(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.marker_dir.glob("shard-*.json"))

    def commit(self, manifest: dict) -> Path:
        """Publish the staged shards as ROOT/<dataset>/<version>; returns that path.

        Adds `dataset`, `version`, `created_at` (when absent) and `files` (every done shard's
        file infos, sorted by path) to the manifest.
        """
        final = self.store.root / self.dataset / self.version
        if final.exists():
            raise VersionExistsError(
                f"{self.dataset}/{self.version} already exists; versions are immutable"
            )
        for key in ("dataset", "version"):
            if manifest.get(key, getattr(self, key)) != getattr(self, key):
                raise StoreError(
                    f"manifest {key}={manifest[key]!r} but staging is {getattr(self, key)!r}"
                )
        files = [f for s in self.done_shards() for f in self.shard_info(s)["files"]]
        self._check_and_clean(files)
        manifest = {
            **manifest,
            "dataset": self.dataset,
            "version": self.version,
            "created_at": manifest.get("created_at") or _now(),
            "files": sorted(files, key=lambda i: i["path"]),
        }
        atomic_write_bytes(self.data_dir / MANIFEST, _json_bytes(manifest))
        for path in self.data_dir.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.data_dir, final)  # the version appears here, complete
        _fsync_dir(final.parent)
        # Only markers are left; another process's `Store.exists` may be removing them too.
        shutil.rmtree(self.root, ignore_errors=True)
        return final

    def discard(self) -> None:
        """Remove this staging area and everything in it (a re-check's scratch build)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _check_and_clean(self, files: list[dict]) -> None:
        """Drop temp files a killed writer left; refuse files that no done shard claims."""
        listed = {f["path"] for f in files}
        stray = []
        for path in sorted(self.data_dir.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(self.data_dir).as_posix()
            if path.name.startswith(".") and ".tmp-" in path.name:
                path.unlink()
            elif rel not in listed and rel != MANIFEST:
                stray.append(rel)
        if stray:
            raise StoreError(
                f"{self.dataset}/{self.version}: staged files belong to no done shard: "
                f"{', '.join(stray)}; finish those shards (mark_done) or delete the files"
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the store -----------------------------------------------------------------------------


class Store:
    """Committed versions under `root`, and staging areas for versions being built."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def from_option(cls, store: str | None) -> Store:
        """`--store DIR`, else $THINKMIX_STORE, else ./thinkmix-store."""
        return cls(Path(store or os.environ.get(ENV_STORE) or DEFAULT_STORE))

    def staging(self, dataset: str, version: str) -> Staging:
        for name, value in (("dataset", dataset), ("version", version)):
            if not value or "/" in value or value.startswith("."):
                raise StoreError(f"bad {name} name {value!r}: no '/', no leading '.', not empty")
        if self.exists(dataset, version):
            raise VersionExistsError(f"{dataset}/{version} already exists; versions are immutable")
        return Staging(self, dataset, version)

    def exists(self, dataset: str, version: str) -> bool:
        """True when the version is committed (its directory holds its manifest).

        A commit killed between its rename and its clean-up leaves the staging area behind
        (shard markers only); the first `exists` that sees the version committed removes it.
        """
        if not (self.root / dataset / version / MANIFEST).is_file():
            return False
        leftover = self.root / STAGING / dataset / version
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        return True

    def datasets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def versions(self, dataset: str | None = None) -> list[VersionInfo]:
        """Committed versions (of one dataset, or all), oldest first, newest last."""
        found = []
        for ds in [dataset] if dataset else self.datasets():
            base = self.root / ds
            if not base.is_dir():
                continue
            for vdir in sorted(base.iterdir()):
                if not (vdir / MANIFEST).is_file():
                    continue
                manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
                rows = Counter({s: 0 for s in SPLITS})
                for f in manifest.get("files", []):
                    rows[f["split"]] += f["rows"]
                created = manifest.get("created_at", "")
                info = VersionInfo(ds, vdir.name, created, dict(rows), vdir)
                # created_at has second resolution; the manifest's mtime orders ties.
                found.append(((created, (vdir / MANIFEST).stat().st_mtime_ns, ds, vdir.name), info))
        return [info for _, info in sorted(found, key=lambda pair: pair[0])]

    def resolve(self, ref: str) -> tuple[str, str]:
        """`dataset/version`, a version id unique across datasets, or a dataset (its newest)."""
        if "/" in ref:
            dataset, version = ref.split("/", 1)
            if not all(_REF_PART.fullmatch(part) for part in (dataset, version)):
                raise StoreError(
                    f"{ref!r} is not a version reference: say DATASET/VERSION with names of "
                    "letters, digits, '.', '_' and '-' (no path)"
                )
            if self.exists(dataset, version):
                return dataset, version
            known = [v.ref for v in self.versions(dataset)] if dataset in self.datasets() else []
            raise StoreError(
                f"no version {ref!r} in {self.root}; {dataset!r} has: {_listing(known)}"
            )
        everything = self.versions()
        candidates = [v.ref for v in everything if v.version == ref]
        newest = [v for v in everything if v.dataset == ref]
        if newest:
            candidates.append(newest[-1].ref)
        if len(candidates) == 1:
            dataset, version = candidates[0].split("/", 1)
            return dataset, version
        if candidates:
            raise StoreError(f"{ref!r} is ambiguous; say one of: {_listing(candidates)}")
        raise StoreError(
            f"no dataset or version {ref!r} in {self.root}; known: {_listing([v.ref for v in everything])}"
        )

    def path(self, ref: str) -> Path:
        dataset, version = self.resolve(ref)
        return self.root / dataset / version

    def manifest(self, ref: str) -> dict:
        return json.loads((self.path(ref) / MANIFEST).read_text(encoding="utf-8"))

    def split_paths(self, ref: str, split: str = "train") -> list[Path]:
        """The split's parquet files in shard order (for `datasets`, polars, duckdb...)."""
        base = self.path(ref)
        files = [f for f in self.manifest(ref)["files"] if f["split"] == split]
        return [base / f["path"] for f in sorted(files, key=lambda f: f["shard"])]

    def read_table(self, ref: str, split: str = "train") -> pa.Table:
        tables = [pq.read_table(p, schema=ARROW_SCHEMA) for p in self.split_paths(ref, split)]
        if not tables:
            return ARROW_SCHEMA.empty_table()
        return pa.concat_tables(tables)

    def read_records(self, ref: str, split: str = "train") -> list[Record]:
        return from_table(self.read_table(ref, split))


def _listing(refs: list[str]) -> str:
    return ", ".join(refs) if refs else "(none)"


# --- verify and diff -----------------------------------------------------------------------


def verify(store: Store, ref: str) -> list[str]:
    """Check every file of a version against its manifest; [] means the version is intact."""
    base = store.path(ref)
    manifest = store.manifest(ref)
    problems = []
    listed = {MANIFEST}
    for info in manifest.get("files", []):
        rel = info["path"]
        listed.add(rel)
        path = base / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        sha = sha256_file(path)
        if sha != info["sha256"]:
            problems.append(
                f"{rel}: sha256 mismatch (expected {info['sha256'][:12]}…, got {sha[:12]}…)"
            )
            continue  # a corrupt file's footer may be unreadable too; one problem per file
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"{rel}: unreadable parquet ({exc})")
            continue
        if rows != info["rows"]:
            problems.append(f"{rel}: row count mismatch (expected {info['rows']}, got {rows})")
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base).as_posix()
        if path.is_file() and rel not in listed:
            problems.append(f"{rel}: unexpected file (not in the manifest)")
    return problems


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": [1, 2]}} -> {"a.b.0": 1, "a.b.1": 2}; empty dicts/lists stay leaves."""
    if isinstance(obj, dict) and obj:
        items = obj.items()
    elif isinstance(obj, list) and obj:
        items = enumerate(obj)
    else:
        return {prefix: obj} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _recipe_hash(manifest: dict) -> str:
    return manifest.get("recipe_hash") or stable_hash(manifest.get("recipe"))


def diff(store: Store, ref_a: str, ref_b: str, split: str = "train", examples: int = 5) -> dict:
    """Compare two versions: recipe, row counts, ids (of `split`) and categories. JSON-ready.

    `recipe_changes` maps a dotted recipe key to {"a": value, "b": value}; a side is None
    where the key is absent. `recipe_hash` uses manifest["recipe_hash"], else a hash of
    manifest["recipe"]. `ids.*_examples` list up to `examples` ids, sorted.
    """
    man_a, man_b = store.manifest(ref_a), store.manifest(ref_b)
    flat_a, flat_b = flatten(man_a.get("recipe", {})), flatten(man_b.get("recipe", {}))
    changes = {
        k: {"a": flat_a.get(k), "b": flat_b.get(k)}
        for k in sorted(flat_a.keys() | flat_b.keys())
        if flat_a.get(k, ...) != flat_b.get(k, ...)
    }
    rows = {}
    for s in SPLITS:
        count = {}
        for side, man in (("a", man_a), ("b", man_b)):
            count[side] = sum(f["rows"] for f in man.get("files", []) if f["split"] == s)
        rows[s] = count
    cols = ["id", "output", "category"]
    tab_a = store.read_table(ref_a, split).select(cols).to_pydict()
    tab_b = store.read_table(ref_b, split).select(cols).to_pydict()
    out_a = dict(zip(tab_a["id"], tab_a["output"], strict=True))
    out_b = dict(zip(tab_b["id"], tab_b["output"], strict=True))
    both = out_a.keys() & out_b.keys()
    only_a, only_b = sorted(out_a.keys() - both), sorted(out_b.keys() - both)
    changed = sorted(i for i in both if out_a[i] != out_b[i])
    cat_a, cat_b = Counter(tab_a["category"]), Counter(tab_b["category"])
    return {
        "a": "/".join(store.resolve(ref_a)),
        "b": "/".join(store.resolve(ref_b)),
        "recipe_hash": {
            "a": _recipe_hash(man_a),
            "b": _recipe_hash(man_b),
            "equal": _recipe_hash(man_a) == _recipe_hash(man_b),
        },
        "recipe_changes": changes,
        "rows": rows,
        "ids": {
            "split": split,
            "only_a": len(only_a),
            "only_b": len(only_b),
            "both": len(both),
            "changed_output": len(changed),
            "only_a_examples": only_a[:examples],
            "only_b_examples": only_b[:examples],
            "changed_output_examples": changed[:examples],
        },
        "categories": {
            c: {"a": cat_a[c], "b": cat_b[c]} for c in sorted(cat_a.keys() | cat_b.keys())
        },
    }


__all__ = [
    "SPLITS",
    "ShardWriter",
    "Staging",
    "Store",
    "StoreError",
    "VersionExistsError",
    "VersionInfo",
    "atomic_write_bytes",
    "diff",
    "flatten",
    "parquet_bytes",
    "sha256_file",
    "verify",
]
