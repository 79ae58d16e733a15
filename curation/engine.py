"""The streaming engine: rows flow through the stages in small batches, every shard at once.

The runner (`curation.runner`) decides what a build is; this module moves its rows:

- `SourcePass` reads every source once and routes each row to its shard (a stable hash of its
  id), cutting each shard's rows into numbered batches of `batch_rows` source rows.
- `StreamEngine` runs batches through the stage list as concurrent asyncio tasks. A batch is
  admitted while some teacher has less than two rounds of work handed to it (see
  `CachedTeacher.hungry`), up to `MAX_BATCHES` in flight, so a teacher keeps its
  `max_concurrency` calls busy across stage and shard boundaries while memory stays bounded by
  what is in flight, never by a shard or the input.
- `ShardSink` takes a shard's finished batches in sequence order, whatever order they finish
  in, and appends them to its streamed parquet files (`curation.store.ShardWriter`); when the
  source pass has ended and the last batch is in, the shard is closed and marked done.

Every row a source row fans out into stays in that source row's batch, so a group stage (one
verdict per prompt group) sees whole groups in each call. A global stage never runs here: the
runner gives it the one barrier (`curation.runner`, docs/execution.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from curation.context import CURRENT_SHARD
from curation.record import Record

if TYPE_CHECKING:
    from curation.context import RunContext
    from curation.stage import Source, Stage
    from curation.store import ShardWriter, Staging

SPLITS = ("train", "rejected", "failed")
BATCH_PROMPTS = 8  # source rows per batch when a stage calls a teacher: groups finish quickly
BATCH_ROWS = 2048  # source rows per batch when none does: fewer, cheaper hand-offs
MAX_BATCHES = 256  # batches in flight at most, whatever the teachers ask for
MIN_BATCHES = 4  # batches in flight at least (a process pool's workers, CPU-only recipes)


def shard_of(record_id: str, shards: int) -> int:
    """The shard of a row: a stable hash of its id, the same on every machine."""
    return int(hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:16], 16) % shards


def batch_rows_for(stages: Iterable[Stage]) -> int:
    """Source rows per batch: small when a stage generates (prompt groups), large otherwise."""
    return BATCH_PROMPTS if any(s.teacher_fields for s in stages) else BATCH_ROWS


def new_counts(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": 0,
        "created": 0,
        "kept": 0,
        "rejected": 0,
        "failed": 0,
        "reasons": Counter(),
        "seconds": 0.0,
    }


def add_counts(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("in", "created", "kept", "rejected", "failed", "seconds"):
        total[key] += part[key]
    total["reasons"].update(part["reasons"])


def merge_counts(totals: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    """Add per-stage counts into `totals` by position (a stage type may appear twice)."""
    for position, part in enumerate(parts):
        if position == len(totals):
            totals.append(new_counts(part["name"]))
        add_counts(totals[position], part)


def finish_counts(total: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready counts: reasons most common first, seconds rounded."""
    return {
        **total,
        "reasons": dict(Counter(total["reasons"]).most_common()),
        "seconds": round(total["seconds"], 3),
    }


def stage_counts(
    name: str, n_in: int, kept: list, rejected: list, failed: list, seconds: float
) -> dict[str, Any]:
    reasons = Counter(reason_tag(r.reason) for r in rejected + failed)
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
        "reasons": reasons,
        "seconds": seconds,
    }


def reason_tag(reason: str | None) -> str:
    """`request_failed: HTTP 503 ...` counts as `request_failed` in the funnel."""
    return (reason or "unknown").split(":", 1)[0]


@dataclass
class Batch:
    """Source rows of one shard, `seq`-th in that shard's source order."""

    shard: int
    seq: int
    rows: list[Record]
    rejected: list[Record] = field(default_factory=list)  # duplicate ids, dropped at the source
    read: int = 0  # source rows this batch stands for (kept + duplicates)


@dataclass
class BatchResult:
    train: list[Record]
    rejected: list[Record]
    failed: list[Record]
    counts: list[dict[str, Any]]  # per stage position, "source" first


class SourcePass:
    """One pass over the sources, routing rows into per-shard batches (see the module doc).

    Iterate it once; afterwards `batches[k]` says how many batches shard k got. A row whose id
    repeats one seen earlier in its shard is rejected as `duplicate_id`.
    """

    def __init__(
        self,
        sources: list[Source],
        ctx: RunContext,
        shards: int,
        wanted: Iterable[int],
        batch_rows: int,
    ) -> None:
        self.sources, self.ctx, self.shards = sources, ctx, shards
        self.wanted = set(wanted)
        self.batch_rows = batch_rows
        self.batches: dict[int, int] = {k: 0 for k in self.wanted}
        self.finished = False

    def __iter__(self) -> Iterator[Batch]:
        seen: dict[int, set[str]] = {k: set() for k in self.wanted}
        open_: dict[int, Batch] = {}
        for source in self.sources:
            for record in source.read(self.ctx):
                shard = shard_of(record.id, self.shards)
                if shard not in self.wanted:
                    continue
                batch = open_.get(shard)
                if batch is None:
                    batch = open_[shard] = Batch(shard, self.batches[shard], [])
                batch.read += 1
                if record.id in seen[shard]:
                    record.stage, record.reason = "source", "duplicate_id"
                    batch.rejected.append(record)
                    continue
                seen[shard].add(record.id)
                batch.rows.append(record)
                if len(batch.rows) >= self.batch_rows:
                    del open_[shard]
                    self.batches[shard] += 1
                    yield batch
        for shard in sorted(open_):
            self.batches[shard] += 1
            yield open_[shard]
        self.finished = True


