"""Stages: small classes with one job, `records in -> records out`.

A concrete stage is a dataclass whose fields are its recipe parameters (validated by pydantic at
the recipe boundary). The bases below do the chores once — counting, reasons, the rejected and
failed splits — so a filter writes only `keep(record)` and a source only `read(ctx)`.

Kinds:
- `Source.read(ctx)` yields the problems/prompts a build starts from;
- `Filter.keep(record)` returns True, or `Drop(reason)` to move the row to the rejected split;
- `Transform.apply(record)` returns the record changed (or a list of records);
- any other stage overrides `process(records, ctx)` (generation stages are async there).

Scope (see docs/execution.md): the runner streams rows through the stages in small batches of
source rows, and every row a source row fans out into stays in that batch. So a `row` stage
and a `group` stage (majority vote, pass rate, pairs: one verdict per prompt group, keyed by
`meta.problem_id`) both see whole prompt groups in each `process` call. A `global` stage must
see every row of the build at once (within-blend dedup): the runner gives it the one barrier.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from curation.record import Record

if TYPE_CHECKING:
    from curation.context import RunContext


@dataclass(frozen=True, slots=True)
class Drop:
    """A filter's verdict to drop a row; `reason` is a short snake_case tag (format_missing_think)."""

    reason: str
    score: float = 0.0


@dataclass(slots=True)
class StageResult:
    kept: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    failed: list[Record] = field(default_factory=list)


class Stage:
    """Base of every stage. `stage_type` is set by `register_stage`.

    `requires` / `provides` name the columns a stage reads and adds: record fields (`output`),
    or `meta.KEY` / `scores.KEY` entries. `thinkmix validate` checks them before any model call.
    """

    stage_type: ClassVar[str] = ""
    kind: ClassVar[str] = "transform"
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    # Teachers this stage talks to, as the names of dataclass fields holding a teacher name.
    teacher_fields: ClassVar[tuple[str, ...]] = ()
    # row | group | global: what one `process` call must see (module docstring).
    scope: ClassVar[str] = "row"

    @property
    def name(self) -> str:
        return self.stage_type

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def sampling_summary(self) -> dict[str, object]:
        """What the manifest records about this stage besides its parameters (override)."""
        return {}


class Source(Stage):
    """Yields the starting records. The runner shards what a source yields by record id."""

    kind: ClassVar[str] = "source"

    def read(self, ctx: RunContext) -> Iterator[Record]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def parents(self, ctx: RunContext) -> list[str]:
        """Dataset versions this source reads (`dataset/version`), for lineage and the version id."""
        return []


class Filter(Stage):
    """Keeps or drops each row. The verdict lands in `scores[stage_type]` as 1.0 or 0.0.

    A cheap check runs inline on each batch as it arrives. A filter that sets `cpu_heavy` (a
    symbolic math check, a parser) runs its batches in the context's process pool instead, so
    the event loop keeps the teachers' calls moving meanwhile.
    """

    kind: ClassVar[str] = "filter"
    cpu_heavy: ClassVar[bool] = False

    def keep(self, record: Record) -> bool | Drop:
        raise NotImplementedError(f"{type(self).__name__} must implement keep()")

    def judge(self, records: list[Record]) -> StageResult:
        result = StageResult()
        for record in records:
            verdict = self.keep(record)
            if isinstance(verdict, Drop):
                record.scores[self.stage_type] = verdict.score
                record.stage, record.reason = self.stage_type, verdict.reason
                result.rejected.append(record)
            elif verdict:
                record.scores.setdefault(self.stage_type, 1.0)
                result.kept.append(record)
            else:
                record.scores[self.stage_type] = 0.0
                record.stage, record.reason = self.stage_type, f"{self.stage_type}_failed"
                result.rejected.append(record)
        return result

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        if not self.cpu_heavy:
            return self.judge(records)
        return await ctx.run_cpu(self.judge, records)


class Transform(Stage):
    """Changes rows one at a time; may return several rows for one (a fan-out)."""

    def apply(self, record: Record) -> Record | list[Record]:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        kept: list[Record] = []
        for record in records:
            out = self.apply(record)
            kept.extend(out if isinstance(out, list) else [out])
        return StageResult(kept=kept)
