r"""Re-filtering public Llama-Nemotron SFT rows: `thinkmix build` vs a datatrove pipeline.

Writes `--rows` seeded rows of the public Llama-Nemotron-Post-Training-Dataset SFT jsonl layout
(`input`, `output`, `category`, `license`, `reasoning`, `generator`, `used_in_training`,
`version`, `system_prompt`), like its math split: reasoning on (DeepSeek-R1, a `<think>` trace
then a boxed answer) or off (Qwen2.5-Math, a boxed answer), with defects at `--defect-rate`
each: a `<think>` never closed (a cut-off trace), a repetition loop, `<think>` tags in a
reasoning-off row, a math answer without `\boxed{}`. Every prompt is distinct (see the note on
ids below). The same rows go to one jsonl file and, for datatrove's parallel run, 16 part files.

Then times, each in a fresh store / output folder, as a child process:

- `thinkmix build` of a recipe with a `jsonl` source (`layout: nemotron`) and the stages
  `filters.think_format`, `filters.quality`, `filters.boxed_answer` (defaults), at 1 and 16
  shards (`--shards`), through the public CLI, so it measures whatever engine the tree holds;
- datatrove's `LocalPipelineExecutor` running the same three checks as `BaseFilter`s
  (`_datatrove_refilter.py`, from a throw-away venv: `--peer-python`) with a `JsonlWriter`
  exclusion writer each, on the one file (1 task: datatrove splits work by file) and on the 16
  part files (16 tasks, 2 workers). Its writers are uncompressed, as the input is.

Per run: wall time, peak RSS of the process tree (the sum over the child and its descendants,
sampled every 50 ms), the largest single process's RSS (`wait4`), kept and rejected counts
(thinkmix from `thinkmix show VERSION --json`) and the rejects per reason side by side. Targets:
wall time <= datatrove's; 16 shards <= 1.15x one shard; peak RSS <= 500 MB at 1M rows, flat in N
(`--rows 200000,1000000` runs both sizes and prints the ratio).

`filters.boxed_answer` has no category switch (it checks every row it sees), so the rows are all
`category: math`, like the public math split. The `nemotron` layout ids a row by its prompt and
generator only, so two samples of one prompt from one generator collide (the second is rejected
as `duplicate_id`); the rows here have distinct prompts so that the counts compare.

    python -m venv /tmp/peers && /tmp/peers/bin/pip install datatrove orjson regex
    .venv/bin/python benchmarks/refilter.py --peer-python /tmp/peers/bin/python [--rows 200000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DATATROVE = Path(__file__).with_name("_datatrove_refilter.py")
PARTS = 16
DEFECTS = ("unclosed_think", "repetition_loop", "think_when_off", "missing_boxed")
# Words of the sentence pool (the pool, and so the rows, depend on this exact list and order).
# fmt: off
WORDS = (
    "so", "then", "we", "have", "the", "sum", "of", "and", "product", "term", "equals", "divide",
    "by", "multiply", "each", "side", "subtract", "add", "note", "that", "since", "gives", "check",
    "again", "wait", "let", "me", "recompute", "this", "value", "factor", "square", "root",
    "integer", "remainder", "modulo", "prime", "even", "odd", "case", "first", "second", "next",
    "hence", "therefore", "total", "number", "ways", "choose", "count", "fraction", "simplify",
    "common", "denominator",
)
# fmt: on
RECIPE = """\
name: refilter
description: Re-filter public Llama-Nemotron SFT rows (benchmarks/refilter.py).
sources:
  - {type: jsonl, path: single/rows.jsonl, layout: nemotron}
stages:
  - {type: filters.think_format}
  - {type: filters.quality}
  - {type: filters.boxed_answer}
