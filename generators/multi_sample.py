"""`generators.multi_sample`: several answers per prompt, with reasoning on and off.

Reads `input`; writes `output`, `reasoning`, `system_prompt`, `generator` and, in `meta`,
`problem_id`, `sample` and `finish_reason`. One input row becomes `samples_on + samples_off`
rows. A request that failed after its backend's retries becomes a row in the `failed` split
with the error as its reason, never a silent drop. An answer cut off at `max_tokens`
(`finish_reason: length`) is not a full answer: it goes to the `rejected` split as
`sample_truncated` with its raw text (opt out with `drop_truncated: false`).

The paper (arXiv 2505.00949 §3.1.1, after OpenMath Nemotron) drew 16 reasoning samples per math
problem from DeepSeek-R1 and 64 non-reasoning samples from Qwen2.5-Math-7B-Instruct; a recipe
with two teachers uses two of these stages, one per toggle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from curation.generation import GenerationRequest, SamplingParams
from curation.record import SYSTEM_PROMPTS, Record, record_id
from curation.registry import register_stage
from curation.stage import Stage, StageResult

if TYPE_CHECKING:
    from curation.context import RunContext


@register_stage("generators.multi_sample")
@dataclass
class MultiSample(Stage):
    teacher: str = "reasoner"  # a key of the recipe's `teachers`
    samples_on: int = 16  # reasoning samples per prompt (arXiv 2505.00949 §3.1.1: R1, 16)
    samples_off: int = 0  # non-reasoning samples per prompt (§3.1.1: Qwen2.5-Math, 64)
    temperature: float = 0.6  # §7.1 reasoning-on sampling
    top_p: float = 0.95  # §7.1
    max_tokens: int = 512
    generator_name: str = ""  # the `generator` column; default: the teacher's model
    drop_truncated: bool = True  # reject answers that hit max_tokens (finish_reason "length")

    kind: ClassVar[str] = "generate"
    requires: ClassVar[tuple[str, ...]] = ("input",)
    provides: ClassVar[tuple[str, ...]] = (
        "output",
        "reasoning",
        "system_prompt",
        "generator",
        "meta.problem_id",
        "meta.sample",
        "meta.finish_reason",
    )
    teacher_fields: ClassVar[tuple[str, ...]] = ("teacher",)

    def __post_init__(self) -> None:
        if self.samples_on < 0 or self.samples_off < 0 or self.samples_on + self.samples_off == 0:
            raise ValueError("samples_on and samples_off must be >= 0 and not both 0")
        self.sampling()  # SamplingParams checks the ranges

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens)

    def _plan(self, records: list[Record]) -> list[tuple[Record, str, int]]:
        return [
            (record, toggle, k)
            for record in records
            for toggle, count in (("on", self.samples_on), ("off", self.samples_off))
            for k in range(count)
        ]

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        teacher = ctx.teacher(self.teacher)
        plan = self._plan(records)
        sampling = self.sampling()
        requests = [
            GenerationRequest.build(
                [{"role": "system", "content": SYSTEM_PROMPTS[toggle]}, *record.input],
                sampling,
                sample_index=k,
                seed=ctx.seed,
            )
            for record, toggle, k in plan
        ]
        responses = await teacher.generate(requests)
        generator = self.generator_name or teacher.backend.model
        result = StageResult()
        for (record, toggle, k), response in zip(plan, responses, strict=True):
            row = replace(
                record,
                id=record_id(
                    ctx.dataset, record.source_id, record.input, generator, f"{toggle}{k}"
                ),
                output=response.text,
                reasoning=toggle,
                system_prompt=SYSTEM_PROMPTS[toggle],
                generator=generator,
                scores=dict(record.scores),
                meta={
                    **record.meta,
                    "problem_id": record.id,
                    "sample": str(k),
                    "finish_reason": response.finish_reason,
                },
            )
            if response.error is not None:
                row.stage, row.reason = self.stage_type, f"request_failed: {response.error}"
                result.failed.append(row)
            elif self.drop_truncated and response.finish_reason == "length":
                row.stage, row.reason = self.stage_type, "sample_truncated"
                result.rejected.append(row)
            else:
                result.kept.append(row)
        return result

    def sampling_summary(self) -> dict[str, object]:
        return {"teacher": self.teacher, **self.sampling().as_dict()}
