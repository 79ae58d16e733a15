"""MinHash signatures + LSH queries: thinkmix vs datasketch and vs rensa's per-document API.

20k documents of 200 words, 5-word shingles, 128 permutations. Half the queries are
near-duplicates of indexed documents. Prints the times and the ratios measured in this run, by
the wall clock and by CPU time (all threads of the process: rensa runs worker threads). Each side
runs `--repeat` times, interleaved, and its fastest run counts (as `timeit` does): on a shared
machine that filters out other jobs' bursts.

    .venv/bin/python benchmarks/minhash.py [--docs 20000] [--datasketch-docs 2000] [--repeat 3]

datasketch is timed on a subset (`--datasketch-docs`) and scaled linearly (its cost is per
document); pass --datasketch-docs equal to --docs to time it on everything. It runs two ways:
one `MinHash(num_perm=128)` per document, as its README shows (each one draws its permutations
again), and `MinHash.bulk`, which shares one set of permutations: what a careful datasketch user
writes, about twice as fast.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from datasketch import MinHash, MinHashLSH  # imported here, not on the clock: it loads scipy (~1 s)
from rensa import RMinHash, RMinHashLSH

from decontam.minhash import MinHashIndex, signatures


def corpus(docs: int, words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    base = rng.integers(0, len(vocab), size=(docs, words))
    queries = base.copy()
    half = docs // 2
    flips = rng.random((half, words)) < 0.05  # near-duplicates: 5% of words changed
    queries[:half][flips] = rng.integers(0, len(vocab), size=flips.sum())
    queries[half:] = rng.integers(0, len(vocab), size=(docs - half, words))
    return [" ".join(vocab[r]) for r in base], [" ".join(vocab[r]) for r in queries]


def shingle_set(text: str, k: int) -> list[bytes]:
    words = text.split()
    return [" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)]


def timed(run, *args) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, what `run` found)."""
    wall, cpu = time.perf_counter(), time.process_time()
    found = run(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, found


def run_thinkmix(docs, queries, bands, threshold):
    index = MinHashIndex(signatures(docs, 128, 5), bands)
    best, _ = index.query(signatures(queries, 128, 5), threshold)
    return int((best >= 0).sum())


def run_datasketch(docs, queries, bands, threshold):
    lsh = MinHashLSH(num_perm=128, params=(bands, 128 // bands))
    sketches = []
    for i, text in enumerate(docs):
        m = MinHash(num_perm=128)
        m.update_batch(shingle_set(text, 5))
        lsh.insert(str(i), m)
        sketches.append(m)
    found = 0
    for text in queries:
        m = MinHash(num_perm=128)
        m.update_batch(shingle_set(text, 5))
        hits = [h for h in lsh.query(m) if sketches[int(h)].jaccard(m) >= threshold]
        found += bool(hits)
    return found


def run_datasketch_bulk(docs, queries, bands, threshold):
    lsh = MinHashLSH(num_perm=128, params=(bands, 128 // bands))
    sketches = MinHash.bulk([shingle_set(text, 5) for text in docs], num_perm=128)
    for i, m in enumerate(sketches):
        lsh.insert(str(i), m)
    found = 0
    for m in MinHash.bulk([shingle_set(text, 5) for text in queries], num_perm=128):
        hits = [h for h in lsh.query(m) if sketches[int(h)].jaccard(m) >= threshold]
        found += bool(hits)
    return found


def run_rensa(docs, queries, bands, threshold):
    lsh = RMinHashLSH(threshold=threshold, num_perm=128, num_bands=bands)
    sketches = []
    for i, text in enumerate(docs):
        m = RMinHash(num_perm=128, seed=42)
        m.update([s.decode() for s in shingle_set(text, 5)])
        lsh.insert(i, m)
        sketches.append(m)
    found = 0
    for text in queries:
        m = RMinHash(num_perm=128, seed=42)
        m.update([s.decode() for s in shingle_set(text, 5)])
        found += any(sketches[h].jaccard(m) >= threshold for h in lsh.query(m))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--datasketch-docs", type=int, default=2_000)
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    args = parser.parse_args()
    docs, queries = corpus(args.docs, args.words)
    sub = args.datasketch_docs
    half = sub // 2
    sub_docs = docs[:half] + docs[args.docs // 2 : args.docs // 2 + sub - half]
    sub_queries = queries[:half] + queries[args.docs // 2 : args.docs // 2 + sub - half]
    scale = args.docs / sub
    runs = []
    for _ in range(args.repeat):  # interleaved, so a burst of other jobs hits every side alike
        runs.append(
            [
                timed(run_thinkmix, docs, queries, args.bands, args.threshold),
                timed(run_datasketch, sub_docs, sub_queries, args.bands, args.threshold),
                timed(run_rensa, sub_docs, sub_queries, args.bands, args.threshold),
                timed(run_datasketch_bulk, sub_docs, sub_queries, args.bands, args.threshold),
            ]
        )
    best = [
        (min(r[side][0] for r in runs), min(r[side][1] for r in runs), runs[0][side][2])
        for side in range(4)
    ]
    (ours, ours_cpu, found), (ds, ds_cpu, ds_found), (rs, rs_cpu, rs_found), bulk = best
    print(
        f"thinkmix:   {ours:7.2f} s ({ours_cpu:.2f} s CPU) for {args.docs} docs + {args.docs} "
        f"queries, {found} found"
    )
    print(
        f"datasketch: {ds:7.2f} s ({ds_cpu:.2f} s CPU) for {sub} docs ({ds_found} found) -> "
        f"{ds * scale:.2f} s ({ds_cpu * scale:.2f} s CPU) scaled"
    )
    print(
        f"speed-up vs datasketch: {ds * scale / ours:.1f}x wall, {ds_cpu * scale / ours_cpu:.1f}x CPU"
    )
    print(
        f"datasketch MinHash.bulk: {bulk[0]:7.2f} s ({bulk[1]:.2f} s CPU) for {sub} docs "
        f"({bulk[2]} found) -> {bulk[0] * scale:.2f} s scaled; speed-up "
        f"{bulk[0] * scale / ours:.1f}x wall, {bulk[1] * scale / ours_cpu:.1f}x CPU"
    )
    print(
        f"rensa (per-document API): {rs:7.2f} s ({rs_cpu:.2f} s CPU) for {sub} docs "
        f"({rs_found} found) -> {rs * scale:.2f} s ({rs_cpu * scale:.2f} s CPU) scaled"
    )
    print(
        f"speed-up vs rensa per-document: {rs * scale / ours:.1f}x wall, "
        f"{rs_cpu * scale / ours_cpu:.1f}x CPU"
    )


if __name__ == "__main__":
    main()