shards: 1
seed: 0
"""


# ---------------------------------------------------------------- data


def sentence_pool(rng: random.Random, size: int = 4096) -> list[str]:
    """Sentences of math-ish words and numbers; drawing a few per row keeps repeats rare."""
    return [
        " ".join(rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randint(0, 999))
                 for _ in range(rng.randint(8, 16))).capitalize() + "."
        for _ in range(size)
    ]  # fmt: skip


def make_row(i: int, rng: random.Random, pool: list[str], rate: float) -> tuple[dict, str]:
    """One row and the defect it carries ("" for none)."""
    on = rng.random() < 0.6
    answer = str(rng.randint(0, 9999))
    problem = f"Problem {i}: {' '.join(rng.choices(pool, k=rng.randint(1, 3)))}"
    prompt = f"{problem} Please reason step by step, and put your final answer within \\boxed{{}}."
    solution = " ".join(rng.choices(pool, k=rng.randint(2, 8)))
    final = f"The final answer is \\boxed{{{answer}}}."
    trace = "\n".join(rng.choices(pool, k=rng.randint(6, 40)))
    draw, defect = rng.random(), ""
    for k, name in enumerate(DEFECTS):
        if rate * k <= draw < rate * (k + 1):
            defect = name
    if defect == "think_when_off" and on or defect == "unclosed_think" and not on:
        defect = ""  # these defects exist for one toggle only
    if defect == "missing_boxed":
        final = f"The final answer is {answer}."
    if defect == "repetition_loop":
        trace += "\n" + "\n".join([rng.choice(pool)] * rng.randint(30, 60))
    if on:
        output = f"<think>\n{trace}\n</think>\n\n{solution}\n\n{final}"
        if defect == "unclosed_think":
            output = f"<think>\n{trace}"  # cut off at max_tokens mid-trace
    elif defect == "repetition_loop":
        output = f"{solution}\n{trace}\n\n{final}"
    elif defect == "think_when_off":
        output = f"<think>\n{trace}\n</think>\n\n{solution}\n\n{final}"
    else:
        output = f"{solution}\n\n{final}"
    row = {
        "input": [{"role": "user", "content": prompt}],
        "output": output,
        "category": "math",
        "license": "cc-by-4.0",
        "reasoning": "on" if on else "off",
        "generator": "DeepSeek-R1" if on else "Qwen-2.5-Math-7B-Instruct",
        "used_in_training": "Ultra, Super, Nano",
        "version": "v1.1",
        "system_prompt": f"detailed thinking {'on' if on else 'off'}",
    }
    return row, defect


def write_rows(folder: Path, rows: int, seed: int, rate: float) -> Counter[str]:
    """`folder/single/rows.jsonl` and `folder/parts/part-KK.jsonl`; returns the defect counts."""
    done = folder / "defects.json"
    if done.exists():
        return Counter(json.loads(done.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "single").mkdir(parents=True)
    (folder / "parts").mkdir()
    rng = random.Random(seed)
    pool = sentence_pool(rng)
    defects: Counter[str] = Counter()
    parts = [(folder / "parts" / f"part-{k:02d}.jsonl").open("w") for k in range(PARTS)]
    with (folder / "single" / "rows.jsonl").open("w") as single:
        for i in range(rows):
            row, defect = make_row(i, rng, pool, rate)
            defects[defect or "clean"] += 1
            line = json.dumps(row) + "\n"
            single.write(line)
            parts[i % PARTS].write(line)
    for part in parts:
        part.close()
    (folder / "recipe.yaml").write_text(RECIPE)
    done.write_text(json.dumps(defects))
    return defects


# ---------------------------------------------------------------- measuring


def measure(command: list[str], log: Path, cwd: Path = ROOT) -> tuple[float, int, int]:
    """(wall s, peak RSS of the process tree, largest single process's RSS) of one command."""
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            parent = psutil.Process(proc.pid)
            while not stop.is_set():
                try:
                    tree = [parent, *parent.children(recursive=True)]
                except psutil.NoSuchProcess:
                    return
                total = 0
                for p in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += p.memory_info().rss
                peak[0] = max(peak[0], total)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        sys.exit(f"{' '.join(command[:6])} ... failed ({proc.returncode}):\n{tail}")
    return wall, peak[0], usage.ru_maxrss * 1024


def run_thinkmix(data: Path, shards: int, work: Path) -> dict:
    store = work / f"thinkmix-{shards}"
    shutil.rmtree(store, ignore_errors=True)
    cli = [sys.executable, "-m", "curation.cli"]
    command = [*cli, "build", str(data / "recipe.yaml"), "--shards", str(shards)]
    command += ["--store", str(store), "--cache", str(store / "cache.sqlite"), "--no-stats"]
    log = work / f"thinkmix-{shards}.log"
    wall, tree, single = measure(command, log)
    version = log.read_text().strip().splitlines()[-1].strip()
    shown = subprocess.run(
        [*cli, "show", version, "--json", "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifest = json.loads(shown.stdout)
    reasons: Counter[str] = Counter()
    for stage in manifest["stages"]:
        reasons.update(stage["reasons"])
    seconds = {s["name"]: s["seconds"] for s in manifest["stages"]}
    kept = manifest["splits"]["train"]
    shutil.rmtree(store, ignore_errors=True)
    return {"wall": wall, "tree": tree, "single": single, "kept": kept, "reasons": reasons,
            "seconds": seconds}  # fmt: skip


def run_datatrove(python: str, data: Path, tasks: int, workers: int, work: Path) -> dict:
    out = work / f"datatrove-{tasks}"
    shutil.rmtree(out, ignore_errors=True)
    source = data / ("single" if tasks == 1 else "parts")
    command = [python, str(DATATROVE), str(source), str(out), "--tasks", str(tasks)]
    command += ["--workers", str(workers)]
    log = work / f"datatrove-{tasks}.log"
    wall, tree, single = measure(command, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "tree": tree, "single": single, "kept": result["kept"],
            "reasons": Counter(result["rejected"])}  # fmt: skip


def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def report(rows: int, results: dict[str, dict]) -> None:
    print(f"{'':24}  {'wall':>8}  {'peak RSS (tree)':>15}  {'max process':>11}  "
          f"{'kept':>9}  {'rejected':>9}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:24}  {r['wall']:>7.1f}s  {mb(r['tree']):>15}  {mb(r['single']):>11}  "
            f"{r['kept']:>9,}  {sum(r['reasons'].values()):>9,}"
        )
    reasons = sorted({k for r in results.values() for k in r["reasons"]})
    print("rejects by reason: " + ", ".join(
        f"{k} " + "/".join(f"{r['reasons'][k]:,}" for r in results.values()) for k in reasons
    ))  # fmt: skip
    for name, r in results.items():
        if "seconds" in r:
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in r["seconds"].items())
            print(f"{name} stage seconds (summed over shards): {stages}")
    get = results.get
    pairs = [
        ("thinkmix 1 shard / datatrove 1 task", get("thinkmix 1 shard"), get("datatrove 1 task")),
        ("thinkmix 16 shards / datatrove 16 tasks", get("thinkmix 16 shards"),
         get(f"datatrove {PARTS} tasks")),
        ("thinkmix 16 shards / 1 shard", get("thinkmix 16 shards"), get("thinkmix 1 shard")),
    ]  # fmt: skip
    for label, a, b in pairs:
        if a and b:
            print(
                f"{label}: wall {a['wall'] / b['wall']:.2f}x, peak RSS {a['tree'] / b['tree']:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default="200000", help="comma-separated sizes, e.g. 200000,1000000"
    )
    parser.add_argument("--shards", default="1,16", help="thinkmix shard counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defect-rate", type=float, default=0.03, help="share of each defect")
    parser.add_argument("--peer-python", help="a venv's python with datatrove (skipped if unset)")
    parser.add_argument("--workers", type=int, default=2, help="datatrove workers, 16-file run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/thinkmix-refilter"),
                        help="data and outputs (rows are reused across runs)")  # fmt: skip
    args = parser.parse_args()
    peaks: dict[int, int] = {}
    for rows in [int(n) for n in args.rows.split(",")]:
        data = args.work / f"rows-{rows}-seed{args.seed}-rate{args.defect_rate}"
        started = time.perf_counter()
        defects = write_rows(data, rows, args.seed, args.defect_rate)
        size = (data / "single" / "rows.jsonl").stat().st_size
        print(f"\n{rows:,} rows ({mb(size)} jsonl, written in {time.perf_counter() - started:.0f}s"
              f" or reused), defects: {dict(sorted(defects.items()))}")  # fmt: skip
        results: dict[str, dict] = {}
        for shards in [int(s) for s in args.shards.split(",")]:
            label = f"thinkmix {shards} shard{'s' if shards > 1 else ''}"
            results[label] = run_thinkmix(data, shards, args.work)
        if args.peer_python:
            results["datatrove 1 task"] = run_datatrove(args.peer_python, data, 1, 1, args.work)
            results[f"datatrove {PARTS} tasks"] = run_datatrove(
                args.peer_python, data, PARTS, args.workers, args.work
            )
        report(rows, results)
        peaks[rows] = max(r["tree"] for k, r in results.items() if k.startswith("thinkmix"))
    if len(peaks) > 1:
        low, high = min(peaks), max(peaks)
        print(f"thinkmix peak RSS {high:,} rows / {low:,} rows: {peaks[high] / peaks[low]:.2f}x")
    print("target: wall time <= datatrove's; 16 shards <= 1.15x one shard; "
          "peak RSS <= 500 MB at 1M rows, flat in N")  # fmt: skip


if __name__ == "__main__":
    main()
