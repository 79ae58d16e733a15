"""`generators.reasoning_off_pair`: a reasoning-off answer for prompts that have a reasoning-on one.

To teach the `detailed thinking on/off` toggle, the paper pairs prompts: each sampled prompt of
the reasoning blends gets a reasoning response and a non-reasoning one (arXiv 2505.00949 §3.2;
off answers from Llama-3.1-Nemotron-70B-Instruct for general prompts and Llama-3.3-70B-Instruct
for the others — two stages with two teachers, one per category, do that here).

Reads `input`, `reasoning`, `output`; writes new rows with `output`, `reasoning` "off",
`system_prompt` "detailed thinking off", `generator`, and in `meta` `pair_id` (the id of the
reasoning-on row it pairs with), `problem_id` and `finish_reason`. The paired on row gets
`meta["pair_id"]` too (the off rows' ids, comma-separated). Every input row is kept as it was;
the off rows are added after them. Rows with reasoning off pass through untouched.

Place it after the filters of the reasoning-on answers, so only prompts whose on answer survived
are paired, and follow it with the filters that suit off answers (they see both kinds).

    stages:
      - {type: generators.multi_sample, teacher: reasoner, samples_on: 4}
      - {type: filters.boxed_answer}
      - {type: filters.math_verify}
      - {type: generators.reasoning_off_pair, teacher: chat}   # + 1 off row per prompt

Reasons: `off_empty` (nothing left after stripping), `off_has_think` (a `<think>` tag in an
answer that must not reason), `off_truncated` (hit max_tokens; opt out with drop_truncated);
`request_failed: ...` rows go to the failed split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from curation.generation import GenerationResponse
from curation.record import THINKING_OFF, Record, record_id, stable_hash
from curation.registry import register_stage
from curation.stage import Drop, LLMStage, StageResult

if TYPE_CHECKING:
    from curation.context import RunContext


def in_subset(key: str, fraction: float, salt: str) -> bool:
    """A deterministic coin flip per key: True for about `fraction` of all keys."""
    if fraction >= 1.0:
        return True
    return int(stable_hash(salt, key), 16) / 16**16 < fraction


def format_input(record: Record) -> list[dict[str, str]]:
    """The same prompt turns, behind the reasoning-off system prompt."""
    return [{"role": "system", "content": THINKING_OFF}, *record.input]


def parse_output(text: str, finish_reason: str, drop_truncated: bool = True) -> str | Drop:
    """The off answer, or why it cannot be one."""
    answer = text.strip()
    if drop_truncated and finish_reason == "length":
        return Drop("off_truncated")
    if not answer:
        return Drop("off_empty")
    if "<think>" in answer or "</think>" in answer:
        return Drop("off_has_think")
    return answer


@register_stage("generators.reasoning_off_pair")
@dataclass
class ReasoningOffPair(LLMStage):
    """Adds `samples` reasoning-off rows per prompt with a kept reasoning-on row (module doc)."""

    teacher: str = "chat"  # the non-reasoning teacher (§3.2: Llama-3.x-70B-Instruct)
    fraction: float = 1.0  # share of prompts paired, chosen by a hash of the prompt (§3.2 samples)
    per_prompt: bool = True  # one pair per distinct prompt, not per reasoning-on sample
    samples: int = 1  # off answers per paired prompt
    temperature: float = 0.0  # greedy: the LN model cards' setting for reasoning off
    top_p: float = 1.0
    max_tokens: int = 512
    drop_truncated: bool = True  # reject off answers that hit max_tokens
    # meta keys of the on row that describe its answer, not its prompt: not copied to off rows
    reset_meta: list[str] = field(default_factory=lambda: ["answer", "sample", "finish_reason"])
    generator_name: str = ""  # the `generator` column; default: the teacher's model

    kind: ClassVar[str] = "generate"
    requires: ClassVar[tuple[str, ...]] = ("input", "reasoning")
    provides: ClassVar[tuple[str, ...]] = (
        "output",
        "system_prompt",
        "generator",
        "meta.pair_id",
        "meta.problem_id",
        "meta.finish_reason",
    )

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 with temperature 0 gives identical answers; raise both")
        self.sampling()  # SamplingParams checks the ranges

    def pairs(self, records: list[Record]) -> list[Record]:
        """The reasoning-on rows to pair: one per prompt (smallest id) or all, within `fraction`."""
        chosen: dict[str, Record] = {}
        for record in records:
            if record.reasoning != "on":
                continue
            prompt_key = record.meta.get("problem_id") or stable_hash(record.input)
            key = prompt_key if self.per_prompt else record.id
            if not in_subset(prompt_key, self.fraction, self.stage_type):
                continue
            if key not in chosen or record.id < chosen[key].id:
                chosen[key] = record
        return sorted(chosen.values(), key=lambda r: r.id)

    def asked(self, records: list[Record]) -> list[Record]:
        return self.pairs(records)

    def kept_inputs(self, records: list[Record]) -> list[Record]:
        return list(records)  # every input row stays; the off rows come after them

    def format_input(self, record: Record) -> list[dict[str, str]]:
        return format_input(record)

    def parse_output(self, text: str, row: Record, response: GenerationResponse) -> dict | Drop:
        answer = parse_output(text, response.finish_reason, self.drop_truncated)
        return answer if isinstance(answer, Drop) else {"output": answer}

    def new_row(
        self, ctx: RunContext, record: Record, k: int, generator: str, response: GenerationResponse
    ) -> Record:
        meta = {key: value for key, value in record.meta.items() if key not in self.reset_meta}
        meta.update(
            pair_id=record.id,
            problem_id=record.meta.get("problem_id", record.id),
            finish_reason=response.finish_reason,
        )
        return replace(
            record,
            id=record_id(
                ctx.dataset, record.source_id, record.input, generator, f"pair-off{k}:{record.id}"
            ),
            output="",
            reasoning="off",
            system_prompt=THINKING_OFF,
            generator=generator,
            scores={},
            used_in_training=[],
            meta=meta,
            stage=None,
            reason=None,
        )

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        result = await super().process(records, ctx)
        partners: dict[str, list[str]] = {}
        for off in result.kept[len(records) :]:
            partners.setdefault(off.meta["pair_id"], []).append(off.id)
        for record in records:
            if record.id in partners:
                record.meta["pair_id"] = ",".join(partners[record.id])
        return result

    def sampling_summary(self) -> dict[str, object]:
        return {"teacher": self.teacher, "samples": self.samples, **self.sampling().as_dict()}
