"""Synthetic multiple-choice questions from a topic x subtopic x difficulty grid.

arXiv 2505.00949 §3.1.3 (science): academic topics and their subtopics were listed first
(with Nemotron-4-340B-Instruct), several difficulty levels were set, and Qwen2.5 models wrote
MCQs conditioned on (topic, subtopic, difficulty); every question was checked for format. Two
parts here, so each does one job:

- the source `generators.mcq_grid` yields one row per grid cell (the grid comes from recipe
  parameters or a YAML/JSON file); a cell row only carries `meta.topic/subtopic/difficulty`;
- the stage `generators.mcq_synth` asks a teacher for `samples` new questions per cell row and
  turns each parseable, valid answer into a new prompt row. It works after any source whose
  rows provide those three meta keys.

    sources:
      - {type: generators.mcq_grid, grid_file: science_grid.yaml}   # or topics: {...}
    stages:
      - {type: generators.mcq_synth, teacher: writer, samples: 4}
      - {type: generators.multi_sample, teacher: reasoner, samples_on: 4}   # then solve them

A grid file: `{topics: {physics: [optics, mechanics], biology: [genetics]},
difficulties: [high school, graduate]}`.

Rows written: `input` = the question and its options ("A) ..." one per line), `expected_answer`
= the letter, `output` empty (solutions come from a later stage), `category` science, and in
`meta` topic, subtopic, difficulty, `cell_id`, `sample`, `question_generator`, `finish_reason`.
Rejected rows keep the teacher's raw text in `output`. Reasons: `mcq_unparsed` (no question or
no options), `mcq_bad_options` (wrong count, empty or duplicate options), `mcq_missing_answer`,
`mcq_answer_not_in_options`; failed requests go to the failed split as `request_failed: ...`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from curation.generation import GenerationResponse
from curation.record import Record, record_id, stable_hash
from curation.registry import register_stage
from curation.sources import SourceError
from curation.stage import Drop, LLMStage, Source
from generators.templates import PromptTemplate, load_template

if TYPE_CHECKING:
    from curation.context import RunContext

LETTERS = "ABCDEFGHIJ"
TEMPLATE_FIELDS = ("topic", "subtopic", "difficulty", "options", "last_letter")

# A small default grid; real runs list many more (the paper had an LLM enumerate them).
DEFAULT_TOPICS = {
    "physics": ["mechanics", "electromagnetism", "thermodynamics"],
    "chemistry": ["stoichiometry", "acids and bases", "chemical bonding"],
    "biology": ["genetics", "cell biology", "ecology"],
}
DEFAULT_DIFFICULTIES = ["high school", "undergraduate", "graduate"]


# ---------------------------------------------------------------- the grid source


@register_stage("generators.mcq_grid")
@dataclass
class McqGrid(Source):
    """One row per (topic, subtopic, difficulty) cell, for `generators.mcq_synth` to fill."""

    topics: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    difficulties: list[str] = field(default_factory=lambda: list(DEFAULT_DIFFICULTIES))
    grid_file: str = ""  # a YAML/JSON file {topics: {...}, difficulties: [...]}; replaces both
    category: str = "science"  # §3.1.3
    license: str = ""

    provides: ClassVar[tuple[str, ...]] = ("meta.topic", "meta.subtopic", "meta.difficulty")

    def __post_init__(self) -> None:
        if not self.grid_file:
            check_grid(self.topics, self.difficulties, "generators.mcq_grid")

    def cells(self, base_dir: Path) -> list[tuple[str, str, str]]:
        topics, difficulties = self.topics, self.difficulties
        if self.grid_file:
            topics, difficulties = read_grid(base_dir / self.grid_file)
        return [(t, s, d) for t, subs in topics.items() for s in subs for d in difficulties]

    def read(self, ctx: RunContext) -> Iterator[Record]:
        for topic, subtopic, difficulty in self.cells(ctx.base_dir):
            cell_id = f"{topic}/{subtopic}/{difficulty}"
            turns = [{"role": "user", "content": f"MCQ grid cell: {cell_id}"}]
            yield Record(
                id=record_id(ctx.dataset, cell_id, turns),
                input=turns,
                category=self.category,
                license=self.license,
                source="mcq_grid",
                source_id=cell_id,
                meta={"topic": topic, "subtopic": subtopic, "difficulty": difficulty},
            )


def check_grid(topics: Any, difficulties: Any, where: str) -> None:
    if not isinstance(topics, dict) or not topics:
        raise ValueError(f"{where}: topics must be a non-empty mapping topic -> [subtopics]")
    for topic, subs in topics.items():
        if not isinstance(subs, list) or not subs or not all(isinstance(s, str) for s in subs):
            raise ValueError(f"{where}: topics.{topic}: expected a non-empty list of subtopics")
    if not isinstance(difficulties, list) or not difficulties:
        raise ValueError(f"{where}: difficulties must be a non-empty list, e.g. [easy, hard]")


def read_grid(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    if not path.is_file():
        raise SourceError(f"{path}: grid file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: invalid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a mapping with keys topics and difficulties")
    topics, difficulties = data.get("topics"), data.get("difficulties", DEFAULT_DIFFICULTIES)
    try:
        check_grid(topics, difficulties, str(path))
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    return topics, [str(d) for d in difficulties]


# ---------------------------------------------------------------- parsing

_OPTION = re.compile(r"^\s*(?:[-*]\s*)?\(?\**([A-J])\**[).:]\**\s*(.*?)\s*$")
_INLINE_OPTION = re.compile(r"(?:^|\s)\(?([A-J])\)\s+")
_ANSWER = re.compile(r"(?i:answer)\s*(?i:is)?\s*\**\s*[:\-]?\s*\**\s*\(?([A-J])\)?(?![A-Za-z0-9])")
_QUESTION_LABEL = re.compile(r"^\s*\**(?i:question)\**\s*(?:\d+)?\s*[:.]\**\s*")


@dataclass(frozen=True, slots=True)
class Mcq:
    question: str
    options: list[str]
    answer: str  # a letter

    def prompt(self) -> str:
        lines = [f"{LETTERS[i]}) {text}" for i, text in enumerate(self.options)]
        return f"{self.question}\n\n" + "\n".join(lines)


def _option_block(lines: list[str]) -> tuple[int, list[str], int] | None:
    """(first line, option texts, line after the block) of the block starting at `A)`."""
    for start, line in enumerate(lines):
        match = _OPTION.match(line)
        if not match or match.group(1) != "A":
            continue
        options, end = [match.group(2)], start + 1
        while end < len(lines):
            nxt = _OPTION.match(lines[end])
            if nxt and nxt.group(1) == LETTERS[len(options)]:
                options.append(nxt.group(2))
            elif lines[end].strip():
                break
            end += 1
        return start, options, end
    return None


def _inline_options(lines: list[str]) -> tuple[int, str, list[str]] | None:
    """`Which is largest? A) 3 B) 9 C) 1 D) 4` on one line -> (line, question, options)."""
    for i, line in enumerate(lines):
        parts = _INLINE_OPTION.split(line)
        letters = parts[1::2]
        if len(letters) >= 2 and "".join(letters) == LETTERS[: len(letters)]:
            return i, parts[0].strip(), [p.strip() for p in parts[2::2]]
    return None


def _question(lines: list[str]) -> str:
    """The labelled question, else the last paragraph (a chatty preamble comes before it)."""
    for i, line in enumerate(lines):
        if _QUESTION_LABEL.match(line):
            first = _QUESTION_LABEL.sub("", line, count=1)
            return "\n".join([first, *lines[i + 1 :]]).strip()
    text = "\n".join(lines).strip()
    return re.split(r"\n\s*\n", text)[-1].strip() if text else ""


def _norm(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".")


def parse_output(text: str, options: int = 4) -> Mcq | Drop:
    """A teacher's MCQ -> (question, options, answer letter), or the reason it is unusable."""
    lines = text.strip().splitlines()
    block = _option_block(lines)
    if block is not None:
        start, found, end = block
        question = _question(lines[:start])
    else:
        inline = _inline_options(lines)
        if inline is None:
            return Drop("mcq_unparsed")
        start, head, found = inline
        question = _question([*lines[:start], head])
        end = start + 1
    if not question:
        return Drop("mcq_unparsed")
    if len(found) != options:
        return Drop(f"mcq_bad_options: expected {options} options, got {len(found)}")
    for i, option in enumerate(found):
        if not option:
            return Drop(f"mcq_bad_options: option {LETTERS[i]} is empty")
        for j in range(i):
            if _norm(option) == _norm(found[j]):
                return Drop(f"mcq_bad_options: options {LETTERS[j]} and {LETTERS[i]} are the same")
    answers = _ANSWER.findall("\n".join(lines[end:])) or _ANSWER.findall(text)
    if not answers:
        return Drop("mcq_missing_answer")
    if answers[-1] not in LETTERS[:options]:
        return Drop(f"mcq_answer_not_in_options: {answers[-1]}")
    return Mcq(question, found, answers[-1])


