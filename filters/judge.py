r"""`filters.math_judge`: math equivalence by math-verify first, an LLM judge where it cannot decide.

arXiv 2505.00949 §3.1.1 removes wrong math answers with an LLM judge (Qwen2.5-32B-Instruct)
that compares the final answer with the gold. Symbolic checking is cheaper and exact where it
parses, so it goes first; the judge sees what it cannot parse (`mode: fallback`) or every row
(`mode: always`, to double-check math-verify or to audit it with `judge_agreement`).

    teachers:
      judge: {backend: openai, base_url: http://127.0.0.1:8000/v1, model: Qwen/Qwen2.5-32B-Instruct}
    stages:
      - {type: filters.boxed_answer}
      - {type: filters.math_judge, judge: judge, mode: fallback}

The judge's prompt is a template in `filters/prompts/` (`template: math_judge`) or any `.txt`
file with `{problem}`, `{expected_answer}` and `{predicted_answer}`; its reply is read by
`parse_verdict`, which tolerates chatter ("Judgement: Yes", "**YES**", "The answers are
equivalent."). Judge requests go through the cached teacher, so a rerun asks nothing twice, and
identical (problem, gold, answer) triples in one batch are asked once.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from curation.generation import GenerationRequest, SamplingParams
from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Stage, StageResult, fail, reject
from filters.answers import strip_think
from filters.math import compare_answers

if TYPE_CHECKING:
    from curation.context import RunContext

PROMPTS = Path(__file__).parent / "prompts"
PLACEHOLDERS = ("{problem}", "{expected_answer}", "{predicted_answer}")

# ------------------------------------------------------------------ verdict parsing

_MARKUP = re.compile(r"[*_`#>\[\]()\"]")
_LABELLED = re.compile(
    r"\b(?:final\s+)?(?:judge?ment|verdict|decision|answer|equivalent|same)\s*[:：=-]\s*(yes|no|true|false|correct|incorrect)\b",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_NEGATIVE = re.compile(
    r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+){0,2}?(?:equivalent|the\s+same|equal|identical|match(?:ing)?)\b"
    r"|\b(?:inequivalent|non-equivalent|different|differ|mismatch|incorrect)\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(?:equivalent|the\s+same|equal|identical|match(?:es)?|correct)\b", re.IGNORECASE
)
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_TRUTHY = {"yes", "true", "correct"}


def parse_verdict(text: str) -> bool | None:
    """The judge's verdict: True (equivalent), False (different), or None (cannot tell).

    Tried in order, on the text after any `</think>` with markdown markers removed:
    1. the last labelled verdict: "Judgement: Yes", "**Verdict:** no", "Equivalent: yes";
    2. a reply that starts with yes/no: "YES", "No, 5 is not 6.";
    3. a negated comparison: "The answers are not equivalent.", "They differ.";
    4. an affirmed one: "The answers are equivalent.", "Both are the same.";
    5. a lone yes or no anywhere (both present, or neither: None).
    """
    reply = _MARKUP.sub(" ", strip_think(text)).strip()
    if not reply:
        return None
    labelled = _LABELLED.findall(reply)
    if labelled:
        return labelled[-1].lower() in _TRUTHY
    leading = _LEADING.match(reply)
    if leading:
        return leading.group(1).lower() == "yes"
    if _NEGATIVE.search(reply):
        return False
    if _POSITIVE.search(reply):
        return True
    words = {w.lower() for w in _WORD.findall(reply)}
    return words.pop() == "yes" if len(words) == 1 else None


# ------------------------------------------------------------------ templates


def load_template(template: str) -> str:
    """A template by name (`math_judge` -> filters/prompts/math_judge.txt) or a `.txt` path."""
    path = Path(template) if template.endswith(".txt") else PROMPTS / f"{template}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS.glob("*.txt")))
        raise ValueError(
            f"filters.math_judge: template {template!r} not found ({path}); use one of "
            f"{known} or a path to a .txt file"
        )
    text = path.read_text(encoding="utf-8")
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise ValueError(
            f"filters.math_judge: template {path} lacks {', '.join(missing)}; "
            "write literal braces as {{ and }}"
        )
    return text


def problem_text(record: Record) -> str:
    """The problem as the user asked it: the user turns, joined."""
    return "\n\n".join(m["content"] for m in record.input if m.get("role") == "user")


# ------------------------------------------------------------------ the stage


@register_stage("filters.math_judge")
@dataclass
class MathJudge(Stage):
    r"""Keeps rows whose `meta["answer"]` equals `expected_answer`, by math-verify or a judge.

    Reads `meta["answer"]` (from `filters.boxed_answer`), `expected_answer` and the user turns.
    Writes `scores["filters.math_judge"]` (1.0 equal / 0.0 not), `meta["verified_by"]`
    (`math_verify` | `judge`), `meta["math_verify_verdict"]` (`equal`, `math_answer_mismatch`,
    `math_answer_unparsed`, `expected_answer_unparsed`), `meta["judge_verdict"]` (`yes`, `no`,
    `unparsed`, or `skipped` when math-verify decided) and `meta["judge_output"]` (the judge's
    reply, cut to `judge_output_chars`). arXiv 2505.00949 §3.1.1.

    `mode: fallback` asks the judge only where math-verify cannot parse a side; `mismatch` also
    where it says "different" (math-verify parses words as products of symbols, so "one half"
    vs "0.5" is a mismatch to it, not a parse failure: use this mode for text-heavy answers);
    `always` asks for every row and lets the judge decide (math-verify's verdict stays in the
    meta for audits).

    Reasons: `expected_answer_missing`, `math_answer_missing`, `math_answer_too_long`,
    `math_answer_mismatch` (math-verify decided), `judge_mismatch` (the judge said no),
    `judge_unparsed` (no verdict in the reply). A judge request that failed after its backend's
    retries sends the row to the failed split (`request_failed: ...`); the next build retries it.

    Example: answer "one half", gold "0.5": math-verify cannot parse "one half", the judge says
    "Judgement: Yes" -> kept, verified_by "judge".
    """

    judge: str = "judge"  # a key of the recipe's `teachers` (paper: Qwen2.5-32B-Instruct)
    mode: Literal["fallback", "mismatch", "always"] = "fallback"  # when to ask the judge
    template: str = "math_judge"  # prompt: a name in filters/prompts/ or a path to a .txt file
    temperature: float = 0.0  # greedy verdicts: the same row always gets the same one
    max_tokens: int = 512  # room for a few sentences of reasoning before the verdict
    system_prompt: str = ""  # e.g. "detailed thinking off" for a reasoning-toggle judge
    timeout_s: int = 5  # math-verify's per parse/compare timeout (main thread only)
    float_rounding: int = 6  # math-verify's float comparison precision
    max_answer_chars: int = 1000  # longer answers are dropped before any check
    judge_output_chars: int = 400  # how much of the judge's reply `meta["judge_output"]` keeps

    kind: ClassVar[str] = "filter"
    requires: ClassVar[tuple[str, ...]] = ("meta.answer", "expected_answer")
    provides: ClassVar[tuple[str, ...]] = (
        "scores.filters.math_judge",
        "meta.verified_by",
        "meta.math_verify_verdict",
        "meta.judge_verdict",
    )
    teacher_fields: ClassVar[tuple[str, ...]] = ("judge",)

    def __post_init__(self) -> None:
        if self.mode not in ("fallback", "mismatch", "always"):
            raise ValueError(
                "filters.math_judge: mode must be 'fallback', 'mismatch' or 'always', "
                f"got {self.mode!r}"
            )
        if not 0 <= self.temperature <= 5:
            raise ValueError(
                f"filters.math_judge: temperature must be in [0, 5], got {self.temperature}"
            )
        if self.max_tokens < 1 or self.timeout_s < 1 or self.max_answer_chars < 1:
            raise ValueError(
                "filters.math_judge: max_tokens, timeout_s and max_answer_chars must be >= 1"
            )
        self._template = load_template(self.template)

    def prompt(self, record: Record) -> str:
        return self._template.format(
            problem=problem_text(record),
            expected_answer=(record.expected_answer or "").strip(),
            predicted_answer=record.meta.get("answer", "").strip(),
        )

    def _precheck(self, record: Record) -> Drop | str:
        """A drop before any check, or math-verify's verdict."""
        gold = (record.expected_answer or "").strip()
        answer = record.meta.get("answer", "").strip()
        if not gold:
            return Drop("expected_answer_missing")
        if not answer:
            return Drop("math_answer_missing")
        if len(answer) > self.max_answer_chars:
            return Drop("math_answer_too_long")
        return compare_answers(answer, gold, self.timeout_s, self.float_rounding)

    def _needs_judge(self, verdict: str) -> bool:
        if self.mode == "fallback":
            return verdict not in ("equal", "math_answer_mismatch")
        return self.mode == "always" or verdict != "equal"

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        result = StageResult()
        asking: list[Record] = []
        for record in records:
            verdict = self._precheck(record)
            if isinstance(verdict, Drop):
                self._reject(result, record, verdict.reason)
                continue
            record.meta["math_verify_verdict"] = verdict
            if self._needs_judge(verdict):
                asking.append(record)
            else:
                record.meta["verified_by"], record.meta["judge_verdict"] = "math_verify", "skipped"
                self._decide(result, record, verdict == "equal", verdict)
        if asking:
            await self._ask(asking, ctx, result)
        return result

    async def _ask(self, rows: list[Record], ctx: RunContext, result: StageResult) -> None:
        prompts = [self.prompt(r) for r in rows]
        unique = list(dict.fromkeys(prompts))  # one request per distinct question, in order
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        sampling = SamplingParams(self.temperature, 1.0, self.max_tokens)
        requests = [
            GenerationRequest.build(
                [*system, {"role": "user", "content": p}], sampling, 0, ctx.seed
            )
            for p in unique
        ]
        responses = dict(zip(unique, await ctx.teacher(self.judge).generate(requests), strict=True))
        for record, prompt in zip(rows, prompts, strict=True):
            response = responses[prompt]
            record.meta["verified_by"] = "judge"
            if response.error is not None:
                fail(self.stage_type, record, f"request_failed: {response.error}", result)
                continue
            record.meta["judge_output"] = response.text.strip()[: self.judge_output_chars]
            verdict = parse_verdict(response.text)
            if verdict is None:
                record.meta["judge_verdict"] = "unparsed"
                self._reject(result, record, "judge_unparsed")
            else:
                record.meta["judge_verdict"] = "yes" if verdict else "no"
                self._decide(result, record, verdict, "judge_mismatch")

    def _decide(self, result: StageResult, record: Record, equal: bool, reason: str) -> None:
        if equal:
            record.scores[self.stage_type] = 1.0
            result.kept.append(record)
        else:
            self._reject(result, record, reason)

    def _reject(self, result: StageResult, record: Record, reason: str) -> None:
        record.scores[self.stage_type] = 0.0
        reject(self.stage_type, record, reason, result)


