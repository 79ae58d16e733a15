"""The runner: sources -> shards -> stages -> a versioned, immutable dataset.

Rows go to shards by a stable hash of their id, so shard membership never depends on input order
or machine. Each shard runs through every stage and is written to the staging area of its
version; a killed build skips the shards already written and asks the request cache before any
model, so it repeats no finished work. When every shard is written, the manifest is written and
the version appears in the store in one atomic rename.

Where the unfinished shards run is the executor's business (`curation/executors/`: in this
process, or one Ray task per shard); the version, the skipping, the manifest and the commit stay
here, so every executor gives the same version.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from curation import __version__
from curation.cache import RequestCache
from curation.context import CachedTeacher, RunContext
from curation.executors import BuildSpec, Executor, Usage
from curation.executors.local import LocalExecutor
from curation.progress import BuildProgress
from curation.recipe import LoadedRecipe, load_recipe
from curation.record import Record, stable_hash
from curation.registry import make_backend
from curation.sources import quarantine_tag, write_quarantine
from curation.store import Staging, Store

SPLITS = ("train", "rejected", "failed")


class BuildError(ValueError):
    """A build request that cannot be carried out as asked (e.g. a shard out of range)."""


def shard_of(record_id: str, shards: int) -> int:
    return int(hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:16], 16) % shards


@dataclass
class BuildResult:
    dataset: str
    version: str
    status: str  # built | up_to_date | partial | reproduced | differs
    shards_built: list[int] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    mismatches: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.dataset}/{self.version}"


class Builder:
    def __init__(
        self,
        loaded: LoadedRecipe,
        store: Store,
        cache: RequestCache,
        progress: BuildProgress,
        workers: int = 1,
        executor: Executor | None = None,
    ):
        """`executor` runs the unfinished shards (default: the local one, in this process)."""
        self.loaded, self.store, self.cache, self.progress = loaded, store, cache, progress
        self.recipe = loaded.recipe
        self.dataset, self.workers = self.recipe.name, workers
        self.executor = executor or LocalExecutor()
        probe = RunContext(self.dataset, "", self.recipe.seed, self._base_dir(), store=store)
        self.parents = sorted({p for s in loaded.sources for p in s.parents(probe)})
        # A version is a content address: the recipe, the code and the exact parent versions.
        self.version = (
            stable_hash(self.recipe.hash(), self.parents, length=12)
            if self.parents
            else self.recipe.version_id()
        )

    # ------------------------------------------------------------------ public

    def build(self, only_shard: int | None = None) -> BuildResult:
        if only_shard is not None and not 0 <= only_shard < self.recipe.shards:
            raise ValueError(
                f"--shard {only_shard}: the recipe has shards 0..{self.recipe.shards - 1}"
            )
        try:
            if self.store.exists(self.dataset, self.version):
                if only_shard is None:
                    manifest = self.store.manifest(f"{self.dataset}/{self.version}")
                    return BuildResult(self.dataset, self.version, "up_to_date", manifest=manifest)
                return asyncio.run(self._recheck(only_shard))
            return self._build(only_shard)
        except OSError as exc:  # a full disk, a read-only store: one line, not a traceback
            raise BuildError(_os_error_message(exc, self.store.root)) from exc

    # ------------------------------------------------------------------ for executors

    def spec(self) -> BuildSpec:
        """How another process (a Ray task) rebuilds this build; see `Builder.from_spec`."""
        return BuildSpec(
            recipe_path=self.loaded.path.resolve(),
            overrides=tuple(self.loaded.overrides),
            store_root=self.store.root.resolve(),
            cache_path=self.cache.path.resolve(),
            workers=self.workers,
            version=self.version,
        )

    @classmethod
    def from_spec(cls, spec: BuildSpec, progress: BuildProgress | None = None) -> Builder:
        """The build `spec` describes, with its own request cache (the caller closes it).

        Progress goes to stderr as log lines unless given. Raises BuildError when the version
        comes out different from the driver's: this process runs other code or another recipe.
        """
        loaded = load_recipe(spec.recipe_path, list(spec.overrides))
        progress = progress or BuildProgress(Console(stderr=True), loaded.recipe.shards)
        cache = RequestCache(spec.cache_path)
        builder = cls(loaded, Store(spec.store_root), cache, progress, spec.workers)
        if builder.version != spec.version:
            cache.close()
            raise BuildError(
                f"{spec.recipe_path} gives version {builder.version} on "
                f"{socket.gethostname()} but {spec.version} on the driver: every node must run "
                "the same thinkmix code and read the same recipe file"
            )
        return builder

    def open_context(self) -> RunContext:
        """A run context with every recipe teacher behind the request cache; close it after."""
        ctx = RunContext(
            dataset=self.dataset,
            version=self.version,
            seed=self.recipe.seed,
            base_dir=self._base_dir(),
            store=self.store,
            workers=self.workers,
            on_error=self.recipe.on_error,
        )
        for name, spec in self.recipe.teachers.items():
            backend = make_backend(spec.backend, model=spec.model, **(spec.model_extra or {}))
            ctx.teachers[name] = CachedTeacher(name, backend, self.cache, self.progress.requests)
        return ctx

    async def run_shard(self, ctx: RunContext, staging: Staging, shard: int) -> list[dict]:
        """Run shard `shard` through every stage into `staging` and mark it done."""
        return await self._run_shard(ctx, staging, shard)

    @staticmethod
    def usage(ctx: RunContext) -> Usage:
        """Per-teacher usage of what `ctx` answered (new, cached, failed requests; tokens)."""
        return {name: t.usage.as_dict() for name, t in ctx.teachers.items()}

    # ------------------------------------------------------------------ internals

    def _base_dir(self) -> Path:
        return self.loaded.path.parent.resolve()

    def _build(self, only_shard: int | None) -> BuildResult:
        staging = self.store.staging(self.dataset, self.version)
        wanted = [only_shard] if only_shard is not None else list(range(self.recipe.shards))
        todo = []
        for k in wanted:
            if staging.shard_done(k):
                self.progress.shard_skipped(k)
            else:
                todo.append(k)
        usage = self.executor.run(self, staging, todo)
        if not all(staging.shard_done(k) for k in range(self.recipe.shards)):
            return BuildResult(self.dataset, self.version, "partial", todo, usage)
        manifest = self._manifest(staging)
        staging.commit(manifest)
        return BuildResult(self.dataset, self.version, "built", todo, usage, manifest)

    async def _recheck(self, shard: int) -> BuildResult:
        """Rebuild one shard of an existing version and compare it with what the store holds."""
        stored = {
            f["path"]: f["sha256"]
            for f in self.store.manifest(f"{self.dataset}/{self.version}")["files"]
            if f["shard"] == shard
        }
        staging = self.store.staging(self.dataset, f"{self.version}.recheck")
        ctx = self.open_context()
        try:
            files = await self._run_shard(ctx, staging, shard)
        finally:
            ctx.close()
            staging.discard()
        mismatches = [
            f"{f['path']}: sha256 {f['sha256'][:12]} differs from the stored {stored.get(f['path'], 'none')[:12]}"
            for f in files
            if stored.get(f["path"]) != f["sha256"]
        ]
        usage = self.usage(ctx)
        status = "differs" if mismatches else "reproduced"
        return BuildResult(self.dataset, self.version, status, [shard], usage, None, mismatches)

    def _read_shard(self, ctx: RunContext, shard: int) -> Iterator[Record]:
        for source in self.loaded.sources:
            for record in source.read(ctx):
                if shard_of(record.id, self.recipe.shards) == shard:
                    yield record

    async def _run_shard(self, ctx: RunContext, staging: Staging, shard: int) -> list[dict]:
        splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
        usage_before = {name: t.usage.as_dict() for name, t in ctx.teachers.items()}
        records, seen = [], set()
        ctx.quarantine.clear()  # every shard reads every source: keep only this shard's bad rows
        for record in self._read_shard(ctx, shard):
            if record.id in seen:
                record.stage, record.reason = "source", "duplicate_id"
                splits["rejected"].append(record)
            else:
                seen.add(record.id)
                records.append(record)
        counts = [
            _counts(
                "source",
                len(records) + len(splits["rejected"]),
                records,
                splits["rejected"],
                [],
                0.0,
            )
        ]
        self.progress.stage_done(shard, counts[0])
        for stage in self.loaded.stages:
            started = time.perf_counter()
            result = await stage.process(records, ctx)
            seconds = time.perf_counter() - started
            counts.append(
                _counts(
                    stage.stage_type,
                    len(records),
                    result.kept,
                    result.rejected,
                    result.failed,
                    seconds,
                )
            )
            self.progress.stage_done(shard, counts[-1])
            splits["rejected"] += result.rejected
            splits["failed"] += result.failed
            records = result.kept
        splits["train"] = records
        files = []
        for name, rows in splits.items():
            for row in rows:
                row.version = row.version or self.version  # imported rows keep their own
            files.append(staging.write_shard(name, shard, rows))
        bad = [q for q in ctx.quarantine if shard_of(q["where"], self.recipe.shards) == shard]
        if bad:  # on_error: skip; no file (and the same bytes as before) when nothing was bad
            files.append(write_quarantine(staging, shard, bad))
        quarantined = dict(Counter(quarantine_tag(q["reason"]) for q in bad).most_common())
        staging.mark_done(
            shard,
            files,
            {
                "stages": counts,
                "usage": _usage_delta(ctx, usage_before),
                "quarantined": quarantined,
            },
        )
        return files

    def _with_cost(self, teacher: str, usage: dict[str, int]) -> dict[str, Any]:
        """Adds `cost_usd` when the teacher declares `prices` (USD per 1M prompt/completion tokens)."""
        spec = self.recipe.teachers.get(teacher)
        prices = (spec.model_extra or {}).get("prices") if spec else None
        if not prices:
            return usage
        cost = (
            usage.get("prompt_tokens", 0) * float(prices.get("prompt", 0))
            + usage.get("completion_tokens", 0) * float(prices.get("completion", 0))
        ) / 1e6
        return {**usage, "cost_usd": round(cost, 6)}

    def _manifest(self, staging: Staging) -> dict[str, Any]:
        infos = [staging.shard_info(k) for k in range(self.recipe.shards)]
        # Aggregated by position: a stage type may appear twice in one recipe.
        stages: list[dict[str, Any]] = []
        for info in infos:
            for position, c in enumerate(info["extra"]["stages"]):
                if position == len(stages):
                    stages.append(
                        {
                            "name": c["name"],
                            "in": 0,
                            "created": 0,
                            "kept": 0,
                            "rejected": 0,
                            "failed": 0,
                            "reasons": Counter(),
                            "seconds": 0.0,
                        }
                    )
                total = stages[position]
                for key in ("in", "created", "kept", "rejected", "failed", "seconds"):
                    total[key] += c[key]
                total["reasons"].update(c["reasons"])
        for total in stages:
            total["reasons"] = dict(total["reasons"].most_common())
            total["seconds"] = round(total["seconds"], 3)
        usage: dict[str, Counter] = {}
        for info in infos:
            for name, values in info["extra"]["usage"].items():
                usage.setdefault(name, Counter()).update(values)
        splits = Counter()
        for info in infos:
            for f in info["files"]:
                splits[f["split"]] += f["rows"]
        quarantined = Counter()
        for info in infos:
            quarantined.update(info["extra"].get("quarantined", {}))
        return {
            "dataset": self.dataset,
            "version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "thinkmix_version": __version__,
            "code_revision": _code_revision(),
            "recipe_file": str(self.loaded.path),
            "recipe": self.recipe.canonical(),
            "recipe_hash": self.recipe.hash(),
            "overrides": self.loaded.overrides,
            "teachers": self.recipe.canonical()["teachers"],
            "sampling": [
                {"stage": s.stage_type, **s.sampling_summary()}
                for s in self.loaded.stages
                if s.sampling_summary()
            ],
            "parents": self.parents,
            "shards": self.recipe.shards,
            "stages": stages,
            "usage": {name: self._with_cost(name, dict(values)) for name, values in usage.items()},
            # `quarantine` (bad input rows kept under on_error: skip) only when there are some
            "splits": {
                name: splits[name]
                for name in (*SPLITS, "quarantine")
                if name in SPLITS or splits[name]
            },
            "quarantined": {
                "rows": splits["quarantine"],
                "reasons": dict(quarantined.most_common()),
            },
        }


def _counts(name: str, n_in: int, kept: list, rejected: list, failed: list, seconds: float) -> dict:
    reasons = Counter(_reason_tag(r.reason) for r in rejected + failed)
    out = len(kept) + len(rejected) + len(failed)
    # A stage may only add rows (a fan-out); one that loses rows without a reason is a bug.
    assert out >= n_in, f"{name}: {n_in} rows in but only {out} accounted for"
    return {
        "name": name,
        "in": n_in,
        "created": out - n_in,
        "kept": len(kept),
        "rejected": len(rejected),
        "failed": len(failed),
        "reasons": dict(reasons.most_common()),
        "seconds": round(seconds, 3),
    }


def _reason_tag(reason: str | None) -> str:
    """`request_failed: HTTP 503 ...` counts as `request_failed` in the funnel."""
    return (reason or "unknown").split(":", 1)[0]


_USAGE_TOTALS = ("requests", "failed_requests", "prompt_tokens", "completion_tokens")


def _usage_delta(ctx: RunContext, before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Usage of one shard: deterministic totals, not how many of them this process sent."""
    return {
        name: {k: t.usage.as_dict()[k] - before[name][k] for k in _USAGE_TOTALS}
        for name, t in ctx.teachers.items()
    }


def _os_error_message(exc: OSError, store_root: Path) -> str:
    """`PATH: cause (ENOSPC); ...` for a file the build could not read or write.

    A failed flush carries no file name; the store's root is named then.
    """
    code = errno.errorcode.get(exc.errno or 0, "no errno")
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EROFS: "use a writable store (--store DIR)",
        errno.EACCES: "make the store writable or use another (--store DIR)",
        errno.EPERM: "make the store writable or use another (--store DIR)",
    }.get(exc.errno or 0, "fix the cause")
    return (
        f"{exc.filename or store_root}: {exc.strerror or exc} ({code}); no version was "
        f"published: {hint} and build again (finished shards are kept)"
    )


def _code_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
