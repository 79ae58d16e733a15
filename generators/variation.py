"""`generators.question_variation`: k new problems written from each problem, OpenMathInstruct-2 style.

arXiv 2505.00949 §3.1.3 augments the science questions by prompting Qwen2.5 for variations of
the originals, following the OpenMathInstruct-2 pipeline (arXiv 2410.01560: an LLM writes a new
problem inspired by a seed problem, with other numbers or another setting, and keeps it solvable).

Reads `input`; writes new rows whose `input` is the new problem, with `output` empty (a later
stage answers them) and, in `meta`, `parent_id` (the row it was written from), `variant`,
`variation_generator`, `answer_source` and `finish_reason`. Parents are kept (`keep_parent`).

Expected answers. A variant is a new problem, so the parent's gold answer does not carry over.
The template asks the teacher to end with `Answer: ...`; when `trust_teacher_answer` is on and
that line parses (a `\\boxed{}` inside it is unwrapped), the answer becomes `expected_answer`
and `meta["answer_source"]` says `teacher_unverified`. Otherwise `expected_answer` is empty and
`answer_source` is `none`: check such rows by majority vote over several solutions, as the
paper does for questions without a gold answer (§3.1.3).

    stages:
      - {type: generators.question_variation, teacher: writer, variants: 4}
      - {type: generators.multi_sample, teacher: reasoner, samples_on: 4}

Reasons: `variation_unparsed` (no `New problem:` line), `variation_empty`,
`variation_same_as_parent`, `variation_truncated` (hit max_tokens); failed requests go to the
failed split as `request_failed: ...`. Rejected rows keep the raw text in `output`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from curation.generation import GenerationResponse
from curation.record import Record, record_id
from curation.registry import register_stage
from curation.stage import Drop, LLMStage
from generators.templates import conversation_text, load_template

if TYPE_CHECKING:
    from curation.context import RunContext

TEMPLATE_FIELDS = ("problem",)

_MARKER = re.compile(r"(?im)^[ \t]*[*#]*[ \t]*(?:new[ \t]+)?problem[ \t]*\**[ \t]*:[ \t]*\**")
_ANSWER = re.compile(r"(?im)^[ \t]*\**[ \t]*(?:final[ \t]+)?answer[ \t]*\**[ \t]*:\**")
_SOLUTION = re.compile(r"(?im)^[ \t]*\**[ \t]*solution[ \t]*\**[ \t]*:")
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")


@dataclass(frozen=True, slots=True)
class Variant:
    problem: str
    answer: str | None  # the teacher's answer, unverified; None when it gave none


def _clean_answer(text: str) -> str | None:
    text = text.strip()
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1].strip()
    text = text.splitlines()[0].strip() if text else ""
    text = text.strip("$ ").rstrip(".").strip()
    return None if not text or _PLACEHOLDER.match(text) else text


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def parse_output(
    text: str, parent_problem: str, finish_reason: str = "stop", drop_truncated: bool = True
) -> Variant | Drop:
    """`New problem: ... Answer: ...` -> a Variant, or the reason the text is unusable."""
    if drop_truncated and finish_reason == "length":
        return Drop("variation_truncated")
    markers = list(_MARKER.finditer(text))
    if not markers:
        return Drop("variation_unparsed")
    body = text[markers[-1].end() :]
    answer = None
    end = _ANSWER.search(body)
    if end is not None:
        answer = _clean_answer(body[end.end() :])
        body = body[: end.start()]
    solution = _SOLUTION.search(body)
    if solution is not None:
        body = body[: solution.start()]
    problem = body.strip().strip("*").strip()
    if not problem or _PLACEHOLDER.match(problem):
        return Drop("variation_empty")
    if _norm(problem) == _norm(parent_problem):
        return Drop("variation_same_as_parent")
    return Variant(problem, answer)


@register_stage("generators.question_variation")
@dataclass
class QuestionVariation(LLMStage):
    """`variants` new problems per row, each linked to its parent; see the module docstring."""

    teacher: str = "writer"  # §3.1.3: Qwen2.5 wrote the variations
    variants: int = 4  # new problems asked per row (not given in the paper)
    temperature: float = 0.8  # diverse variants (not given in the paper)
    top_p: float = 0.95
    max_tokens: int = 512
    keep_parent: bool = True  # the paper augments: originals stay in the blend
    trust_teacher_answer: bool = True  # a parsed `Answer:` line becomes expected_answer
    drop_truncated: bool = True  # reject variants whose request hit max_tokens
    carry_meta: list[str] = field(default_factory=lambda: ["topic", "subtopic", "difficulty"])
    template: str = "variation"  # a shipped template name or a file next to the recipe

    kind: ClassVar[str] = "generate"
    requires: ClassVar[tuple[str, ...]] = ("input",)
    provides: ClassVar[tuple[str, ...]] = (
        "meta.parent_id",
        "meta.variant",
        "meta.variation_generator",
        "meta.answer_source",
        "meta.finish_reason",
    )

    def __post_init__(self) -> None:
        if self.variants < 1:
            raise ValueError(f"variants must be >= 1, got {self.variants}")
        if self.variants > 1 and self.temperature == 0:
            raise ValueError("variants > 1 with temperature 0 gives identical variants")
        if not 0 <= self.temperature <= 5 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError("need 0 <= temperature <= 5, 0 < top_p <= 1 and max_tokens >= 1")
        if "/" not in self.template and not Path(self.template).suffix:
            load_template(self.template, TEMPLATE_FIELDS)

    def samples_for(self, record: Record) -> int:
        return self.variants

    def kept_inputs(self, records: list[Record]) -> list[Record]:
        return list(records) if self.keep_parent else []

    def prepare(self, ctx: RunContext) -> None:
        self._template = load_template(self.template, TEMPLATE_FIELDS, ctx.base_dir)

    def format_input(self, record: Record) -> list[dict[str, str]]:
        return [{"role": "user", "content": self._template.render(problem=problem_text(record))}]

    def parse_output(self, text: str, row: Record, response: GenerationResponse) -> dict | Drop:
        parsed = parse_output(text, problem_text(row), response.finish_reason, self.drop_truncated)
        if isinstance(parsed, Drop):
            return parsed
        columns: dict[str, object] = {"input": [{"role": "user", "content": parsed.problem}]}
        if self.trust_teacher_answer and parsed.answer is not None:
            columns.update(
                {"expected_answer": parsed.answer, "meta.answer_source": "teacher_unverified"}
            )
        return columns

    def new_row(
        self, ctx: RunContext, record: Record, k: int, generator: str, response: GenerationResponse
    ) -> Record:
        source_id = f"{record.source_id or record.id}~v{k}"
        meta = {key: record.meta[key] for key in self.carry_meta if key in record.meta}
        meta.update(
            parent_id=record.id,
            variant=str(k),
            variation_generator=generator,
            answer_source="none",
            finish_reason=response.finish_reason,
        )
        return Record(
            id=record_id(ctx.dataset, source_id, record.input, generator, k),
            input=list(record.input),
            category=record.category,
            license=record.license,
            source=record.source,
            source_id=source_id,
            meta=meta,
        )

    def sampling_summary(self) -> dict[str, object]:
        return {"teacher": self.teacher, "variants": self.variants, **self.sampling().as_dict()}


def problem_text(record: Record) -> str:
    return conversation_text(record.input)
