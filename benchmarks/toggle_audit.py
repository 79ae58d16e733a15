"""Toggle-compliance audit before and after training on the embedded default (issue #11).

    .venv/bin/python benchmarks/toggle_audit.py --out /tmp/toggle_audit   # ~60 min on 2 busy cores
    .venv/bin/python benchmarks/toggle_audit.py --out /tmp/ta --quick     # tiny sizes, checks the script
    .venv/bin/python benchmarks/toggle_audit.py --out /tmp/toggle_audit --steps rloo --rloo-seeds 1

Every number is `training.audit.toggle_audit` (greedy, `--max-tokens` new tokens; the in-trainer
audits always use 320) on held-out tinyworld
prompts (eval seed 12345, the families in turn) or on `filters.constrained_prompts` (seed
12345, "ifeval"; those rows also give the share of answers meeting all their constraints, per
toggle). Steps (`--steps`; each writes OUT/results/STEP.json, and the table is printed from
every result present; a run dir with a summary.json and an audit already in OUT/audits are
reused, so a rerun resumes):

- `embedded`: the embedded teacher, both prompt sets;
- `sft`: `thinkmix build curation/recipes/math.yaml` into OUT/store (`--math-count` problems),
  then `train_sft` of a fresh student (SFTRunConfig defaults, seed 0, `--sft-steps`) with the
  in-trainer audit (`audit_prompts`: tinyworld, before and after), then an ifeval audit of the
  checkpoint; `--gold` also trains the same student on balanced tinyworld gold (both toggles);
- `rloo`: the RLOO evidence config of docs/training.md (128 constrained prompts of seed 0,
  reasoning off, 24 steps x 4 prompts x 4 completions, lr 2e-4, 64 tokens, rewards instruction
  + format) from the embedded teacher per `--rloo-seeds`, the first seed with the in-trainer
  audit, then an ifeval audit of each checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from curation.store import Store
from training.audit import audit_prompts, headline, toggle_audit

STEPS = ("embedded", "sft", "rloo")
EMBEDDED = "embedded"


def _audit(model: str, data: str, n: int, max_tokens: int, out: Path, name: str) -> dict:
    """A full audit of a model dir (or "embedded"); every answer goes to OUT/audits/NAME.json
    (an audit already there is reused: rerunning the script resumes)."""
    path = out / "audits" / f"{name}.json"
    if path.exists():
        report = json.loads(path.read_text())
    else:
        report = toggle_audit(model, audit_prompts(data, n), max_tokens, keep_rows=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
    row = {"data": data, "prompts": report["prompts"], **headline(report),
           "on_truncated": report["on"]["truncated"], "seconds": report["seconds"]}  # fmt: skip
    if "instructions" in report:
        row["pass_on"] = report["instructions"]["on"]
        row["pass_off"] = report["instructions"]["off"]
    print(f"  audit {name}: {json.dumps(row)}", flush=True)
    return row


def _trained(run_dir: Path, train: Any) -> dict:
    """A training run's summary: RUN/summary.json when the run finished before, else `train()`."""
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.exists() else train()


def _trainer_rows(summary: dict, n: int, label: str) -> list[dict]:
    """The in-trainer audit's begin/end results as table rows (tinyworld prompts)."""
    rows = []
    for result in summary["toggle_audit"]:
        if result["when"] not in ("begin", "end"):
            continue
        row = {k: v for k, v in result.items() if k not in ("step", "when")}
        when = "before" if result["when"] == "begin" else f"after ({result['step']} steps)"
        rows.append({"model": f"{label}, {when}", "data": "tinyworld", "prompts": n, **row})
    return rows


def _thinkmix() -> str:
    return str(Path(sys.executable).parent / "thinkmix")


def step_embedded(args: argparse.Namespace) -> list[dict]:
    rows = []
    for data, n in (("tinyworld", args.prompts), ("ifeval", args.ifeval_prompts)):
        row = _audit(EMBEDDED, data, n, args.max_tokens, args.out, f"embedded-{data}")
        rows.append({"model": "embedded teacher", **row})
    return rows


def _math_blend(args: argparse.Namespace, store_dir: Path) -> str:
    """The math blend: the newest `math` version in the store, else `thinkmix build` it."""
    store = Store(store_dir)
    try:
        dataset, version = store.resolve("math")
        return f"{dataset}/{version}"
    except Exception:
        pass
    cmd = [_thinkmix(), "build", "curation/recipes/math.yaml", "--store", str(store_dir),
           "--no-stats", "--set", f"sources.0.count={args.math_count}"]  # fmt: skip
    built = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return built.stdout.strip().splitlines()[-1]


