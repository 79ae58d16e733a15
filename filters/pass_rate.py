r"""`filters.pass_rate`: how often a teacher solves each prompt, for difficulty and curricula.

arXiv 2505.00949 §5 (RL for LN-Ultra): 8 responses per question from LN-Super, the pass rate
computed, and prompts with a pass rate of 0.75 or more discarded as too easy; the GRPO
curriculum then orders batches by pass rate. This stage runs on prompt rows (before or instead
of a generation stage), asks `teacher` for `samples` answers per prompt, verifies each and
writes the pass rate on the prompt row. It drops nothing unless `drop_above` / `drop_below`
are set:

    stages:
      - {type: filters.pass_rate, teacher: reasoner, samples: 8, drop_above: 0.75}

Verifiers: `math` (the boxed answer after `</think>` vs `expected_answer`, by math-verify),
`mcq` (the option letter vs `expected_answer`), `code` (the last Python block against
`meta["tests"]` / `meta["io_tests"]` in `filters.code_exec`'s sandbox), or `auto` (by
`meta["family"]`, else `category`). The requests are the ones `generators.multi_sample` makes
for the same teacher, toggle, sampling and sample index, so the two share the request cache.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from curation.generation import GenerationRequest, SamplingParams
from curation.record import SYSTEM_PROMPTS, Record
from curation.registry import register_stage
from curation.stage import Stage, StageResult, fail, reject
from filters.answers import extract_boxed, extract_mcq_letter, strip_think
from filters.code import CodeExec
from filters.math import compare_answers

if TYPE_CHECKING:
    from curation.context import RunContext

# meta["family"] or category -> verifier, for `verifier: auto`
AUTO_VERIFIER = {"math": "math", "mcq": "mcq", "science": "mcq", "code": "code"}


@register_stage("filters.pass_rate")
@dataclass
class PassRate(Stage):
    """Writes each prompt's pass rate over `samples` teacher answers; optionally drops by it.

    Reads `input`, `expected_answer` (math, mcq), `meta["tests"]` / `meta["io_tests"]` (code),
    `meta["family"]` / `category` (`verifier: auto`). Writes `scores["pass_rate"]`,
    `meta["pass_rate"]` (the same, as text), `meta["pass_rate_passed"]`, `meta["pass_rate_k"]`
    and `meta["pass_rate_verifier"]`. `drop_above` and `drop_below` are inclusive, so the
    paper's pre-filter is `drop_above: 0.75` and `drop_below: 0.0` drops never-solved prompts.

    Reasons: `pass_rate_too_high`, `pass_rate_too_low`, `pass_rate_no_verifier` (auto found no
    verifier for the row), `pass_rate_no_gold` (math/mcq without `expected_answer`). A request
    that failed after its backend's retries sends the prompt to the failed split
    (`request_failed: ...`), so the next build asks again instead of using a partial rate.

    Example: 8 samples, 3 with the right boxed answer -> scores["pass_rate"] = 0.375.
    """

    teacher: str = "reasoner"  # a key of the recipe's `teachers` (paper: LN-Super)
    samples: int = 8  # answers per prompt (arXiv 2505.00949 §5)
    reasoning: Literal["on", "off"] = "on"  # the system-prompt toggle of the samples
    temperature: float = 0.6  # §7.1 reasoning-on sampling
    top_p: float = 0.95  # §7.1
    max_tokens: int = 512
    verifier: Literal["auto", "math", "mcq", "code"] = "auto"  # how a sample is checked
    choices: str = "ABCD"  # MCQ option letters
    drop_above: float | None = None  # drop prompts with pass rate >= this (§5: 0.75)
    drop_below: float | None = None  # drop prompts with pass rate <= this (e.g. 0.0)
    code_time_limit_s: float = 4.0  # code verifier: wall clock per sandbox run

    kind: ClassVar[str] = "filter"
    requires: ClassVar[tuple[str, ...]] = ("input",)
    provides: ClassVar[tuple[str, ...]] = (
        "scores.pass_rate",
        "meta.pass_rate",
        "meta.pass_rate_passed",
        "meta.pass_rate_k",
        "meta.pass_rate_verifier",
    )
    teacher_fields: ClassVar[tuple[str, ...]] = ("teacher",)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"filters.pass_rate: samples must be >= 1, got {self.samples}")
        if self.reasoning not in SYSTEM_PROMPTS:
            raise ValueError(
                f"filters.pass_rate: reasoning must be on or off, got {self.reasoning!r}"
            )
        if self.verifier not in ("auto", "math", "mcq", "code"):
            raise ValueError(
                f"filters.pass_rate: verifier must be auto, math, mcq or code, got {self.verifier!r}"
            )
        for name in ("drop_above", "drop_below"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"filters.pass_rate: {name} must be in [0, 1], got {value}")
        if not 0 <= self.temperature <= 5 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError(
                "filters.pass_rate: temperature must be in [0, 5], top_p in (0, 1], max_tokens >= 1"
            )

    def verifier_for(self, record: Record) -> str | None:
        if self.verifier != "auto":
            return self.verifier
        return AUTO_VERIFIER.get(record.meta.get("family", "")) or AUTO_VERIFIER.get(
            record.category
        )

    def requests(self, record: Record, seed: int) -> list[GenerationRequest]:
        messages = [{"role": "system", "content": SYSTEM_PROMPTS[self.reasoning]}, *record.input]
        sampling = SamplingParams(self.temperature, self.top_p, self.max_tokens)
        return [GenerationRequest.build(messages, sampling, k, seed) for k in range(self.samples)]

    def check(self, text: str, record: Record, verifier: str) -> bool:
        """Whether one sample is right (math and mcq; code is checked in batches)."""
        answer = strip_think(text)
        gold = (record.expected_answer or "").strip()
        if verifier == "mcq":
            return extract_mcq_letter(answer, self.choices) == gold
        boxed = extract_boxed(answer)
        return bool(boxed) and compare_answers(boxed, gold) == "equal"

    async def _check_code(self, jobs: list[tuple[Record, list[str]]]) -> list[int]:
        """Passed samples per (prompt, sample texts), all sandbox runs in one batch."""
        runs = []
        for record, texts in jobs:
            for text in texts:
                run = replace(record, output=text, meta=dict(record.meta), scores={})
                run.meta.pop("code", None)  # the sample's own block, not a stale one
                runs.append(run)
        stage = CodeExec(min_pass_rate=1.0, time_limit_s=self.code_time_limit_s)
        result = await asyncio.to_thread(stage.judge, runs)
        kept = {id(r) for r in result.kept}
        return [
            sum(id(r) in kept for r in runs[i * self.samples : (i + 1) * self.samples])
            for i in range(len(jobs))
        ]

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        result = StageResult()
        todo: list[tuple[Record, str]] = []
        for record in records:
            verifier = self.verifier_for(record)
            if verifier is None:
                reject(self.stage_type, record, "pass_rate_no_verifier", result)
            elif verifier != "code" and not (record.expected_answer or "").strip():
                reject(self.stage_type, record, "pass_rate_no_gold", result)
            else:
                todo.append((record, verifier))
        requests = [q for record, _ in todo for q in self.requests(record, ctx.seed)]
        responses = await ctx.teacher(self.teacher).generate(requests) if requests else []
        code_jobs: list[tuple[Record, list[str]]] = []
        for i, (record, verifier) in enumerate(todo):
            answers = responses[i * self.samples : (i + 1) * self.samples]
            error = next((a.error for a in answers if a.error is not None), None)
            texts = [a.text for a in answers]
            if error is not None:
                fail(self.stage_type, record, f"request_failed: {error}", result)
            elif verifier == "code":
                code_jobs.append((record, texts))
            else:
                self._finish(
                    result, record, verifier, sum(self.check(t, record, verifier) for t in texts)
                )
        if code_jobs:
            for (record, _), passed in zip(
                code_jobs, await self._check_code(code_jobs), strict=True
            ):
                self._finish(result, record, "code", passed)
        return result

    def _finish(self, result: StageResult, record: Record, verifier: str, passed: int) -> None:
        rate = passed / self.samples
        record.scores["pass_rate"] = rate
        record.meta.update(
            pass_rate=f"{rate:.4g}",
            pass_rate_passed=str(passed),
            pass_rate_k=str(self.samples),
            pass_rate_verifier=verifier,
        )
        if self.drop_above is not None and rate >= self.drop_above:
            reject(self.stage_type, record, "pass_rate_too_high", result)
        elif self.drop_below is not None and rate <= self.drop_below:
            reject(self.stage_type, record, "pass_rate_too_low", result)
        else:
            result.kept.append(record)

    def sampling_summary(self) -> dict[str, object]:
        return {
            "teacher": self.teacher,
            "samples": self.samples,
            **SamplingParams(self.temperature, self.top_p, self.max_tokens).as_dict(),
        }


__all__ = ["AUTO_VERIFIER", "PassRate"]
