"""N-gram decontamination scan: thinkmix's hashed numpy index vs a Python set of tuples.

The baseline is the open-r1 style check (normalise, split into words, look every word n-gram
tuple up in a set). Both use the same normalisation, so their matches must be identical; the
script asserts that per row (distinct matching n-grams) before printing the ratios, by the wall
clock and by CPU time. Each side runs `--repeat` times, interleaved, and its fastest run counts
(as `timeit` does): on a shared machine that filters out other jobs' bursts.

    .venv/bin/python benchmarks/ngram_decontam.py [--mb 100] [--index-ngrams 1000000] [--n 13]
        [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from decontam.bench import BenchItem
from decontam.ngram import NgramIndex
from decontam.normalize import normalize


def make_data(mb: float, index_ngrams: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"tok{i}" for i in range(50_000)])
    words_per_item = 1000
    items_count = max(1, index_ngrams // (words_per_item - n + 1))
    item_words = rng.integers(0, len(vocab), size=(items_count, words_per_item))
    items = [BenchItem("synthetic", str(i), " ".join(vocab[w])) for i, w in enumerate(item_words)]
    row_words = 300  # ~2.5 KB rows
    rows_count = int(mb * 1e6 / (row_words * 8.5))
    words = rng.integers(0, len(vocab), size=(rows_count, row_words))
    planted = rng.random(rows_count) < 0.01  # 1% of rows quote 40 words of some item
    for r in np.flatnonzero(planted):
        item, at = rng.integers(items_count), rng.integers(0, words_per_item - 40)
        words[r, 100:140] = item_words[item, at : at + 40]
    rows = [" ".join(vocab[w]).capitalize() + "." for w in words]
    return items, rows


class Clock:
    """Wall and CPU seconds since the last `lap`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        lap = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return lap


def baseline(items: list[BenchItem], rows: list[str], n: int):
    clock = Clock()
    grams = set()
    for item in items:
        w = normalize(item.text).split()
        grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    built = clock.lap()
    counts = []
    for row in rows:
        w = normalize(row).split()
        counts.append(
            len({g for i in range(len(w) - n + 1) if (g := tuple(w[i : i + n])) in grams})
        )
    return built, clock.lap(), counts


def thinkmix(items: list[BenchItem], rows: list[str], n: int):
    clock = Clock()
    index = NgramIndex.build(items, n)
    built = clock.lap()
    hits = index.scan(rows)
    return built, clock.lap(), hits.matched.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--index-ngrams", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    args = parser.parse_args()
    items, rows = make_data(args.mb, args.index_ngrams, args.n)
    size = sum(len(r) for r in rows) / 1e6
    runs = []
    for _ in range(args.repeat):  # interleaved, so a burst of other jobs hits both sides alike
        runs.append((thinkmix(items, rows, args.n), baseline(items, rows, args.n)))
        assert runs[-1][0][2] == runs[-1][1][2], "thinkmix and the set-of-tuples baseline disagree"
    ours_build, ours_scan, base_build, base_scan = (
        tuple(min(run[side][phase][i] for run in runs) for i in (0, 1))
        for side, phase in ((0, 0), (0, 1), (1, 0), (1, 1))
    )
    ours = runs[0][0][2]
    flagged = sum(c > 0 for c in ours)
    print(
        f"{len(rows)} rows, {size:.1f} MB; index {args.index_ngrams:,} {args.n}-grams; "
        f"{flagged} rows flagged by both (identical per-row match counts)"
    )
    for name, build, scan in (
        ("thinkmix", ours_build, ours_scan),
        ("baseline", base_build, base_scan),
    ):
        print(
            f"{name}:  index {build[0]:6.2f} s ({build[1]:.2f} s CPU), scan {scan[0]:6.2f} s "
            f"({scan[1]:.2f} s CPU; {size / scan[0]:.1f} MB/s wall, {size / scan[1]:.1f} MB/s CPU)"
        )
    for clock, i in (("wall", 0), ("CPU", 1)):
        total = (base_build[i] + base_scan[i]) / (ours_build[i] + ours_scan[i])
        print(
            f"speed-up by {clock} time (scan): {base_scan[i] / ours_scan[i]:.1f}x; "
            f"(index + scan): {total:.1f}x"
        )


if __name__ == "__main__":
    main()
