"""`mix`: a source that combines finished blend versions into one training mix.

Each blend names a version (`math`, `math/3f9a…`) and either a `weight` (its share of `total`)
or an absolute `count`. With `preset: llama-nemotron` the weights are the category shares of the
paper's released SFT data (arXiv 2505.00949 Table 2: 33,011,757 rows, math 66.8%, code 30.6%).
Rows are picked by a seeded content hash of their id, so a mix is reproducible and a bigger mix
contains the smaller one. The parents' exact versions go into the manifest and into the mix's own
version id, so rebuilding a blend gives the mix a new version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from curation.layouts import SourceError
from curation.record import Record, stable_hash
from curation.registry import register_stage
from curation.stage import Source

# arXiv 2505.00949 Table 2: rows per category of Llama-Nemotron-Post-Training-Dataset (SFT).
LLAMA_NEMOTRON_TABLE2 = {
    "math": 22_066_397,
    "code": 10_108_883,
    "science": 708_920,
    "instruction following": 56_339,
    "chat": 39_792,
    "safety": 31_426,
}
PRESETS = {"llama-nemotron": LLAMA_NEMOTRON_TABLE2}


@dataclass
class BlendPick:
    ref: str  # dataset name (newest version) or dataset/version
    weight: float = 0.0  # share of the mix's `total`
    count: int = 0  # or an absolute number of rows
    category: str = ""  # the preset's key for this blend (default: the dataset name)


@register_stage("mix")
@dataclass
class MixSource(Source):
    """Rows of blend versions by weight, count or preset; parents recorded."""

    blends: list[BlendPick] = field(default_factory=list)
    total: int = 0  # rows in the mix when blends are given by weight or preset
    preset: str = ""  # llama-nemotron: weights from the paper's Table 2
    split: str = "train"  # which split of each parent to draw from
    seed: int = 0

    provides: ClassVar[tuple[str, ...]] = ("output", "reasoning", "system_prompt", "generator")

    def __post_init__(self) -> None:
        if not self.blends:
            raise ValueError("blends: name at least one blend version")
        if self.preset and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        by_weight = self.preset or any(b.weight for b in self.blends)
        if by_weight and self.total < 1:
            raise ValueError("total: weights and presets need the mix size (total >= 1)")
        if not by_weight and not all(b.count > 0 for b in self.blends):
            raise ValueError("each blend needs a weight or a count > 0 (or use a preset)")

    def parents(self, ctx) -> list[str]:
        refs = []
        for pick in self.blends:
            dataset, version = ctx.store.resolve(pick.ref)
            refs.append(f"{dataset}/{version}")
        return refs

    def quotas(self) -> list[int]:
        if not (self.preset or any(b.weight for b in self.blends)):
            return [b.count for b in self.blends]
        table = PRESETS.get(self.preset, {})
        weights = [
            table.get(b.category or b.ref.split("/")[0], 0) if self.preset else b.weight
            for b in self.blends
        ]
        if sum(weights) <= 0:
            raise SourceError(f"mix: preset {self.preset!r} has no share for any of these blends")
        return [round(self.total * w / sum(weights)) for w in weights]

    def read(self, ctx) -> Iterator[Record]:
        for ref, quota in zip(self.parents(ctx), self.quotas(), strict=True):
            rows = ctx.store.read_records(ref, self.split)
            rows.sort(key=lambda r: stable_hash(self.seed, r.id))
            for record in rows[:quota]:
                record.meta = {**record.meta, "mix_parent": ref}
                yield record
