"""MinHash LSH near-duplicates: against benchmarks, and within a blend (dedup).

Signatures come from `rensa` (Rust), fed one flat buffer of 64-bit shingle hashes computed by
`decontam.hashing` (word k-shingles of normalised text), so no Python loop runs per shingle or
per document; the signature step is compiled code, not a (shingles x permutations) numpy array.
Banding, candidate search and the Jaccard check on candidates are numpy: band keys are sorted
once and rows are looked up with `searchsorted`. Signatures estimate Jaccard similarity like
datasketch's (tests/decontam/test_minhash.py checks the two agree), not bit for bit.

    stages:
      - {type: decontam.minhash, benchmarks: [humaneval], threshold: 0.8}
      - {type: decontam.minhash, benchmarks: [humaneval], dedup: true}   # also within the blend
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from curation.registry import register_stage
from decontam.base import DecontamStage, Match
from decontam.bench import all_items
from decontam.hashing import buffer_token_hashes, iter_batches, ngram_hashes, splitmix64
from decontam.normalize import Mode, check_mode, normalize_batch

if TYPE_CHECKING:
    from curation.context import RunContext

EMPTY = np.uint32(0xFFFFFFFF)  # every slot of an empty document's signature


def shingles(texts: Sequence[str], k: int, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of word k-shingles; a text shorter than k words is one shingle."""
    tokens, offsets = buffer_token_hashes(*normalize_batch(texts, mode))
    return ngram_hashes(tokens, offsets, k, short_rows=True)


def signatures(
    texts: Sequence[str], num_perm: int = 128, k: int = 5, mode: Mode = "text", seed: int = 1
) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures."""
    try:
        import rensa
    except ImportError as exc:
        raise ImportError("decontam.minhash needs rensa: pip install rensa") from exc
    parts = []
    # half the n-gram scan's batches: rensa's matrix and its Python rows then stay in cache too
    # (~8% less CPU than 500k characters in benchmarks/minhash.py)
    for start, stop in iter_batches(texts, 250_000):
        hashes, offsets = shingles(texts[start:stop], k, mode)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            hashes, offsets.astype(np.uint64), num_perm=num_perm, seed=seed
        )
        # rensa hands out Python lists only; array.array packs each one in C
        flat = b"".join([array("I", row) for row in matrix.to_rows()])
        parts.append(np.frombuffer(flat, np.uint32).reshape(stop - start, num_perm))
    return np.concatenate(parts) if parts else np.zeros((0, num_perm), np.uint32)


def band_keys(sigs: np.ndarray, bands: int) -> np.ndarray:
    """(rows, bands) uint64 keys; equal keys = equal band (up to 64-bit collisions)."""
    rows = sigs.shape[1] // bands
    parts = sigs[:, : bands * rows].reshape(len(sigs), bands, rows)
    mult = splitmix64(np.arange(1, rows + 1, dtype=np.uint64)) | np.uint64(1)
    mixed = np.einsum("rbk,k->rb", parts, mult)  # wraps modulo 2^64, like the uint64 sum
    with np.errstate(over="ignore"):
        return splitmix64(mixed + np.arange(bands, dtype=np.uint64))


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of paired signature rows."""
    return (a == b).mean(axis=1)


class MinHashIndex:
    """Benchmark signatures and the band keys of all bands in one sorted array.

    One array serves every band because a key holds its band's number (`band_keys`).
    """

    def __init__(self, sigs: np.ndarray, bands: int):
        self.sigs, self.bands = sigs, bands
        valid = np.flatnonzero(sigs[:, 0] != EMPTY)
        keys = band_keys(sigs[valid], bands).ravel()
        order = np.argsort(keys)
        self.sorted, self.owner = keys[order], valid[order // bands]

    def candidates(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unique (row, item) pairs sharing at least one band."""
        flat = keys.ravel()
        order = np.argsort(flat)  # sorted queries make the binary searches walk the index in order
        queries = flat[order]
        lo = np.searchsorted(self.sorted, queries, "left")
        width = np.searchsorted(self.sorted, queries, "right") - lo
        hit = np.flatnonzero(width)
        lo, width = lo[hit], width[hit]
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(width)[:-1])), width)
        rows = np.repeat(order[hit] // self.bands, width)
        items = self.owner[starts + np.arange(len(starts))]
        pairs = np.sort(rows * len(self.sigs) + items)  # np.unique hashes, much slower here
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        return pairs // len(self.sigs), pairs % len(self.sigs)

    def query(self, sigs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per row: best item with estimated Jaccard >= threshold (-1 = none), and that score."""
        best = np.full(len(sigs), -1, np.int64)
        score = np.zeros(len(sigs))
        keys = band_keys(sigs, self.bands)
        rows, items = self.candidates(keys)
        if not len(rows):
            return best, score
        sim = jaccard(sigs[rows], self.sigs[items])
        ok = (sim >= threshold) & (sigs[rows, 0] != EMPTY)
        rows, items, sim = rows[ok], items[ok], sim[ok]
        order = np.lexsort((items, -sim, rows))
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]] if len(order) else order
        best[rows[first]], score[rows[first]] = items[first], sim[first]
        return best, score