# ------------------------------------------------------------------ agreement report

_MV = ("equal", "math_answer_mismatch", "math_answer_unparsed", "expected_answer_unparsed")


async def judge_agreement(
    records: list[Record],
    ctx: RunContext,
    judge: str = "judge",
    sample: int = 200,
    seed: int = 0,
    examples: int = 10,
    **params: Any,
) -> dict[str, Any]:
    """How often the judge agrees with math-verify, on a sample of rows with an answer and gold.

    Asks the judge (teacher `judge` of `ctx`) about every sampled row, whatever math-verify says,
    and returns `rows`, `agreement` (share of rows where both decided and agree, None when no
    row qualifies), `confusion` ({math-verify verdict: {judge verdict: count}}), `decided`
    (rows where both gave a verdict), `failed` (judge requests that failed) and up to `examples`
    disagreements (problem, answer, gold, both verdicts, the judge's reply). The input rows are
    not changed. `params` go to `MathJudge` (template, max_tokens, ...).
    """
    stage = MathJudge(judge=judge, mode="always", **params)
    usable = [r for r in records if r.meta.get("answer") and (r.expected_answer or "").strip()]
    if sample and len(usable) > sample:
        usable = random.Random(seed).sample(usable, sample)
    copies = [replace(r, meta=dict(r.meta), scores=dict(r.scores)) for r in usable]
    result = await stage.process(copies, ctx)
    confusion = {mv: {"yes": 0, "no": 0, "unparsed": 0} for mv in _MV}
    agree = decided = 0
    disagreements = []
    for row in result.kept + result.rejected:
        mv, jv = row.meta.get("math_verify_verdict"), row.meta.get("judge_verdict")
        if mv is None or jv is None:
            continue  # dropped before any check (answer too long)
        confusion[mv][jv] += 1
        if mv in ("equal", "math_answer_mismatch") and jv in ("yes", "no"):
            decided += 1
            if (mv == "equal") == (jv == "yes"):
                agree += 1
            elif len(disagreements) < examples:
                disagreements.append(
                    {
                        "id": row.id,
                        "problem": problem_text(row)[:300],
                        "answer": row.meta["answer"],
                        "expected_answer": row.expected_answer,
                        "math_verify": mv,
                        "judge": jv,
                        "judge_output": row.meta.get("judge_output", ""),
                    }
                )
    return {
        "rows": len(copies),
        "decided": decided,
        "agreement": agree / decided if decided else None,
        "confusion": confusion,
        "failed": len(result.failed),
        "disagreements": disagreements,
    }


__all__ = ["MathJudge", "judge_agreement", "load_template", "parse_verdict"]
