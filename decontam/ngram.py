"""N-gram overlap against benchmarks: a hashed index built once, rows scanned with numpy.

lm-eval uses 13-grams, open-r1 8-grams; `n` is a parameter. The index holds the sorted, unique
(n-gram hash, item) pairs of every benchmark item behind a bit filter, so most row n-grams are
rejected by one table read before any binary search; in text mode a sparse probe of shorter
windows first skips the rows that cannot match (`NgramIndex`). Indices are cached on disk as
.npz, keyed by the benchmark contents, `n`, `mode`, `DECONTAM_VERSION` and the index format.

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
from decontam.hashing import (
    buffer_token_hashes,
    iter_batches,
    ngram_hashes,
    token_hashes,
    window_hashes,
)
from decontam.normalize import PLACEHOLDER, Mode, check_mode, normalize_batch

if TYPE_CHECKING:
    from curation.context import RunContext

# Code n-grams without names are generic (`def _ ( _ : int , _ : int ) - > int :`): standard-
# library functions shared at most 15% of a HumanEval item's code 13-grams, copies with renamed
# names or a reworded docstring 20% or more (tests/decontam/test_ngram.py).
CODE_MIN_FRACTION = 0.2
_PLACEHOLDER_HASH = int(token_hashes([PLACEHOLDER])[0][0])
_BITS = np.uint8(1) << np.arange(8, dtype=np.uint8)
_INDEX_FORMAT = 2  # 2: the text-mode probe m-grams are stored too


def row_ngrams(texts: Sequence[str], n: int, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of the n-grams of normalised texts; in `code` mode an n-gram needs at
    least half its tokens to be something other than a renamed identifier."""
    return _ngrams(*buffer_token_hashes(*normalize_batch(texts, mode)), n, mode)