def step_sft(args: argparse.Namespace) -> list[dict]:
    """A fresh student (seed 0) SFT'd on the math blend, with the in-trainer audit (before and
    after); the same student on tinyworld gold, audited after (its "before" is the same
    fresh student); an ifeval audit of each checkpoint."""
    from training.data import write_tinyworld_version
    from training.sft import train_sft
    from training.sft_config import SFTRunConfig

    store_dir = args.out / "store"
    store = Store(store_dir)
    gold = "tinyworld-gold/audit-gold"
    if args.gold:
        try:
            store.resolve(gold)
        except Exception:
            write_tinyworld_version(store, "audit-gold", per_family=args.gold_per_family, seed=0)
    rows = []
    runs = [("math", "math blend", _math_blend(args, store_dir), args.prompts)]
    if args.gold:
        runs.append(("gold", "tinyworld gold", gold, 0))
    for tag, name, ref, in_trainer in runs:
        records = store.read_records(ref)
        toggles = {t: sum(r.reasoning == t for r in records) for t in ("on", "off")}
        print(f"  {name} {ref}: {len(records)} rows, {toggles}", flush=True)
        config = SFTRunConfig(max_steps=args.sft_steps, seed=0, audit_prompts=in_trainer,
                              logging_steps=10)  # fmt: skip
        run_dir = args.out / f"sft-{tag}"
        summary = _trained(run_dir, lambda: train_sft(store, ref, run_dir, config))  # noqa: B023
        label = f"fresh student, SFT seed 0 on {name} ({toggles['on']} on / {toggles['off']} off)"
        steps = summary["stages"][0]["steps"]
        rows += _rows_after(args, summary, label, f"sft-{tag}", in_trainer, steps)
    return rows


def step_rloo(args: argparse.Namespace) -> list[dict]:
    from training.rloo import train_rloo, write_constrained_version
    from training.rloo_config import RLOORunConfig

    store = Store(args.out / "store")
    ref = "ifeval-prompts/audit-v1"
    try:
        store.resolve(ref)
    except Exception:
        write_constrained_version(store, "audit-v1", 128, seed=0)
    rows = []
    for i, seed in enumerate(args.rloo_seeds):
        # the in-trainer audit for the first seed only: every seed's "before" is the embedded
        # teacher (the first one checks that the trainer's decoding matches the model-dir one)
        in_trainer = args.prompts if i == 0 else 0
        config = RLOORunConfig(max_steps=args.rloo_steps, learning_rate=2e-4,
                               max_completion_length=64, seed=seed, audit_prompts=in_trainer)  # fmt: skip
        run_dir = args.out / f"rloo-s{seed}"
        summary = _trained(run_dir, lambda: train_rloo(store, ref, EMBEDDED, run_dir, config))  # noqa: B023
        label = f"RLOO from embedded, seed {seed}"
        after = _rows_after(args, summary, label, f"rloo-s{seed}", in_trainer, summary["steps"])
        after[-1]["train_rewards"] = summary["rewards"]
        rows += after
    return rows


def _rows_after(
    args: argparse.Namespace, summary: dict, label: str, tag: str, in_trainer: int, steps: int
) -> list[dict]:
    """A trained run's rows: its tinyworld audit (the trainer's own before/after when it ran
    one, else a fresh one on the checkpoint), then an ifeval audit of the checkpoint."""
    if in_trainer:
        rows = _trainer_rows(summary, args.prompts, label)
    else:
        row = _audit(summary["checkpoint"], "tinyworld", args.prompts, args.max_tokens,
                     args.out, f"{tag}-tinyworld")  # fmt: skip
        rows = [{"model": f"{label}, after ({steps} steps)", **row}]
    row = _audit(summary["checkpoint"], "ifeval", args.ifeval_prompts, args.max_tokens,
                 args.out, f"{tag}-ifeval")  # fmt: skip
    return [*rows, {"model": f"{label}, after", **row}]


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def table(out: Path) -> str:
    lines = [
        "| model | data | N | on: well-formed think | off: think tags | off: leakage | "
        "off/on answer length | constraints met on / off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step in STEPS:
        path = out / "results" / f"{step}.json"
        if not path.exists():
            continue
        for r in json.loads(path.read_text()):
            met = f"{_fmt(r['pass_on'])} / {_fmt(r['pass_off'])}" if "pass_on" in r else ""
            lines.append(
                f"| {r['model']} | {r['data']} | {r['prompts']} | "
                f"{_fmt(r['on_think_well_formed'])} | {_fmt(r['off_think_present'])} | "
                f"{_fmt(r['off_leakage'])} | {_fmt(r['off_length_ratio_median'])} | {met} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/toggle_audit"))
    parser.add_argument("--steps", default=",".join(STEPS), help=f"some of {', '.join(STEPS)}")
    parser.add_argument("--prompts", type=int, default=40, help="tinyworld audit prompts")
    parser.add_argument("--ifeval-prompts", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--math-count", type=int, default=120, help="math.yaml problems")
    parser.add_argument(
        "--gold", action="store_true", help="also SFT the student on balanced tinyworld gold"
    )
    parser.add_argument("--gold-per-family", type=int, default=40, help="tinyworld gold tasks")
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--rloo-steps", type=int, default=24)
    parser.add_argument("--rloo-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--table", action="store_true", help="only print the table of OUT")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.quick:
        args.prompts, args.ifeval_prompts, args.max_tokens = 4, 4, 64
        args.math_count, args.gold_per_family, args.sft_steps = 8, 2, 2
        args.rloo_steps, args.rloo_seeds = 2, [0]
    if not args.table:
        (args.out / "results").mkdir(parents=True, exist_ok=True)
        for step in args.steps.split(","):
            if step not in STEPS:
                raise SystemExit(f"unknown step {step!r}; known: {', '.join(STEPS)}")
            t0 = time.monotonic()
            print(f"{step} ...", flush=True)
            rows = globals()[f"step_{step}"](args)
            path = args.out / "results" / f"{step}.json"
            path.write_text(json.dumps(rows, indent=2, default=str) + "\n")
            print(f"{step}: {time.monotonic() - t0:.0f}s -> {path}", flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
