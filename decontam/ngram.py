"""N-gram overlap against benchmarks: a hashed index built once, rows scanned with numpy.

lm-eval uses 13-grams, open-r1 8-grams; `n` is a parameter. The index holds the sorted, unique
(n-gram hash, item) pairs of every benchmark item plus a byte table indexed by the hash's top
bits, so most row n-grams are rejected by one table read before any binary search. Indices are
cached on disk as .npz, keyed by the benchmark contents, `n`, `mode` and `DECONTAM_VERSION`.

    stages:
      - {type: decontam.ngram, benchmarks: [humaneval], n: 13}
      - {type: decontam.ngram, benchmarks: [humaneval], n: 8, mode: code}   # renamed identifiers
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from curation.record import stable_hash
from curation.registry import register_stage
from curation.store import atomic_write_bytes
from decontam.base import DECONTAM_VERSION, DecontamStage, Match
from decontam.bench import BenchItem, all_items, fingerprint
from decontam.hashing import buffer_token_hashes, iter_batches, ngram_hashes, token_hashes
from decontam.normalize import PLACEHOLDER, Mode, check_mode, normalize_batch

if TYPE_CHECKING:
    from curation.context import RunContext

# Code n-grams without names are generic (`def _ ( _ : int , _ : int ) - > int :`): standard-
# library functions shared at most 15% of a HumanEval item's code 13-grams, copies with renamed
# names or a reworded docstring 20% or more (tests/decontam/test_ngram.py).
CODE_MIN_FRACTION = 0.2
_PLACEHOLDER_HASH = int(token_hashes([PLACEHOLDER])[0][0])
_BITS = np.uint8(1) << np.arange(8, dtype=np.uint8)


def row_ngrams(texts: Sequence[str], n: int, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of the n-grams of normalised texts; in `code` mode an n-gram needs at
    least half its tokens to be something other than a renamed identifier."""
    tokens, offsets = buffer_token_hashes(*normalize_batch(texts, mode))
    if mode == "code":
        informative = tokens != np.uint64(_PLACEHOLDER_HASH)
        return ngram_hashes(tokens, offsets, n, informative=informative, min_informative=n // 2)
    return ngram_hashes(tokens, offsets, n)


@dataclass
class RowHits:
    """Per scanned row: the best item (-1 = none), its matching n-gram count, all matches."""

    item: np.ndarray  # int64
    count: np.ndarray  # distinct row n-grams found in the best item
    matched: np.ndarray  # distinct row n-grams found in any item
    total: np.ndarray  # n-grams of the row


class NgramIndex:
    """Sorted unique (hash, item) pairs of benchmark n-grams, with a prefilter byte table."""

    def __init__(self, hashes: np.ndarray, items: np.ndarray, item_counts: np.ndarray, n: int):
        self.hashes, self.items, self.item_counts, self.n = hashes, items, item_counts, n
        # a bit filter of 64 bits per hash: the top bits pick a byte, the low 3 bits a bit in it;
        # ~1.5% of absent hashes pass on to the binary search (a byte per slot at 16 slots per
        # hash let 6% pass, in twice the memory)
        bits = max(13, min(28, math.ceil(math.log2(max(1, len(hashes)) * 8))))
        self.shift = np.uint64(64 - bits)
        self.filter = np.zeros(1 << bits, dtype=np.uint8)
        np.bitwise_or.at(self.filter, self._slots(hashes), _BITS[hashes & np.uint64(7)])

    @classmethod
    def build(cls, items: Sequence[BenchItem], n: int, mode: Mode = "text") -> NgramIndex:
        hashes, offsets = row_ngrams([i.text for i in items], n, mode)
        owner = np.repeat(np.arange(len(items), dtype=np.int64), np.diff(offsets))
        pairs = np.unique(np.stack([hashes, owner.astype(np.uint64)], axis=1), axis=0)
        counts = np.bincount(pairs[:, 1].astype(np.int64), minlength=len(items))
        return cls(pairs[:, 0].copy(), pairs[:, 1].astype(np.int64), counts, n)

    def save(self, path: Path) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, hashes=self.hashes, items=self.items, counts=self.item_counts, n=self.n)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> NgramIndex:
        with np.load(path) as data:
            return cls(data["hashes"], data["items"], data["counts"], int(data["n"]))

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Bool per query: is this hash in the index."""
        # bytes 0 or one set bit seen as bool: every nonzero one is a candidate and gets a clean
        # True or False below
        hit = (self.filter[self._slots(queries)] & _BITS[queries & np.uint64(7)]).view(np.bool_)
        candidates = np.flatnonzero(hit)
        # sorted queries make numpy's binary search walk the index in order, ~8x faster than
        # random ones here even with the sort
        order = np.argsort(queries[candidates])
        sub = queries[candidates[order]]
        pos = np.minimum(np.searchsorted(self.hashes, sub), len(self.hashes) - 1)
        hit[candidates[order]] = self.hashes[pos] == sub
        return hit

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> self.shift).astype(np.int64)

    def scan_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> RowHits:
        rows = len(offsets) - 1
        out = RowHits(
            item=np.full(rows, -1, np.int64),
            count=np.zeros(rows, np.int64),
            matched=np.zeros(rows, np.int64),
            total=np.diff(offsets),
        )
        if not len(self.hashes) or not len(hashes):
            return out
        hit = np.flatnonzero(self.lookup(hashes))
        row_of = np.searchsorted(offsets, hit, "right") - 1
        # distinct (row, n-gram) matches
        found = np.unique(np.stack([row_of.astype(np.uint64), hashes[hit]], axis=1), axis=0)
        if not len(found):
            return out
        f_rows, f_hash = found[:, 0].astype(np.int64), found[:, 1]
        np.add.at(out.matched, f_rows, 1)
        # expand each matched n-gram to every item that holds it
        lo = np.searchsorted(self.hashes, f_hash, "left")
        hi = np.searchsorted(self.hashes, f_hash, "right")
        width = hi - lo
        pos = np.repeat(lo - np.concatenate(([0], np.cumsum(width)[:-1])), width) + np.arange(
            width.sum()
        )
        pair_rows, pair_items = np.repeat(f_rows, width), self.items[pos]
        keys, counts = np.unique(pair_rows * len(self.item_counts) + pair_items, return_counts=True)
        k_rows, k_items = keys // len(self.item_counts), keys % len(self.item_counts)
        # best item per row: highest count, then lowest item index
        order = np.lexsort((k_items, -counts, k_rows))
        first = order[np.r_[True, k_rows[order][1:] != k_rows[order][:-1]]]
        out.item[k_rows[first]] = k_items[first]
        out.count[k_rows[first]] = counts[first]
        return out

    def scan(self, texts: Sequence[str], mode: Mode = "text") -> RowHits:
        parts = []
        for start, stop in iter_batches(texts):
            parts.append(self.scan_hashes(*row_ngrams(texts[start:stop], self.n, mode)))
        if not parts:
            return self.scan_hashes(np.zeros(0, np.uint64), np.zeros(1, np.int64))
        return RowHits(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in RowHits.__annotations__)
        )


def cached_index(items: list[BenchItem], key: str, n: int, mode: Mode, folder: Path) -> NgramIndex:
    """The index of `items`, read from `folder` when built before, else built and written."""
    path = folder / f"ngram-{stable_hash(DECONTAM_VERSION, key, n, mode)}.npz"
    if path.is_file():
        return NgramIndex.load(path)
    index = NgramIndex.build(items, n, mode)
    index.save(path)
    return index


@register_stage("decontam.ngram")
@dataclass
class NgramDecontam(DecontamStage):
    """Drops rows sharing word n-grams with a benchmark item (DESIGN §7).

    Reads the `fields` text (default input + output); writes `scores["decontam.ngram"]` (the
    matched fraction of the best item's n-grams, 0.0 when clean) and, on a match, `meta[
    "decontam.ngram"]` = {"benchmark", "item_id", "score", "count", "n", "mode"} with reason
    `contaminated_ngram`. A row matches when it shares at least `min_matches` distinct n-grams
    with one item and they cover at least `min_fraction` of that item's n-grams. Items shorter
    than `n` tokens have no n-grams and are never matched by this method.

    `mode: text` catches verbatim and reformatted copies; `mode: code` also renamed identifiers;
    `mode: both` runs the two and reports the stronger match.

    Example: n=13, a row quoting a HumanEval prompt -> dropped, meta item_id "HumanEval/0".
    """

    method = "ngram"

    n: int = 13  # lm-eval's 13-grams; open-r1 uses 8
    mode: str = "text"  # text | code | both
    min_matches: int = 1  # distinct shared n-grams needed (open-r1: any overlap)
    # ...and this share of the item's n-grams; None: 0.0 in text mode, CODE_MIN_FRACTION in code
    min_fraction: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1:
            raise ValueError(f"decontam.ngram: n must be >= 1, got {self.n}")
        if self.mode != "both":
            check_mode(self.mode, "decontam.ngram")
        if self.min_matches < 1:
            raise ValueError(f"decontam.ngram: min_matches must be >= 1, got {self.min_matches}")
        if self.min_fraction is not None and not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(
                f"decontam.ngram: min_fraction must be in [0, 1], got {self.min_fraction}"
            )
        self._indices: dict[str, NgramIndex] = {}

    def modes(self) -> list[Mode]:
        return ["text", "code"] if self.mode == "both" else [self.mode]  # type: ignore[list-item]

    def index(self, mode: Mode, base_dir: Path | None = None) -> NgramIndex:
        if mode not in self._indices:
            benches = self.load()
            self._indices[mode] = cached_index(
                all_items(benches), fingerprint(benches), self.n, mode, self.cache_path(base_dir)
            )
        return self._indices[mode]

    def find(
        self, texts: list[str], ctx: RunContext | None, ids: list[str] | None = None
    ) -> list[Match | None]:
        items = all_items(self.load())
        best: list[Match | None] = [None] * len(texts)
        for mode in self.modes():
            index = self.index(mode, self.cache_root(ctx))
            hits = index.scan(texts, mode)
            floor = self.min_fraction
            if floor is None:
                floor = CODE_MIN_FRACTION if mode == "code" else 0.0
            for row in np.flatnonzero(hits.item >= 0):
                item, count = int(hits.item[row]), int(hits.count[row])
                fraction = count / max(1, int(index.item_counts[item]))
                if count < self.min_matches or fraction < floor:
                    continue
                current = best[row]
                if current is None or fraction > current.score:
                    details = {"count": count, "n": self.n, "mode": mode}
                    bench = items[item]
                    best[row] = Match(bench.benchmark, bench.item_id, round(fraction, 6), details)
        return best