def duplicates(sigs: np.ndarray, bands: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: an earlier row it near-duplicates (-1 = none), and the estimated Jaccard.

    Rows sharing a band are compared with the first row of that band's bucket, so a row is
    flagged when it is similar to the earliest row of some bucket it falls in.
    """
    dup = np.full(len(sigs), -1, np.int64)
    score = np.zeros(len(sigs))
    keys = band_keys(sigs, bands)
    valid = sigs[:, 0] != EMPTY
    for j in range(bands):
        order = np.flatnonzero(valid)[np.argsort(keys[valid, j], kind="stable")]
        k = keys[order, j]
        group_start = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
        head = order[np.maximum.accumulate(np.where(group_start, np.arange(len(k)), 0))]
        members = (head != order) & (dup[order] < 0)
        rows, heads = order[members], head[members]
        sim = jaccard(sigs[rows], sigs[heads])
        ok = sim >= threshold
        dup[rows[ok]], score[rows[ok]] = heads[ok], sim[ok]
    return dup, score


@register_stage("decontam.minhash")
@dataclass
class MinHashDecontam(DecontamStage):
    """Drops rows whose MinHash signature is near a benchmark item's (or an earlier row's).

    Reads the `fields` text; writes `scores["decontam.minhash"]` (estimated Jaccard of the best
    match, 0.0 when clean) and on a match `meta["decontam.minhash"]` = {"benchmark", "item_id",
    "score", "shingle", "mode"} with reason `contaminated_minhash`. With `dedup`, rows that
    near-duplicate an earlier row of the build (every shard: the stage is global, so the runner
    hands it all rows at once) are dropped with reason `duplicate_minhash` and benchmark
    "blend", item_id = the kept row's id.

    Catches verbatim and reformatted copies (and, in `code` mode, renamed identifiers) of a
    whole item; a benchmark item quoted inside a much longer answer is the n-gram stage's job.
    """

    method = "minhash"

    num_perm: int = 128
    bands: int = 16  # 16 bands x 8 rows: P(candidate | J=0.8) ~ 0.95
    threshold: float = 0.8  # estimated Jaccard to call a match
    shingle: int = 5  # words per shingle
    mode: str = "text"  # text | code
    seed: int = 1
    dedup: bool = False  # also drop near-duplicates within the blend (a global stage)

    @property
    def scope(self) -> str:  # type: ignore[override]
        """Dedup compares every row of the build with every other: the runner's one barrier."""
        return "global" if self.dedup else "row"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_mode(self.mode, "decontam.minhash")
        if self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(
                f"decontam.minhash: bands must divide num_perm ({self.num_perm}), got {self.bands}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"decontam.minhash: threshold must be in (0, 1], got {self.threshold}")
        if self.shingle < 1:
            raise ValueError(f"decontam.minhash: shingle must be >= 1, got {self.shingle}")
        self._index: MinHashIndex | None = None

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        return signatures(texts, self.num_perm, self.shingle, self.mode, self.seed)  # type: ignore[arg-type]

    def index(self) -> MinHashIndex:
        if self._index is None:
            self._index = MinHashIndex(
                self.signatures([i.text for i in all_items(self.load())]), self.bands
            )
        return self._index

    def find(
        self, texts: list[str], ctx: RunContext | None, ids: list[str] | None = None
    ) -> list[Match | None]:
        items = all_items(self.load())
        sigs = self.signatures(texts)
        best, score = self.index().query(sigs, self.threshold)
        details = {"shingle": self.shingle, "mode": self.mode}
        out: list[Match | None] = [None] * len(texts)
        for row in np.flatnonzero(best >= 0):
            item = items[int(best[row])]
            out[row] = Match(item.benchmark, item.item_id, round(float(score[row]), 6), details)
        if self.dedup:
            dup, dscore = duplicates(sigs, self.bands, self.threshold)
            for row in np.flatnonzero((dup >= 0) & (best < 0)):
                other = ids[int(dup[row])] if ids else str(int(dup[row]))
                out[row] = Match(
                    "blend", other, round(float(dscore[row]), 6), details, "duplicate_minhash"
                )
        return out