def shuffled(mcq: Mcq, key: str) -> Mcq:
    """The same question with its options in a deterministic order drawn from `key`."""
    order = list(range(len(mcq.options)))
    random.Random(int(stable_hash("mcq_shuffle", key), 16)).shuffle(order)
    answer = LETTERS[order.index(LETTERS.index(mcq.answer))]
    return Mcq(mcq.question, [mcq.options[i] for i in order], answer)


# ---------------------------------------------------------------- the stage


@register_stage("generators.mcq_synth")
@dataclass
class McqSynth(LLMStage):
    """`samples` new MCQs per grid-cell row; see the module docstring for columns and reasons."""

    teacher: str = "writer"  # §3.1.3: Qwen2.5 models wrote the questions
    samples: int = 4  # questions asked per cell (not given in the paper)
    options: int = 4  # options per question (GPQA-style A-D; MMLU-Pro uses 10)
    temperature: float = 0.8  # varied questions per cell (not given in the paper)
    top_p: float = 0.95
    max_tokens: int = 512
    shuffle_options: bool = False  # reorder options by row id (teachers favour early letters)
    template: str = "mcq_synth"  # a shipped template name or a file next to the recipe
    category: str = "science"  # §3.1.3

    kind: ClassVar[str] = "generate"
    requires: ClassVar[tuple[str, ...]] = ("meta.topic", "meta.subtopic", "meta.difficulty")
    provides: ClassVar[tuple[str, ...]] = (
        "meta.cell_id",
        "meta.sample",
        "meta.question_generator",
        "meta.finish_reason",
    )

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not 2 <= self.options <= len(LETTERS):
            raise ValueError(f"options must be in [2, {len(LETTERS)}], got {self.options}")
        if not 0 <= self.temperature <= 5 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError("need 0 <= temperature <= 5, 0 < top_p <= 1 and max_tokens >= 1")
        if "/" not in self.template and not Path(self.template).suffix:
            load_template(self.template, TEMPLATE_FIELDS, required=TEMPLATE_FIELDS[:3])

    def load_template(self, base_dir: Path | None = None) -> PromptTemplate:
        return load_template(self.template, TEMPLATE_FIELDS, base_dir, TEMPLATE_FIELDS[:3])

    def prepare(self, ctx: RunContext) -> None:
        self._template = self.load_template(ctx.base_dir)

    def format_input(self, record: Record) -> list[dict[str, str]]:
        text = self._template.render(
            topic=record.meta["topic"],
            subtopic=record.meta["subtopic"],
            difficulty=record.meta["difficulty"],
            options=str(self.options),
            last_letter=LETTERS[self.options - 1],
        )
        return [{"role": "user", "content": text}]

    def parse_output(self, text: str, row: Record, response: GenerationResponse) -> dict | Drop:
        parsed = parse_output(text, self.options)
        if isinstance(parsed, Drop):
            return parsed
        if self.shuffle_options:
            parsed = shuffled(parsed, row.id)
        return {
            "input": [{"role": "user", "content": parsed.prompt()}],
            "expected_answer": parsed.answer,
        }

    def new_row(
        self, ctx: RunContext, record: Record, k: int, generator: str, response: GenerationResponse
    ) -> Record:
        source_id = f"{record.source_id or record.id}#{k}"
        return replace(
            record,
            id=record_id(ctx.dataset, source_id, record.input, generator, k),
            input=list(record.input),
            output="",
            category=self.category,
            source_id=source_id,
            expected_answer=None,
            scores={},
            used_in_training=[],
            meta={
                **record.meta,
                "cell_id": record.source_id or record.id,
                "sample": str(k),
                "question_generator": generator,
                "finish_reason": response.finish_reason,
            },
        )

    def sampling_summary(self) -> dict[str, object]:
        return {"teacher": self.teacher, "samples": self.samples, **self.sampling().as_dict()}
