"""Throughput of the code sandbox and of math-verify on this machine. Prints numbers; not a test.

.venv/bin/python benchmarks/sandbox.py [--runs 40] [--checks 400]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from curation.record import Record
from filters.math import MathVerify
from filters.sandbox import Limits, run_python

TRIVIAL = "print(sum(range(100)))\n"


def sandbox_rate(runs: int, workers: int) -> float:
    limits = Limits()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda _: run_python(TRIVIAL, limits), range(runs)))
    elapsed = time.perf_counter() - started
    assert all(r.stdout == "4950\n" for r in results), "the trivial program must succeed"
    return runs / elapsed


def math_pairs(count: int, seed: int = 0) -> list[Record]:
    """Gold/answer pairs in equal-but-differently-written and wrong forms."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        p, q = rng.randint(1, 9), rng.randint(2, 9)
        gold, answer = rng.choice(
            [
                (f"\\frac{{{p}}}{{{q}}}", f"{p}/{q}"),
                (str(p * q), f"{p * q}.0"),
                (f"{p / q:.6f}", f"\\frac{{{p}}}{{{q}}}"),
                (f"x^{p}", f"x**{p}"),
                (str(p), str(p + 1)),
            ]
        )
        record = Record(id=str(i), input=[], expected_answer=gold)
        record.meta["answer"] = answer
        records.append(record)
    return records


def math_verify_rate(checks: int) -> float:
    stage = MathVerify()
    records = math_pairs(checks)
    stage.judge(math_pairs(10, seed=1))  # warm up: sympy and the parsers load once
    started = time.perf_counter()
    stage.judge(records)
    return checks / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="sandbox runs per measurement")
    parser.add_argument("--checks", type=int, default=400, help="math-verify checks")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"os.cpu_count() = {cores}")
    sandbox_rate(4, 1)  # warm the page cache
    serial = sandbox_rate(args.runs, 1)
    print(f"sandbox, trivial program, serial:          {serial:7.1f} runs/s")
    for workers in sorted({cores, 2 * cores}):
        rate = sandbox_rate(args.runs, workers)
        print(f"sandbox, trivial program, {workers:2d} threads:      {rate:7.1f} runs/s")
    print(
        f"math-verify checks (MathVerify.judge), 1 process: {math_verify_rate(args.checks):7.1f} /s"
    )


if __name__ == "__main__":
    main()
