"""Puzzle's MIP at scale, and Puzzle vs uniform pruning end to end on the embedded teacher.

1. HiGHS solve time for 80 layers x 40 candidates with 1 and 3 budgets (synthetic but shaped like
   real libraries: bigger blocks cost more and score better).
2. (--e2e) Puzzle on the embedded teacher at a 60% parameter budget: KL to the parent of the
   Puzzle child vs the best uniform child (same block in every layer) within the same budget.

    .venv/bin/python benchmarks/puzzle_mip.py [--e2e] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hardware_opt.mip import solve


def library_like(rng, layers: int, candidates: int):
    size = np.sort(rng.random((layers, candidates)), axis=1)
    scores = (1 - size) ** 2 * rng.uniform(0.5, 2.0, (layers, 1)) + 0.01 * rng.random(
        (layers, candidates)
    )
    costs = {
        "params": size,
        "kv_cache": np.clip(size + 0.1 * rng.standard_normal(size.shape), 0, None),
        "latency": 0.2 + 0.8 * size + 0.05 * rng.random(size.shape),
    }
    limits = {"params": 0.6, "kv_cache": 0.5, "latency": 0.7}
    budgets = {n: limits[n] * costs[n].max(1).sum() for n in costs}
    return scores.tolist(), {n: c.tolist() for n, c in costs.items()}, budgets


def bench_mip(repeats: int) -> None:
    print("MIP, 80 layers x 40 candidates (HiGHS, rel gap 1e-4)")
    for names in (["params"], ["params", "kv_cache", "latency"]):
        times = []
        for seed in range(repeats):
            scores, costs, budgets = library_like(np.random.default_rng(seed), 80, 40)
            start = time.perf_counter()
            solve(scores, costs, {n: budgets[n] for n in names})
            times.append(time.perf_counter() - start)
        print(
            f"  budgets={','.join(names):<24} median {np.median(times):.3f} s  max {max(times):.3f} s"
        )


def bench_e2e() -> None:
    from curation.teacher.paths import resolve_model
    from hardware_opt.parent import load_model, load_tokenizer
    from hardware_opt.puzzle import PuzzleParams, run_puzzle

    path = resolve_model("embedded")
    torch.manual_seed(0)
    start = time.perf_counter()
    _, report = run_puzzle(
        load_model(path), load_tokenizer(path), PuzzleParams(budgets={"params": 0.6})
    )
    uniform = report["uniform_baseline"]
    print(f"Puzzle on the embedded teacher, params <= 60% ({time.perf_counter() - start:.0f} s)")
    for layer in report["layers"]:
        print(
            f"  layer {layer['layer']}: attention {layer['attention']['block']}, ffn {layer['ffn']['block']}"
        )
    ratio = report["child_costs"]["params"] / report["parent_costs"]["params"]
    print(
        f"  puzzle child : params {ratio:.3f} of parent, KL {report['child_quality']['kl']:.4f}, "
        f"LM loss {report['child_quality']['lm_loss']:.4f}"
    )
    print(
        f"  uniform {'+'.join(uniform['blocks'])}: KL {uniform['kl']:.4f}, LM loss {uniform['lm_loss']:.4f}"
    )
    print(
        f"  parent LM loss {report['parent_quality']['lm_loss']:.4f}; "
        f"KL ratio uniform/puzzle {uniform['kl'] / report['child_quality']['kl']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--e2e", action="store_true", help="also run Puzzle on the embedded teacher"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for --e2e")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_mip(args.repeats)
    if args.e2e:
        bench_e2e()


if __name__ == "__main__":
    main()
