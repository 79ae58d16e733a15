"""Stages: small classes with one job, `records in -> records out`.

A concrete stage is a dataclass whose fields are its recipe parameters (validated by pydantic at
the recipe boundary). The bases below do the chores once — grouping, requests, counting, reasons,
scores, the rejected and failed splits — so a concrete stage writes only its own decision:

- `Source.read(ctx)` yields the problems/prompts a build starts from;
- a filter: `Filter.keep(record)` returns True, or `Drop(reason)` to move the row to the
  rejected split (`filters.format`);
- a group filter: `GroupFilter.judge_group(rows, ctx)` gets the rows of one prompt group (same
  `group_key`, `meta.problem_id` by default) and returns one verdict per row, in order: majority
  vote, reward-model top-k, preference pairs (`filters.majority`);
- an LLM stage: `LLMStage.format_input(record)` (the conversation to send, or None) and
  `LLMStage.parse_output(text, row, response)` (the columns to set, or a Drop) are two pure
  functions around one teacher call per batch; `new_row` builds the row an answer becomes
  (`generators.variation`);
- `Transform.apply(record)` returns the record changed (or a list of records);
- anything else overrides `process(records, ctx)` (async, so it can await teachers): a global
  stage, a flow of several dependent calls (`generators.its`). `reject` and `fail` file a row.

Scope (see docs/execution.md): the runner streams rows through the stages in small batches of
source rows, and every row a source row fans out into stays in that batch. So a `row` stage
and a `group` stage (one verdict per prompt group) both see whole prompt groups in each
`process` call. A `global` stage must see every row of the build at once (within-blend dedup,
`decontam.minhash`): the runner gives it the one barrier.

    @register_stage("filters.shout")  # a filter
    @dataclass
    class Shout(Filter):
        def keep(self, record):
            return record.output.isupper() or Drop("shout_lowercase")

    @register_stage("filters.first_sample")  # a group filter
    @dataclass
    class FirstSample(GroupFilter):
        def judge_group(self, rows, ctx):
            return [True] + [Drop("first_sample_not_first")] * (len(rows) - 1)

    @register_stage("generators.title")  # an LLM stage: one new row per answer
    @dataclass
    class Title(LLMStage):
        teacher: str = "writer"
        temperature: float = 0.0
        top_p: float = 1.0
        max_tokens: int = 32

        def format_input(self, record):
            return [{"role": "user", "content": f"A title for: {record.output}"}]

        def new_row(self, ctx, record, k, generator, response):
            return replace(record, id=f"{record.id}-title", meta=dict(record.meta))

        def parse_output(self, text, row, response):
            return {"meta.title": text.strip()} if text.strip() else Drop("title_empty")

    @register_stage("filters.unique_output")  # a global stage: every row of the build at once
    @dataclass
    class UniqueOutput(Stage):
        scope: ClassVar[str] = "global"

        async def process(self, records, ctx):
            result, seen = StageResult(), set()
            for record in records:
                if record.output in seen:
                    reject(self.stage_type, record, "unique_output_repeat", result)
                else:
                    seen.add(record.output)
                    result.kept.append(record)
            return result
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from curation.generation import GenerationRequest, GenerationResponse, SamplingParams
from curation.record import Message, Record

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


def settle(stage: str, record: Record, verdict: bool | Drop, result: StageResult) -> None:
    """A filter's verdict on one row: into `kept` (score 1.0 unless the check wrote its own), or
    into `rejected` with the stage, the reason (`STAGE_failed` for a bare False) and the score."""
    if isinstance(verdict, Drop):
        record.scores[stage] = verdict.score
        reject(stage, record, verdict.reason, result)
    elif verdict:
        record.scores.setdefault(stage, 1.0)
        result.kept.append(record)
    else:
        record.scores[stage] = 0.0
        reject(stage, record, f"{stage}_failed", result)


def reject(stage: str, record: Record, reason: str, result: StageResult) -> None:
    """Into the rejected split: the row was judged and dropped, with the stage and the reason."""
    record.stage, record.reason = stage, reason
    result.rejected.append(record)


def fail(stage: str, record: Record, reason: str, result: StageResult) -> None:
    """Into the failed split: nothing was judged (a request failed after its retries), so the
    next build asks again."""
    record.stage, record.reason = stage, reason
    result.failed.append(record)


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
            settle(self.stage_type, record, self.keep(record), result)
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


class GroupFilter(Stage):
    """Keeps or drops rows one prompt group at a time: one verdict per row, decided together.

    The rows of a group share `group_key` (`meta["problem_id"]`, else the row's own id: a group of
    one). The subclass writes `judge_group(rows, ctx)`, one verdict per row in the order given:
    True (kept), a Drop, or a Record (kept as that row instead: a pair built from the group). The
    base groups the batch (groups in order of first appearance, rows in batch order) and writes
    each verdict as a `Filter` does: `scores[stage_type]` = 1.0 kept or the Drop's score, and
    `stage` / `reason` on the dropped rows. Optional hooks:

    - `keep(record)`: True, or a Drop for a row that cannot join any group (it is dropped
      before grouping, in batch order, ahead of the groups' drops);
    - `arrange(rows)`: the order a group's rows are judged and written in (a ranking);
    - `scored = False`: the verdicts leave `scores` alone (a pairing stage writes its own).

    No group stage calls a teacher per group so far; one that scores every row first (a reward
    model, one call for the whole batch) does that in `process` and then calls `judge`.
    """

    kind: ClassVar[str] = "filter"
    scope: ClassVar[str] = "group"
    scored: ClassVar[bool] = True

    def group_key(self, record: Record) -> Hashable:
        return record.meta.get("problem_id") or record.id

    def keep(self, record: Record) -> bool | Drop:
        return True

    def arrange(self, rows: list[Record]) -> list[Record]:
        return rows

    def judge_group(self, rows: list[Record], ctx: RunContext) -> list[bool | Drop | Record]:
        raise NotImplementedError(f"{type(self).__name__} must implement judge_group()")

    def judge(self, records: list[Record], ctx: RunContext) -> StageResult:
        result = StageResult()
        groups: dict[Hashable, list[Record]] = {}
        for record in records:
            verdict = self.keep(record)
            if verdict and not isinstance(verdict, Drop):
                groups.setdefault(self.group_key(record), []).append(record)
            else:
                self._settle(record, verdict, result)
        for rows in groups.values():
            rows = self.arrange(rows)
            verdicts = self.judge_group(rows, ctx)
            assert len(verdicts) == len(rows), (
                f"{self.stage_type}: {len(verdicts)} verdicts for a group of {len(rows)} rows"
            )
            for record, verdict in zip(rows, verdicts, strict=True):
                self._settle(record, verdict, result)
        return result

    def _settle(self, record: Record, verdict: bool | Drop | Record, result: StageResult) -> None:
        # Unlike a Filter's, a kept row's score is set, not defaulted: the group's verdict
        # replaces one a row brings from an earlier build.
        if isinstance(verdict, Record) or (verdict and not isinstance(verdict, Drop)):
            kept = verdict if isinstance(verdict, Record) else record
            if self.scored:
                kept.scores[self.stage_type] = 1.0
            result.kept.append(kept)
            return
        drop = verdict if isinstance(verdict, Drop) else Drop(f"{self.stage_type}_failed")
        if self.scored:
            record.scores[self.stage_type] = drop.score
        reject(self.stage_type, record, drop.reason, result)

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        # Group-wise, so never split across the context's process pool (it chunks by rows).
        return self.judge(records, ctx)


class LLMStage(Stage):
    """Asks a teacher for `samples_for(record)` answers per row, and makes a row of each.

    Two pure functions around one call: `format_input(record)` returns the conversation to send
    (None: no request for this row) and `parse_output(text, row, response)` the columns to set on
    the answer's row (`{"output": ...}`, `{"meta.KEY": ...}`, named as in `provides`) or a Drop.
    `new_row(ctx, record, k, generator, response)` builds the row answer `k` of `record` becomes.

    The base builds the requests (`sampling()` from the stage's `temperature`, `top_p` and
    `max_tokens`, sample index k, the build's seed), sends the whole batch in one
    `ctx.teacher(self.teacher).generate` call, and writes each answer's row: a request that
    failed after its backend's retries goes to the failed split (`request_failed: <error>`); a
    Drop goes to the rejected split with the teacher's raw text as its `output` (so the reason can
    be checked) and `generator`; otherwise the columns are set and the row is kept. Optional hooks:
    `asked(records)` (which rows to ask about, in the order their answers are written),
    `kept_inputs(records)` (input rows kept ahead of the new ones; default none) and
    `prepare(ctx)` (per call, before any `format_input`: load a template next to the recipe).
    """

    kind: ClassVar[str] = "generate"
    teacher_fields: ClassVar[tuple[str, ...]] = ("teacher",)
    # Recipe fields the subclass declares (dataclass fields), read by the defaults below.
    teacher: str
    temperature: float
    top_p: float
    max_tokens: int
    samples: int = 1  # answers per row; a stage with a `samples` field sets it
    generator_name: str = ""  # the `generator` column; "" = the teacher's model

    def format_input(self, record: Record) -> list[Message] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement format_input()")

    def parse_output(
        self, text: str, row: Record, response: GenerationResponse
    ) -> dict[str, Any] | Drop:
        raise NotImplementedError(f"{type(self).__name__} must implement parse_output()")

    def new_row(
        self, ctx: RunContext, record: Record, k: int, generator: str, response: GenerationResponse
    ) -> Record:
        raise NotImplementedError(f"{type(self).__name__} must implement new_row()")

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens)

    def samples_for(self, record: Record) -> int:
        return self.samples

    def asked(self, records: list[Record]) -> list[Record]:
        return records

    def kept_inputs(self, records: list[Record]) -> list[Record]:
        return []

    def prepare(self, ctx: RunContext) -> None:
        """Per `process` call, before any `format_input` (templates relative to the recipe)."""

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        teacher = ctx.teacher(self.teacher)
        self.prepare(ctx)
        plan: list[tuple[Record, int, list[Message]]] = []
        for record in self.asked(records):
            messages = self.format_input(record)
            if messages is not None:
                plan += [(record, k, messages) for k in range(self.samples_for(record))]
        sampling = self.sampling()
        requests = [
            GenerationRequest.build(messages, sampling, sample_index=k, seed=ctx.seed)
            for _, k, messages in plan
        ]
        responses = await teacher.generate(requests)
        generator = self.generator_name or teacher.backend.model
        result = StageResult(kept=self.kept_inputs(records))
        for (record, k, _), response in zip(plan, responses, strict=True):
            row = self.new_row(ctx, record, k, generator, response)
            if response.error is not None:
                fail(self.stage_type, row, f"request_failed: {response.error}", result)
                continue
            parsed = self.parse_output(response.text, row, response)
            if isinstance(parsed, Drop):
                row.output, row.generator = response.text, generator
                reject(self.stage_type, row, parsed.reason, result)
                continue
            for column, value in parsed.items():
                set_column(row, column, value)
            result.kept.append(row)
        return result


def set_column(record: Record, column: str, value: Any) -> None:
    """`output` -> the field; `meta.KEY` / `scores.KEY` -> that entry (names as in `provides`)."""
    where, _, key = column.partition(".")
    if key and where in ("meta", "scores"):
        getattr(record, where)[key] = value
    else:
        setattr(record, column, value)