def _ngrams(tokens: np.ndarray, offsets: np.ndarray, n: int, mode: Mode):
    if mode == "code":
        informative = tokens != np.uint64(_PLACEHOLDER_HASH)
        return ngram_hashes(tokens, offsets, n, informative=informative, min_informative=n // 2)
    return ngram_hashes(tokens, offsets, n)


class HashSet:
    """Sorted uint64 hashes behind a bit filter of 64 bits per hash (the top bits pick a byte,
    the low 3 bits a bit in it): ~1.5% of absent hashes pass on to the binary search. A byte
    per slot at 16 slots per hash let 6% pass, in twice the memory."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = hashes
        bits = max(13, min(28, math.ceil(math.log2(max(1, len(hashes)) * 8))))
        self.shift = np.uint64(64 - bits)
        self.filter = np.zeros(1 << bits, dtype=np.uint8)
        np.bitwise_or.at(self.filter, self._slots(hashes), _BITS[hashes & np.uint64(7)])

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> self.shift).astype(np.int64)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Bool per query: is this hash in the set."""
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


@dataclass
class RowHits:
    """Per scanned row: the best item (-1 = none), its matching n-gram count, all matches."""

    item: np.ndarray  # int64
    count: np.ndarray  # distinct row n-grams found in the best item
    matched: np.ndarray  # distinct row n-grams found in any item
    total: np.ndarray  # n-grams of the row


class NgramIndex:
    """Sorted unique (hash, item) pairs of benchmark n-grams, behind a bit filter (`HashSet`).

    In text mode a scan first probes only every `step`-th window of m = n - step + 1 tokens
    against the items' m-grams (`probe`): each n-gram holds such a window, and m-grams of an
    item n-gram are m-grams of the item, so a row without a probe hit has no n-gram in the index
    and is not hashed further. That is `step` times fewer hashes and lookups for most rows.
    """

    def __init__(
        self,
        hashes: np.ndarray,
        items: np.ndarray,
        item_counts: np.ndarray,
        n: int,
        probe: np.ndarray | None = None,
    ):
        self.hashes, self.items, self.item_counts, self.n = hashes, items, item_counts, n
        self.grams = HashSet(hashes)
        self.step = probe_step(n)
        self.probe = HashSet(probe) if probe is not None and self.step > 1 else None

    @classmethod
    def build(cls, items: Sequence[BenchItem], n: int, mode: Mode = "text") -> NgramIndex:
        tokens, token_offsets = buffer_token_hashes(*normalize_batch([i.text for i in items], mode))
        hashes, offsets = _ngrams(tokens, token_offsets, n, mode)
        owner = np.repeat(np.arange(len(items), dtype=np.int64), np.diff(offsets))
        # owners ascend, so a stable sort by hash orders the pairs by (hash, item)
        order = np.argsort(hashes, kind="stable")
        hashes, owner = hashes[order], owner[order]
        first = np.ones(len(hashes), np.bool_)
        first[1:] = (hashes[1:] != hashes[:-1]) | (owner[1:] != owner[:-1])
        hashes, owner = hashes[first], owner[first]
        counts = np.bincount(owner, minlength=len(items))
        probe = None
        if mode == "text" and probe_step(n) > 1:
            probe = np.sort(ngram_hashes(tokens, token_offsets, n - probe_step(n) + 1)[0])
            probe = probe[np.r_[True, probe[1:] != probe[:-1]]] if len(probe) else probe
        return cls(hashes, owner, counts, n, probe)

    def save(self, path: Path) -> None:
        import io

        buffer = io.BytesIO()
        probe = self.probe.hashes if self.probe is not None else np.zeros(0, np.uint64)
        np.savez(
            buffer,
            hashes=self.hashes,
            items=self.items,
            counts=self.item_counts,
            n=self.n,
            probe=probe,
        )
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> NgramIndex:
        with np.load(path) as data:
            probe = data["probe"]
            return cls(
                data["hashes"],
                data["items"],
                data["counts"],
                int(data["n"]),
                probe if len(probe) else None,
            )

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Bool per query: is this hash in the index."""
        return self.grams.lookup(queries)

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
        # distinct (row, n-gram) matches; np.unique(axis=0) is ~50x slower than a lexsort
        f_hash = hashes[hit]
        order = np.lexsort((f_hash, row_of))
        f_rows, f_hash = row_of[order], f_hash[order]
        first = np.ones(len(order), np.bool_)
        first[1:] = (f_rows[1:] != f_rows[:-1]) | (f_hash[1:] != f_hash[:-1])
        f_rows, f_hash = f_rows[first], f_hash[first]
        if not len(f_rows):
            return out
        out.matched += np.bincount(f_rows, minlength=rows)
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
        parts = [self._scan_batch(texts[start:stop], mode) for start, stop in iter_batches(texts)]
        if not parts:
            return self.scan_hashes(np.zeros(0, np.uint64), np.zeros(1, np.int64))
        return RowHits(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in RowHits.__annotations__)
        )

    def _scan_batch(self, texts: Sequence[str], mode: Mode) -> RowHits:
        tokens, offsets = buffer_token_hashes(*normalize_batch(texts, mode))
        if self.probe is None or mode != "text":
            return self.scan_hashes(*_ngrams(tokens, offsets, self.n, mode))
        lengths = np.diff(offsets)
        out = RowHits(
            item=np.full(len(lengths), -1, np.int64),
            count=np.zeros(len(lengths), np.int64),
            matched=np.zeros(len(lengths), np.int64),
            total=np.maximum(lengths - self.n + 1, 0),
        )
        windows = window_hashes(tokens, self.n - self.step + 1, self.step)
        found = np.flatnonzero(self.probe.lookup(windows)) * self.step
        rows = np.searchsorted(offsets, found, "right") - 1  # ascending, like `found`
        rows = rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows
        if len(rows):
            sizes = lengths[rows]
            sub_offsets = np.zeros(len(rows) + 1, np.int64)
            np.cumsum(sizes, out=sub_offsets[1:])
            take = np.repeat(offsets[rows] - sub_offsets[:-1], sizes) + np.arange(sub_offsets[-1])
            hits = self.scan_hashes(*ngram_hashes(tokens[take], sub_offsets, self.n))
            out.item[rows], out.count[rows], out.matched[rows] = hits.item, hits.count, hits.matched
        return out


def probe_step(n: int) -> int:
    """Windows between probes in a text-mode scan: 3 for lm-eval's 13-grams, 2 for 8-grams. The
    probe's m-grams (m = n - step + 1) must stay long enough to be rare in ordinary text."""
    return max(1, n // 4)


def cached_index(items: list[BenchItem], key: str, n: int, mode: Mode, folder: Path) -> NgramIndex:
    """The index of `items`, read from `folder` when built before, else built and written."""
    path = folder / f"ngram-{stable_hash(DECONTAM_VERSION, _INDEX_FORMAT, key, n, mode)}.npz"
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
