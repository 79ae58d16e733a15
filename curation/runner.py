"""The runner: sources -> stages -> a versioned, immutable dataset.

Rows go to shards by a stable hash of their id, so shard membership never depends on input order
or machine. The sources are read once and rows stream through the stages in small batches, all
unfinished shards at once (`curation.engine`); each shard is written to the staging area of its
version as its rows finish and marked done with its last row. A killed build skips the shards
already written and asks the request cache before any model, so it repeats no finished work.
When every shard is written, the manifest is written and the version appears in the store in one
atomic rename.

A recipe with a global stage (one that must see every row: within-blend dedup) runs in two
phases: the stages before it stream into a `<version>.pre` staging area, and once every shard is
there the global phase reads them back, runs the global stage over all rows at once (the one
barrier), then the stages after it per shard, and writes the version's shards.

Where the unfinished shards run is the executor's business (`curation/executors/`: in this
process, or one Ray task per shard); the version, the skipping, the manifest and the commit stay
here, so every executor gives the same version. docs/execution.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from curation import __version__
from curation.cache import RequestCache
from curation.context import CURRENT_SHARD, CachedTeacher, RunContext
from curation.engine import (
    SPLITS,
    BatchResult,
    ShardSink,
    SourcePass,
    StreamEngine,
    batch_rows_for,
    finish_counts,
    merge_counts,
    run_stages,
    shard_of,
    stage_counts,
)
from curation.executors import BuildSpec, Executor, Usage, add_usage
from curation.executors.local import LocalExecutor
from curation.progress import BuildProgress
from curation.recipe import LoadedRecipe, load_recipe
from curation.record import Record, stable_hash
from curation.registry import make_backend
from curation.sources import quarantine_tag, write_quarantine
from curation.store import Staging, Store, atomic_write_bytes, row_group_rows

__all__ = ["BuildError", "BuildResult", "Builder", "shard_of"]
PRE_GLOBAL = "pre"  # suffix of the staging area the stages before a global stage stream into


class BuildError(ValueError):
    """A build request that cannot be carried out as asked (e.g. a shard out of range)."""


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
        # Index of the first global stage (one barrier before it), or len(stages) when none.
        self.global_at = next(
            (i for i, st in enumerate(loaded.stages) if st.scope == "global"), len(loaded.stages)
        )
        self.has_global = self.global_at < len(loaded.stages)
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

    async def run_shards(self, ctx: RunContext, staging: Staging, shards: list[int]) -> None:
        """Stream `shards` through the stages before any global stage into `staging`.

        All of them at once, in one pass over the sources; each is marked done as its last
        row is written (and `progress.shard_done` called).
        """
        stages = self.loaded.stages[: self.global_at]
        feed = SourcePass(
            self.loaded.sources, ctx, self.recipe.shards, shards, batch_rows_for(stages)
        )
        ctx.quarantine.clear()
        row_group = row_group_rows(self.recipe.shards)

        def done(shard: int, sink: ShardSink) -> None:
            self._finish_shard(ctx, staging, sink, [finish_counts(c) for c in sink.counts])

        engine = StreamEngine(
            stages,
            ctx,
            make_sink=lambda k: ShardSink(staging, k, row_group, self.version),
            on_shard_done=done,
            on_batch=self.progress.batch_done,
        )
        await engine.run(feed)

    async def run_global(self, ctx: RunContext, pre: Staging, staging: Staging) -> None:
        """The global phase: every streamed shard in `pre` -> the version's shards in `staging`.

        Reads back the rows that survived the streamed stages, runs the first global stage over
        all of them at once and every later stage per shard, and writes each shard not yet done
        in `staging`, its rejected and failed splits led by those of its streamed part.
        """
        shards = range(self.recipe.shards)
        owner: dict[str, int] = {}
        rows: list[Record] = []
        for k in shards:
            for record in pre.read_shard("train", k):
                owner[record.id] = k
                rows.append(record)
        stage = self.loaded.stages[self.global_at]
        started = time.perf_counter()
        result = await stage.process(rows, ctx)
        seconds = time.perf_counter() - started

        def split(records: list[Record]) -> dict[int, list[Record]]:
            out: dict[int, list[Record]] = {k: [] for k in shards}
            for record in records:
                out[owner.get(record.id, shard_of(record.id, self.recipe.shards))].append(record)
            return out

        kept, rejected, failed = split(result.kept), split(result.rejected), split(result.failed)
        n_in = Counter(owner.values())
        tail = self.loaded.stages[self.global_at + 1 :]
        row_group = row_group_rows(self.recipe.shards)

        async def finish(k: int) -> None:
            if staging.shard_done(k):
                return
            token = CURRENT_SHARD.set(k)
            try:
                train, tail_rejected, tail_failed, tail_counts = await run_stages(
                    tail, kept[k], ctx
                )
            finally:
                CURRENT_SHARD.reset(token)
            # This shard's share of the global stage's time, so the manifest sums to it.
            share = seconds * n_in[k] / max(1, len(rows))
            counts = stage_counts(stage.stage_type, n_in[k], kept[k], rejected[k], failed[k], share)
            info = pre.shard_info(k)
            streamed = info["extra"]["stages"]
            sink = ShardSink(staging, k, row_group, self.version)
            try:
                sink.write_rows("rejected", pre.read_shard("rejected", k))
                sink.write_rows("failed", pre.read_shard("failed", k))
                sink.put(
                    0,
                    BatchResult(
                        train,
                        rejected[k] + tail_rejected,
                        failed[k] + tail_failed,
                        [counts, *tail_counts],
                    ),
                )
                all_counts = streamed + [finish_counts(c) for c in sink.counts]
                self._finish_shard(ctx, staging, sink, all_counts, (pre, info))
            except BaseException:
                sink.abort()
                raise

        await asyncio.gather(*(finish(k) for k in shards))
        self.progress.log(
            f"global phase: {stage.stage_type} over {len(rows)} rows of {len(shards)} shards, "
            f"kept {len(result.kept)} ({seconds:.1f}s)"
        )

    @staticmethod
    def usage(ctx: RunContext) -> Usage:
        """Per-teacher usage of what `ctx` answered (new, cached, failed requests; tokens)."""
        return {name: t.usage.as_dict() for name, t in ctx.teachers.items()}

    # ------------------------------------------------------------------ internals

    def _base_dir(self) -> Path:
        return self.loaded.path.parent.resolve()

    def _finish_shard(
        self,
        ctx: RunContext,
        staging: Staging,
        sink: ShardSink,
        counts: list[dict],
        streamed: tuple[Staging, dict] | None = None,
    ) -> None:
        """Close a shard's files, add its quarantined rows, and mark it done in `staging`.

        `streamed` is (pre staging, the shard's marker there) in a global phase: the shard's
        streamed part, whose usage, quarantine counts and quarantine file carry over.
        """
        shard = sink.shard
        files = sink.close()
        before: dict = {}
        if streamed is not None:
            pre, info = streamed
            before = info["extra"]
            for f in info["files"]:
                if f["split"] == "quarantine":
                    atomic_write_bytes(staging.data_dir / f["path"], pre.read_bytes(f["path"]))
                    files.append(f)
        # The sources are read by the streamed part only; a global phase carries its file.
        quarantine = ctx.quarantine if streamed is None else []
        bad = [q for q in quarantine if shard_of(q["where"], self.recipe.shards) == shard]
        if bad:  # on_error: skip; no file (and the same bytes as before) when nothing was bad
            files.append(write_quarantine(staging, shard, bad))
        quarantined = Counter(before.get("quarantined", {}))
        quarantined.update(quarantine_tag(q["reason"]) for q in bad)
        usage: dict[str, dict[str, int]] = {}
        for name, teacher in ctx.teachers.items():
            part = teacher.usage_by_shard.get(shard)
            earlier = before.get("usage", {}).get(name, {})
            usage[name] = {
                k: earlier.get(k, 0) + (getattr(part, k) if part else 0) for k in _USAGE_TOTALS
            }
        staging.mark_done(
            shard,
            files,
            {"stages": counts, "usage": usage, "quarantined": dict(quarantined.most_common())},
        )
        if streamed is None:  # a global phase announces itself once, not per shard
            self.progress.shard_done(shard)

    def _phases(self, only_shard: int | None) -> tuple[Staging, Staging | None, list[int]]:
        """(the version's staging, the pre-global staging or None, the shards to stream)."""
        staging = self.store.staging(self.dataset, self.version)
        wanted = [only_shard] if only_shard is not None else list(range(self.recipe.shards))
        pre = None
        if self.has_global:
            pre = self.store.staging(self.dataset, f"{self.version}.{PRE_GLOBAL}")
        todo = []
        for k in wanted:
            if staging.shard_done(k) or (pre is not None and pre.shard_done(k)):
                self.progress.shard_skipped(k)
            else:
                todo.append(k)
        return staging, pre, todo

    def _build(self, only_shard: int | None) -> BuildResult:
        staging, pre, todo = self._phases(only_shard)
        usage = self.executor.run(self, pre or staging, todo)
        shards = range(self.recipe.shards)
        streamed = pre is not None and all(pre.shard_done(k) for k in shards)
        if streamed and not all(staging.shard_done(k) for k in shards):
            add_usage(usage, self.executor.run_global(self, pre, staging))
        if not all(staging.shard_done(k) for k in shards):
            return BuildResult(self.dataset, self.version, "partial", todo, usage)
        manifest = self._manifest(staging)
        staging.commit(manifest)
        if pre is not None:
            pre.discard()
        return BuildResult(self.dataset, self.version, "built", todo, usage, manifest)

    async def _recheck(self, shard: int) -> BuildResult:
        """Rebuild one shard of an existing version and compare it with what the store holds.

        With a global stage, every shard's streamed part is rebuilt (the global stage needs
        them all); answers come from the request cache, so that costs no model call.
        """
        stored = {
            f["path"]: f["sha256"]
            for f in self.store.manifest(f"{self.dataset}/{self.version}")["files"]
            if f["shard"] == shard
        }
        staging = self.store.staging(self.dataset, f"{self.version}.recheck")
        pre = None
        if self.has_global:
            pre = self.store.staging(self.dataset, f"{self.version}.recheck-{PRE_GLOBAL}")
        ctx = self.open_context()
        try:
            if pre is None:
                await self.run_shards(ctx, staging, [shard])
            else:
                await self.run_shards(ctx, pre, list(range(self.recipe.shards)))
                await self.run_global(ctx, pre, staging)
            files = staging.shard_info(shard)["files"]
        finally:
            ctx.close()
            staging.discard()
            if pre is not None:
                pre.discard()
        mismatches = [
            f"{f['path']}: sha256 {f['sha256'][:12]} differs from the stored {stored.get(f['path'], 'none')[:12]}"
            for f in files
            if stored.get(f["path"]) != f["sha256"]
        ]
        usage = self.usage(ctx)
        status = "differs" if mismatches else "reproduced"
        return BuildResult(self.dataset, self.version, status, [shard], usage, None, mismatches)

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
        stages: list[dict[str, Any]] = []
        for info in infos:
            merge_counts(stages, info["extra"]["stages"])
        stages = [finish_counts(total) for total in stages]
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


_USAGE_TOTALS = ("requests", "failed_requests", "prompt_tokens", "completion_tokens")


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
        f"{exc.filename or store_root}: {os.strerror(exc.errno) if exc.errno else exc} ({code}); "
        "no version was "
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