class ShardSink:
    """A shard's finished batches, written in sequence order as they line up."""

    def __init__(self, staging: Staging, shard: int, row_group: int, version: str) -> None:
        self.shard, self.version = shard, version
        self.writers: dict[str, ShardWriter] = {
            split: staging.open_shard(split, shard, row_group) for split in SPLITS
        }
        self.waiting: dict[int, BatchResult] = {}
        self.next = 0
        self.total: int | None = None  # batches, known when the source pass has ended
        self.counts: list[dict[str, Any]] = []

    def write_rows(self, split: str, rows: list[Record]) -> None:
        for row in rows:
            row.version = row.version or self.version  # imported rows keep their own
        self.writers[split].write(rows)

    def put(self, seq: int, result: BatchResult) -> None:
        self.waiting[seq] = result
        while self.next in self.waiting:
            done = self.waiting.pop(self.next)
            self.write_rows("train", done.train)
            self.write_rows("rejected", done.rejected)
            self.write_rows("failed", done.failed)
            merge_counts(self.counts, done.counts)
            self.next += 1

    @property
    def complete(self) -> bool:
        return self.total is not None and self.next == self.total

    def close(self) -> list[dict]:
        return [writer.close() for writer in self.writers.values()]

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


async def run_stages(
    stages: list[Stage], rows: list[Record], ctx: RunContext
) -> tuple[list[Record], list[Record], list[Record], list[dict[str, Any]]]:
    """Rows through `stages` in order: (kept, rejected, failed, counts per stage)."""
    rejected: list[Record] = []
    failed: list[Record] = []
    counts = []
    for stage in stages:
        started = time.perf_counter()
        n_in = len(rows)
        if rows:
            result = await stage.process(rows, ctx)
            kept, dropped, broken = result.kept, result.rejected, result.failed
        else:
            kept, dropped, broken = [], [], []
        seconds = time.perf_counter() - started
        counts.append(stage_counts(stage.stage_type, n_in, kept, dropped, broken, seconds))
        rejected += dropped
        failed += broken
        rows = kept
    return rows, rejected, failed, counts


class StreamEngine:
    """Runs batches through `stages` into per-shard sinks; see the module docstring.

    `on_shard_done(shard, sink)` is called once per shard when its last batch is written (and
    for shards that got no rows at all, after the source pass); it closes the sink.
    """

    def __init__(
        self,
        stages: list[Stage],
        ctx: RunContext,
        make_sink: Callable[[int], ShardSink],
        on_shard_done: Callable[[int, ShardSink], None],
        on_batch: Callable[[int, list[dict[str, Any]]], None] | None = None,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        self.stages, self.ctx = stages, ctx
        self.make_sink, self.on_shard_done = make_sink, on_shard_done
        self.on_batch = on_batch or (lambda shard, counts: None)
        self.max_batches = max_batches
        self.min_batches = max(MIN_BATCHES, ctx.workers + 1)
        self.sinks: dict[int, ShardSink] = {}
        self._wake: asyncio.Event | None = None

    async def run(self, feed: SourcePass) -> None:
        self._wake = asyncio.Event()
        teachers = list(self.ctx.teachers.values())
        for teacher in teachers:
            teacher.listeners.append(self._wake.set)
        tasks: set[asyncio.Task] = set()
        try:
            for batch in feed:
                self._sink(batch.shard)
                while not self._may_admit(len(tasks), teachers):
                    await self._wait(tasks)
                tasks.add(asyncio.create_task(self._run(batch)))
                await asyncio.sleep(0)  # let it start: a CPU-only batch runs to its end here
            for shard, count in feed.batches.items():
                self._sink(shard).total = count
                self._maybe_done(shard)
            while tasks:
                await self._wait(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            for sink in self.sinks.values():
                sink.abort()
            raise
        finally:
            for teacher in teachers:
                with contextlib.suppress(ValueError):
                    teacher.listeners.remove(self._wake.set)

    def _sink(self, shard: int) -> ShardSink:
        if shard not in self.sinks:
            self.sinks[shard] = self.make_sink(shard)
        return self.sinks[shard]

    def _may_admit(self, in_flight: int, teachers: list) -> bool:
        if in_flight >= self.max_batches:
            return False
        if in_flight < self.min_batches:
            return True
        return any(t.hungry for t in teachers)

    async def _wait(self, tasks: set[asyncio.Task]) -> None:
        """Until a batch finishes or a teacher's queue shrinks; re-raises a batch's error."""
        assert self._wake is not None
        self._wake.clear()
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({*tasks, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        for task in done:
            if task is waker:
                continue
            tasks.discard(task)
            task.result()

    async def _run(self, batch: Batch) -> None:
        CURRENT_SHARD.set(batch.shard)  # this task's own context: usage counts per shard
        kept, rejected, failed, counts = await run_stages(self.stages, batch.rows, self.ctx)
        source = stage_counts("source", batch.read, batch.rows, batch.rejected, [], 0.0)
        result = BatchResult(kept, batch.rejected + rejected, failed, [source, *counts])
        self._sink(batch.shard).put(batch.seq, result)
        self.on_batch(batch.shard, result.counts)
        self._maybe_done(batch.shard)

    def _maybe_done(self, shard: int) -> None:
        sink = self.sinks[shard]
        if not sink.complete:
            return
        try:
            self.on_shard_done(shard, sink)
        except BaseException:
            sink.abort()  # a failed close (a full disk) leaves no temp file behind
            raise
        finally:
            del self.sinks[shard]
