"""Exact decontamination: a row whose text is a benchmark item, or holds one whole (DESIGN §7).

n-gram and MinHash checks cannot see items shorter than their n-gram or shingle size, and
benchmarks are full of them: one-line questions ("What is 97+67? A) 175 B) 164 ..."),
instructions of a few words, short word problems. This method compares normalised token
sequences: a row matches an item when its text equals the item, or (with `contains`) holds the
item's tokens as one contiguous run. Normalisation is the shared one (`decontam.normalize`), so
case, punctuation and line breaks do not hide a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from curation.registry import register_stage
from decontam.base import DecontamStage, Match
from decontam.bench import BenchItem
from decontam.normalize import MODES, normalize

if TYPE_CHECKING:
    from curation.context import RunContext


class ExactIndex:
    """Normalised item texts -> the first item with that text, grouped by token count."""

    def __init__(self, items: list[BenchItem], mode: str = "text", min_tokens: int = 4):
        self.mode, self.min_tokens = mode, min_tokens
        self.whole: dict[str, BenchItem] = {}
        self.by_length: dict[int, dict[str, BenchItem]] = {}
        for item in items:
            text = normalize(item.text, mode)  # type: ignore[arg-type]
            if not text:
                continue
            self.whole.setdefault(text, item)
            length = text.count(" ") + 1
            if length >= min_tokens:
                self.by_length.setdefault(length, {}).setdefault(text, item)

    def find(self, text: str, contains: bool = True) -> Match | None:
        normal = normalize(text, self.mode)  # type: ignore[arg-type]
        if not normal:
            return None
        item = self.whole.get(normal)
        if item is not None:
            return self._match(item, "exact", normal.count(" ") + 1)
        if not contains:
            return None
        tokens = normal.split(" ")
        # Longest items first: a row quoting a long item and a short one reports the long one.
        for length in sorted(self.by_length, reverse=True):
            if length > len(tokens):
                continue
            texts = self.by_length[length]
            for start in range(len(tokens) - length + 1):
                item = texts.get(" ".join(tokens[start : start + length]))
                if item is not None:
                    return self._match(item, "contains", length)
        return None

    def _match(self, item: BenchItem, how: str, tokens: int) -> Match:
        details = {"match": how, "tokens": tokens, "mode": self.mode}
        return Match(item.benchmark, item.item_id, 1.0, details)


@register_stage("decontam.exact")
@dataclass
class ExactDecontam(DecontamStage):
    """Drops rows whose text is a benchmark item, or contains one, after normalisation.

    Writes `scores["decontam.exact"]` (1.0 on a match, else 0.0) and, on a match, `meta[
    "decontam.exact"]` = {"benchmark", "item_id", "score", "match": "exact"|"contains",
    "tokens", "mode"}, with reason `contaminated_exact`. Items under `min_tokens` tokens only
    match a row that is exactly the item: as a run inside a longer row they would match
    everyday phrases.

    Example: the prompt "what is 97 + 67?  A) 175 B) 164 C) 163 D) 165" matches the item
    "What is 97+67? A) 175 B) 164 C) 163 D) 165" exactly (same tokens after normalisation).
    """

    method = "exact"

    fields: list[str] = field(default_factory=lambda: ["input"])
    mode: str = "text"  # text | code (identifier-insensitive, as decontam.ngram)
    contains: bool = True  # also rows that hold a whole item as a run of tokens
    min_tokens: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.min_tokens < 1:
            raise ValueError(f"min_tokens must be >= 1, got {self.min_tokens}")
        self._index: ExactIndex | None = None

    def index(self) -> ExactIndex:
        if self._index is None:
            items = [item for bench in self.load() for item in bench.items]
            self._index = ExactIndex(items, self.mode, self.min_tokens)
        return self._index

    def find(
        self, texts: list[str], ctx: RunContext | None, ids: list[str] | None = None
    ) -> list[Match | None]:
        index = self.index()
        return [index.find(text, self.contains) for text in texts]
