"""`generators.its`: Feedback -> Edit -> Select inference-time scaling for open-ended prompts.

arXiv 2505.00949 §3.2 (general-domain open-ended data): Llama-3.1-Nemotron-70B-Instruct writes
several first responses per prompt; a dedicated Feedback model says what to improve in each, a
dedicated Edit model revises each by its feedback, and a Select model picks the best edited
response (the method of "Dedicated Feedback and Edit Models Empower Inference-Time Scaling for
Open-Ended General-Domain Tasks", HelpSteer3, arXiv 2503.04378). Here each role is a teacher of
the recipe, so one model can play all four or each its own:

    teachers:
      chat: {backend: transformers, model: embedded}
    stages:
      - {type: generators.its, draft_teacher: chat, feedback_teacher: chat,
         edit_teacher: chat, select_teacher: chat, drafts: 4, subset: 0.25}

Flow per row chosen by `subset`/`every_nth` (a hash of the row id, so the choice is the same on
every run and shard): `drafts` drafts -> one feedback per draft -> one edit per draft ->
a score per edited draft from the judge (`select_teacher`, "Score: N" parsed tolerantly) or from
`reward`, a batch function `module:function(prompts, completions) -> list[float | None]`
(None = cannot judge). The highest score wins; ties go to the lower draft index. A draft whose
feedback or edit is missing or empty competes unedited (the trail says so). Rows outside the
subset get one draft, unchanged.

Reads `input`. Writes `output` (the winner), `reasoning` "off" and its `system_prompt` (§3.2:
these answers come from a non-reasoning model), `generator` (the edit teacher's model when the
winner was edited, else the draft teacher's), `scores["its_select"]` (the winner's score) and
in `meta`: `its_mode` (its | single), `its_winner` (draft index), `its_selector`
(judge:MODEL | reward:PATH) and `its_trail` — JSON with every draft, its feedback, its edit,
its score and the judge's raw text, so a reader can see why the answer won.

Reasons: `its_unjudged` (no candidate got a score), `its_empty` (no usable draft text);
`request_failed: ...` (every draft request failed) goes to the failed split.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from curation.generation import GenerationRequest, SamplingParams
from curation.record import THINKING_OFF, Record, record_id, stable_hash
from curation.registry import register_stage
from curation.stage import Stage, StageResult
from generators.templates import PromptTemplate, conversation_text, load_template

if TYPE_CHECKING:
    from curation.context import CachedTeacher, RunContext

Reward = Callable[..., list[float | None]]

# ---------------------------------------------------------------- parsing

_EDIT_MARKER = re.compile(
    r"(?im)^[ \t]*\**[ \t]*(?:edited|revised)[ \t]+response[ \t]*\**[ \t]*:\**"
)
_FEEDBACK_LABEL = re.compile(r"^\s*\**\s*feedback\s*\**\s*:\**\s*", re.IGNORECASE)
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_LABELLED = re.compile(
    rf"(?i:score|rating)(?:\s+(?i:of|is))?\W{{0,4}}{_NUMBER}(?:\s*(?:/|out of)\s*{_NUMBER})?"
)
_FRACTION = re.compile(rf"{_NUMBER}\s*(?:/|out of)\s*{_NUMBER}")
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")


def parse_feedback(text: str) -> str | None:
    """The critique without a leading `Feedback:` label; None when nothing is left."""
    feedback = _FEEDBACK_LABEL.sub("", text.strip(), count=1).strip()
    return feedback or None


def parse_edit(text: str) -> str | None:
    """The revised response: what follows the last `Edited response:` line, else all of it."""
    markers = list(_EDIT_MARKER.finditer(text))
    edited = (text[markers[-1].end() :] if markers else text).strip()
    return None if not edited or _PLACEHOLDER.match(edited) else edited


def parse_score(text: str, low: float = 1.0, high: float = 10.0) -> float | None:
    """A judge's score in [low, high]: the last `Score: N` (or `N/10`), else a bare number.

    `8/10` and `Rating: 4 out of 5` are rescaled to the judge's scale; a score outside it, or
    none at all, is None (the candidate is not judged rather than judged wrongly).
    """
    found = _LABELLED.findall(text) or _FRACTION.findall(text)
    if found:
        value, scale = found[-1]
    elif re.fullmatch(rf"\s*\**{_NUMBER}\**\.?\s*", text):
        value, scale = text.strip().strip("*.").strip(), ""
    else:
        return None
    score = float(value)
    if scale and float(scale) > 0 and float(scale) != high:
        score = score / float(scale) * high
    return score if low <= score <= high else None


# ---------------------------------------------------------------- the trail


@dataclass
class Candidate:
    """One draft's way through feedback, edit and selection; the trail is a list of these."""

    index: int
    draft: str = ""
    draft_finish: str = ""
    feedback: str | None = None
    edit: str | None = None
    score: float | None = None
    judge: str = ""  # the judge's raw text
    notes: list[str] = field(default_factory=list)  # what went wrong on the way

    @property
    def final(self) -> str:
        return self.edit if self.edit is not None else self.draft


