"""MinHash signatures + LSH queries: thinkmix vs datasketch (and rensa's own LSH if installed).

20k documents of 200 words, 5-word shingles, 128 permutations. Half the queries are
near-duplicates of indexed documents. Prints the times and the ratios measured in this run.

    .venv/bin/python benchmarks/minhash.py [--docs 20000] [--datasketch-docs 2000]

datasketch is timed on a subset (`--datasketch-docs`) and scaled linearly (its cost is per
document); pass --datasketch-docs equal to --docs to time it on everything.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

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


def run_thinkmix(docs, queries, bands, threshold):
    start = time.perf_counter()
    index = MinHashIndex(signatures(docs, 128, 5), bands)
    best, _ = index.query(signatures(queries, 128, 5), threshold)
    return time.perf_counter() - start, int((best >= 0).sum())


def run_datasketch(docs, queries, bands, threshold):
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
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
    return time.perf_counter() - start, found


def run_rensa(docs, queries, bands, threshold):
    from rensa import RMinHash, RMinHashLSH

    start = time.perf_counter()
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
    return time.perf_counter() - start, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--datasketch-docs", type=int, default=2_000)
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    docs, queries = corpus(args.docs, args.words)
    ours, found = run_thinkmix(docs, queries, args.bands, args.threshold)
    print(f"thinkmix:   {ours:7.2f} s for {args.docs} docs + {args.docs} queries, {found} found")
    sub = args.datasketch_docs
    half = sub // 2
    sub_docs = docs[:half] + docs[args.docs // 2 : args.docs // 2 + sub - half]
    sub_queries = queries[:half] + queries[args.docs // 2 : args.docs // 2 + sub - half]
    ds, ds_found = run_datasketch(sub_docs, sub_queries, args.bands, args.threshold)
    scaled = ds * args.docs / sub
    print(f"datasketch: {ds:7.2f} s for {sub} docs ({ds_found} found) -> {scaled:.2f} s scaled")
    print(f"speed-up vs datasketch: {scaled / ours:.1f}x")
    try:
        rs, rs_found = run_rensa(sub_docs, sub_queries, args.bands, args.threshold)
    except ImportError:
        print("rensa not installed; skipped")
        return
    rscaled = rs * args.docs / sub
    print(
        f"rensa (per-document API): {rs:7.2f} s for {sub} docs ({rs_found} found) -> {rscaled:.2f} s scaled"
    )
    print(f"speed-up vs rensa per-document: {rscaled / ours:.1f}x")


if __name__ == "__main__":
    main()