def resolve_reward(path: str) -> Reward:
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"reward {path!r}: expected 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward {path!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ValueError(f"reward {path!r} is not a function")
    return fn


# ---------------------------------------------------------------- the stage


@register_stage("generators.its")
@dataclass
class FeedbackEditSelect(Stage):
    """Feedback -> Edit -> Select over `drafts` drafts per row; see the module docstring."""

    draft_teacher: str = "chat"  # §3.2: Llama-3.1-Nemotron-70B-Instruct
    feedback_teacher: str = "chat"  # a dedicated Feedback model (HelpSteer3)
    edit_teacher: str = "chat"  # a dedicated Edit model (HelpSteer3)
    select_teacher: str = "chat"  # the judge; unused when `reward` is set
    reward: str = ""  # "module:function" scoring (prompts, completions); replaces the judge
    drafts: int = 4  # first responses per prompt (the paper samples several; k is not given)
    subset: float = 1.0  # share of rows (by id hash) that get ITS; the rest get one draft
    every_nth: int = 0  # instead of subset: about one row in n (id hash mod n == 0)
    temperature: float = 0.7  # draft sampling, diverse drafts
    top_p: float = 0.95
    max_tokens: int = 1024
    helper_temperature: float = 0.0  # feedback, edit and judge: one deterministic pass each
    helper_max_tokens: int = 1024
    score_low: float = 1.0  # the judge's scale, as the select template states it
    score_high: float = 10.0
    feedback_template: str = "its_feedback"  # shipped names or files next to the recipe
    edit_template: str = "its_edit"
    select_template: str = "its_select"

    kind: ClassVar[str] = "generate"
    requires: ClassVar[tuple[str, ...]] = ("input",)
    provides: ClassVar[tuple[str, ...]] = (
        "output",
        "reasoning",
        "system_prompt",
        "generator",
        "scores.its_select",
        "meta.its_mode",
        "meta.its_winner",
        "meta.its_selector",
        "meta.its_trail",
    )
    teacher_fields: ClassVar[tuple[str, ...]] = (
        "draft_teacher",
        "feedback_teacher",
        "edit_teacher",
        "select_teacher",
    )

    def __post_init__(self) -> None:
        if self.drafts < 1:
            raise ValueError(f"drafts must be >= 1, got {self.drafts}")
        if self.drafts > 1 and self.temperature == 0:
            raise ValueError("drafts > 1 with temperature 0 gives identical drafts")
        if not 0 <= self.subset <= 1:
            raise ValueError(f"subset must be a fraction in [0, 1], got {self.subset}")
        if self.every_nth < 0 or (self.every_nth and self.subset != 1.0):
            raise ValueError("set either subset (a fraction) or every_nth (n >= 1), not both")
        if self.score_low >= self.score_high:
            raise ValueError("score_low must be below score_high")
        if not 0 <= self.temperature <= 5 or not 0 <= self.helper_temperature <= 5:
            raise ValueError("temperature and helper_temperature must be in [0, 5]")
        if not 0 < self.top_p <= 1 or self.max_tokens < 1 or self.helper_max_tokens < 1:
            raise ValueError("need 0 < top_p <= 1, max_tokens >= 1 and helper_max_tokens >= 1")
        if self.reward:
            resolve_reward(self.reward)  # fail at `thinkmix validate`, not mid-build
            self.teacher_fields = self.teacher_fields[:3]
        for name, fields in self._templates().items():
            if "/" not in name and not Path(name).suffix:
                load_template(name, fields)

    def _templates(self) -> dict[str, tuple[str, ...]]:
        return {
            self.feedback_template: ("prompt", "response"),
            self.edit_template: ("prompt", "response", "feedback"),
            self.select_template: ("prompt", "response"),
        }

    def selected(self, record: Record) -> bool:
        """Whether the row gets ITS: a deterministic function of its id."""
        draw = int(stable_hash(self.stage_type, record.id), 16)
        if self.every_nth:
            return draw % self.every_nth == 0
        return draw / 16**16 < self.subset

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens)

    def helper_sampling(self) -> SamplingParams:
        return SamplingParams(self.helper_temperature, 1.0, self.helper_max_tokens)

    # -------------------------------------------------------------- the four calls

    async def _drafts(
        self, ctx: RunContext, records: list[Record]
    ) -> tuple[dict[str, list[Candidate]], list[str]]:
        """Candidates per row id (empty drafts dropped) and the first error per failed row."""
        plan = [(r, j) for r in records for j in range(self.drafts if self.selected(r) else 1)]
        requests = [
            GenerationRequest.build(
                [{"role": "system", "content": THINKING_OFF}, *r.input],
                self.sampling(),
                sample_index=j,
                seed=ctx.seed,
            )
            for r, j in plan
        ]
        responses = await ctx.teacher(self.draft_teacher).generate(requests)
        candidates: dict[str, list[Candidate]] = {r.id: [] for r in records}
        errors: dict[str, str] = {}
        for (r, j), response in zip(plan, responses, strict=True):
            if response.error is not None:
                errors.setdefault(r.id, response.error)
                continue
            if response.text.strip():
                candidates[r.id].append(Candidate(j, response.text.strip(), response.finish_reason))
        return candidates, errors

    async def _ask(
        self,
        seed: int,
        teacher: CachedTeacher,
        template: PromptTemplate,
        jobs: list[tuple[Record, Candidate, dict[str, str]]],
    ) -> list[tuple[str | None, str | None]]:
        """(text, error) per job: one helper request per candidate."""
        requests = [
            GenerationRequest.build(
                [
                    {
                        "role": "user",
                        "content": template.render(prompt=conversation_text(r.input), **v),
                    }
                ],
                self.helper_sampling(),
                sample_index=c.index,
                seed=seed,
            )
            for r, c, v in jobs
        ]
        responses = await teacher.generate(requests)
        return [(None, x.error) if x.error else (x.text, None) for x in responses]

    async def _refine(
        self, ctx: RunContext, work: list[tuple[Record, Candidate]], templates: dict
    ) -> None:
        """Feedback, then edits, written into the candidates."""
        jobs = [(r, c, {"response": c.draft}) for r, c in work]
        answers = await self._ask(
            ctx.seed, ctx.teacher(self.feedback_teacher), templates["fb"], jobs
        )
        for (_, c), (text, error) in zip(work, answers, strict=True):
            c.feedback = parse_feedback(text) if text is not None else None
            if c.feedback is None:
                c.notes.append(f"feedback_failed: {error}" if error else "feedback_empty")
        to_edit = [(r, c) for r, c in work if c.feedback is not None]
        jobs = [(r, c, {"response": c.draft, "feedback": c.feedback or ""}) for r, c in to_edit]
        answers = await self._ask(ctx.seed, ctx.teacher(self.edit_teacher), templates["edit"], jobs)
        for (_, c), (text, error) in zip(to_edit, answers, strict=True):
            c.edit = parse_edit(text) if text is not None else None
            if c.edit is None:
                c.notes.append(f"edit_failed: {error}" if error else "edit_empty")

    async def _select(
        self, ctx: RunContext, work: list[tuple[Record, Candidate]], templates: dict
    ) -> None:
        """A score per candidate, from the judge teacher or the reward function."""
        if self.reward:
            fn = resolve_reward(self.reward)
            prompts = [r.input for r, _ in work]
            scores = await asyncio.to_thread(fn, prompts, [c.final for _, c in work])
            if len(scores) != len(work):
                raise ValueError(
                    f"reward {self.reward} returned {len(scores)} scores for {len(work)}"
                )
            for (_, c), score in zip(work, scores, strict=True):
                c.score = None if score is None else float(score)
            return
        jobs = [(r, c, {"response": c.final}) for r, c in work]
        answers = await self._ask(
            ctx.seed, ctx.teacher(self.select_teacher), templates["select"], jobs
        )
        for (_, c), (text, error) in zip(work, answers, strict=True):
            c.judge = text or ""
            c.score = parse_score(c.judge, self.score_low, self.score_high) if text else None
            if c.score is None:
                c.notes.append(f"judge_failed: {error}" if error else "judge_unparsed")

    # -------------------------------------------------------------- the stage

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        templates = {
            key: load_template(name, fields, ctx.base_dir)
            for key, (name, fields) in zip(
                ("fb", "edit", "select"), self._templates().items(), strict=True
            )
        }
        candidates, errors = await self._drafts(ctx, records)
        work = [(r, c) for r in records if self.selected(r) for c in candidates[r.id]]
        await self._refine(ctx, work, templates)
        await self._select(ctx, work, templates)
        return self._assemble(ctx, records, candidates, errors)

    def _assemble(
        self,
        ctx: RunContext,
        records: list[Record],
        candidates: dict[str, list[Candidate]],
        errors: dict[str, str],
    ) -> StageResult:
        draft_model = ctx.teacher(self.draft_teacher).backend.model
        edit_model = ctx.teacher(self.edit_teacher).backend.model
        selector = (
            f"reward:{self.reward}"
            if self.reward
            else (f"judge:{ctx.teacher(self.select_teacher).backend.model}")
        )
        result = StageResult()
        for record in records:
            its = self.selected(record)
            row = replace(
                record,
                id=record_id(ctx.dataset, record.source_id, record.input, draft_model, "its-off"),
                reasoning="off",
                system_prompt=THINKING_OFF,
                generator=draft_model,
                scores=dict(record.scores),
                meta={**record.meta, "its_mode": "its" if its else "single"},
            )
            found = candidates[record.id]
            if not found and record.id in errors:
                row.stage, row.reason = self.stage_type, f"request_failed: {errors[record.id]}"
                result.failed.append(row)
            elif not found:
                row.stage, row.reason = self.stage_type, "its_empty"
                result.rejected.append(row)
            elif not its:
                row.output = found[0].draft
                result.kept.append(row)
            else:
                self._pick(row, found, selector, edit_model, result)
        return result

    def _pick(
        self,
        row: Record,
        found: list[Candidate],
        selector: str,
        edit_model: str,
        result: StageResult,
    ) -> None:
        scored = [c for c in found if c.score is not None]
        winner = max(scored, key=lambda c: (c.score, -c.index)) if scored else None
        row.meta["its_selector"] = selector
        row.meta["its_trail"] = json.dumps(
            {
                "selector": selector,
                "winner": None if winner is None else winner.index,
                "candidates": [asdict(c) for c in found],
            },
            ensure_ascii=False,
        )
        if winner is None:
            row.output = found[0].final
            row.stage, row.reason = self.stage_type, "its_unjudged"
            result.rejected.append(row)
            return
        row.output = winner.final
        row.generator = edit_model if winner.edit is not None else row.generator
        row.scores["its_select"] = float(winner.score)  # type: ignore[arg-type]
        row.meta["its_winner"] = str(winner.index)
        result.kept.append(row)

    def sampling_summary(self) -> dict[str, object]:
        return {
            "teachers": {
                role: getattr(self, f"{role}_teacher")
                for role in ("draft", "feedback", "edit", "select")
            },
            "selector": f"reward:{self.reward}" if self.reward else "judge",
            "drafts": self.drafts,
            "subset": self.subset,
            "every_nth": self.every_nth,
            "draft_sampling": self.sampling().as_dict(),
            "helper_sampling": self.helper_sampling().as_dict(),
        }
