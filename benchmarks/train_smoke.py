"""Training smoke benchmark on the embedded default: SFT a fresh tiny student, then GRPO it.

    .venv/bin/python benchmarks/train_smoke.py --out /tmp/train_smoke          # ~25 min on 2 busy cores
    .venv/bin/python benchmarks/train_smoke.py --out /tmp/ts --quick           # ~2 min

Steps (fixed seeds; every number is held-out tinyworld accuracy, greedy, seed 12345):
1. a clean SFT version of tinyworld gold solutions (both toggles, seed 0) written to the store;
2. eval of the untrained student (random init, the teacher's tokenizer);
3. `train_sft` of that student -> eval (accuracy per family x toggle, think-tag compliance);
4. a prompt version (tinyworld, seed 7), then `train_grpo` from the SFT checkpoint (or, with
   `--grpo-model embedded`, from the embedded teacher, itself an SFT model) twice with the same
   budget: curriculum (easy -> hard) and uniform sampling (GRPO seed 0) -> eval both.
Writes OUT/report.json and prints a table, then one line per GRPO run: held-out accuracy and
format compliance before -> after, the seeds, steps, kept prompts and wall time.

`--grpo-family math` is the GRPO evidence on one family instead (docs/training.md): GRPO from
`--grpo-model` on that family's tinyworld prompts (seed 7) with reasoning on, then greedy
accuracy on `--heldout-n` held-out tasks of the family (seed `--heldout-seed`) before and after,
with the binomial and the paired (same tasks) standard errors:

    .venv/bin/python benchmarks/train_smoke.py --out /tmp/grpo_math --grpo-family math \
        --grpo-model embedded --grpo-prompts 48 --grpo-steps 12 --grpo-lr 2e-5 --grpo-seeds 0,1

`--grpo-model DIR` starts from a model dir instead, e.g. a student SFT'd on the math blend:

    .venv/bin/thinkmix build curation/recipes/math.yaml --store /tmp/h5store \
        --set sources.0.count=400 --set stages.multi_sample.samples_off=0
    .venv/bin/thinkmix train sft --data math --store /tmp/h5store --model fresh \
        --out /tmp/sft_math --set max_steps=300
    .venv/bin/python benchmarks/train_smoke.py --out /tmp/grpo_sft --grpo-family math \
        --grpo-model /tmp/sft_math/checkpoint --grpo-prompts 48 --grpo-steps 12 --grpo-lr 2e-5
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from curation.store import Store
from training.data import write_tinyworld_version
from training.evaluate import evaluate_model, family_accuracy, overall, paired_difference
from training.grpo import train_grpo
from training.grpo_config import GRPORunConfig
from training.sft import train_sft
from training.sft_config import SFTRunConfig
from training.student import fresh_student, load_tokenizer, save_checkpoint


def _eval(model: str, per_family: int) -> dict:
    report = evaluate_model(model, per_family=per_family)
    return {"accuracy": report["accuracy"], "format": report["format"],
            "mean_accuracy": overall(report), "mean_format": overall(report, "format")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/train_smoke"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--sft-rows", type=int, default=500, help="gold tasks per family")
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--grpo-steps", type=int, default=15)
    parser.add_argument("--grpo-prompts", type=int, default=12, help="per family")
    # 50 per family x toggle: at 20 the same SFT checkpoint read 0.169 and, at 50, 0.128
    parser.add_argument("--eval-per-family", type=int, default=50)
    parser.add_argument("--grpo-lr", type=float, default=5e-5)
    parser.add_argument(
        "--grpo-model",
        default="sft",
        help="GRPO's starting policy: sft (the SFT student), embedded (the embedded teacher) "
        "or a model dir (e.g. a `thinkmix train sft` run's checkpoint)",
    )
    parser.add_argument("--grpo-reasoning", default="both", help="on, off, row or both")
    parser.add_argument(
        "--grpo-only", action="store_true", help="reuse OUT's store and SFT run; rerun GRPO only"
    )
    parser.add_argument("--grpo-family", choices=("math", "code", "mcq", "instruct"),
                        help="GRPO on this family alone, evaluated on --heldout-n of its tasks")  # fmt: skip
    parser.add_argument("--grpo-seeds", default="0", help="comma-separated GRPO seeds")
    parser.add_argument("--heldout-n", type=int, default=400)
    parser.add_argument("--heldout-seed", type=int, default=12345)
    args = parser.parse_args()
    if args.grpo_family:
        return grpo_family(args)
    if args.quick:
        args.sft_rows, args.sft_steps, args.grpo_steps = 20, 10, 2
        args.grpo_prompts, args.eval_per_family, args.hidden, args.layers = 2, 2, 32, 1
    if args.grpo_only:
        return grpo_only(args)
    shutil.rmtree(args.out, ignore_errors=True)
    store = Store(args.out / "store")
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    t0 = time.monotonic()

    sft_ref = write_tinyworld_version(store, "gold-v1", per_family=args.sft_rows, seed=0, shards=4)
    sft_cfg = SFTRunConfig(max_steps=args.sft_steps, batch_size=32, learning_rate=3e-3,
                           student_hidden=args.hidden, student_layers=args.layers, logging_steps=25)  # fmt: skip
    untrained = args.out / "untrained"
    save_checkpoint(
        fresh_student(sft_cfg.student_hidden, sft_cfg.student_layers, sft_cfg.student_heads, 0),
        load_tokenizer(),
        untrained,
    )
    report["untrained"] = _eval(str(untrained), args.eval_per_family)
    print("untrained", report["untrained"]["mean_accuracy"], flush=True)

    sft = train_sft(store, sft_ref, args.out / "sft", sft_cfg)
    report["sft"] = {"summary": sft, "eval": _eval(sft["checkpoint"], args.eval_per_family)}
    print("sft", report["sft"]["eval"]["mean_accuracy"], report["sft"]["eval"]["mean_format"],
          flush=True)  # fmt: skip

    prompts = write_tinyworld_version(store, "prompts-v1", per_family=args.grpo_prompts, seed=7,
                                      outputs=False)  # fmt: skip
    start = sft["checkpoint"] if args.grpo_model == "sft" else args.grpo_model
    before = (
        report["sft"]["eval"] if args.grpo_model == "sft" else _eval(start, args.eval_per_family)
    )
    report["grpo_start"] = {"model": start, "eval": before}
    for name, curriculum in (("grpo_curriculum", True), ("grpo_uniform", False)):
        run = train_grpo(store, prompts, start, args.out / name, _grpo_config(args, curriculum))
        report[name] = {"summary": run, "eval": _eval(run["checkpoint"], args.eval_per_family)}
        print(name, report[name]["eval"]["mean_accuracy"], report[name]["eval"]["mean_format"],
              flush=True)  # fmt: skip
    report["seconds"] = round(time.monotonic() - t0, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    for name in ("untrained", "sft", "grpo_curriculum", "grpo_uniform"):
        ev = report[name] if name == "untrained" else report[name]["eval"]
        print(f"{name:<16} acc {ev['mean_accuracy']}  format {ev['mean_format']}")
        for family, row in ev["accuracy"].items():
            print(f"    {family:<9} acc on {row['on']:.2f} off {row['off']:.2f}   format on "
                  f"{ev['format'][family]['on']:.2f} off {ev['format'][family]['off']:.2f}")  # fmt: skip
    for name in ("grpo_curriculum", "grpo_uniform"):
        _print_grpo(name, before, report[name])
    print(f"total {report['seconds']}s -> {args.out / 'report.json'}")


def _grpo_config(args: argparse.Namespace, curriculum: bool) -> GRPORunConfig:
    """GRPORunConfig's defaults (pre-filter drops pass rates 0 and >= 0.75, sampled as the
    rollouts are) with the benchmark's budget; completions of 256 characters so that math
    traces are not truncated (a truncated completion earns no reward)."""
    return GRPORunConfig(max_steps=args.grpo_steps, num_generations=8, prompts_per_step=4,
                         learning_rate=args.grpo_lr, curriculum=curriculum,
                         reasoning=args.grpo_reasoning, max_completion_length=256, seed=0,
                         # --quick's barely trained student solves nothing: keep its prompts
                         drop_pass_rate_at_or_below=None if args.quick else 0.0)  # fmt: skip


def _print_grpo(name: str, before: dict, run: dict) -> None:
    """One line: held-out accuracy and format before -> after, and what the run was."""
    after, summary = run["eval"], run["summary"]
    print(f"{name:<16} held-out acc {before['mean_accuracy']['all']:.3f} -> "
          f"{after['mean_accuracy']['all']:.3f}  format {before['mean_format']['all']:.3f} -> "
          f"{after['mean_format']['all']:.3f}  (grpo seed 0, eval seed 12345, prompts seed 7; "
          f"{summary['steps']} steps, {summary['prefilter']['kept']} prompts kept, "
          f"train {summary['train_seconds']}s, pre-filter {summary['prefilter']['seconds']}s; "
          f"train reward {summary['rewards']})", flush=True)  # fmt: skip


def grpo_only(args: argparse.Namespace) -> None:
    """GRPO curriculum vs uniform from OUT/sft's checkpoint, on OUT's prompt version."""
    store = Store(args.out / "store")
    start = str(args.out / "sft" / "checkpoint") if args.grpo_model == "sft" else args.grpo_model
    tag = f"{_model_tag(args.grpo_model)}-s{args.grpo_steps}-lr{args.grpo_lr:g}"
    report: dict = {"start": {"model": start, "eval": _eval(start, args.eval_per_family)}}
    for name, curriculum in (("curriculum", True), ("uniform", False)):
        run = train_grpo(store, "tinyworld-gold/prompts-v1", start,
                         args.out / f"grpo_{name}_{tag}", _grpo_config(args, curriculum))  # fmt: skip
        report[name] = {"summary": run, "eval": _eval(run["checkpoint"], args.eval_per_family)}
        _print_grpo(f"{name} {tag}", report["start"]["eval"], report[name])
    path = args.out / f"report_grpo_{tag}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _model_tag(model: str) -> str:
    """sft / embedded, or a model dir's name (its parent's for a `checkpoint` dir)."""
    if model in ("sft", "embedded"):
        return model
    path = Path(model)
    return path.parent.name if path.name == "checkpoint" else path.name


def _family_version(store: Store, family: str, count: int, seed: int) -> str:
    """`count` tinyworld prompts of one family (no outputs) as a version of its own."""
    from training.data import TINYWORLD_GOLD, tinyworld_records

    rows = [r for r in tinyworld_records(count, seed, outputs=False) if r.meta["family"] == family]
    version = f"{family}-prompts-s{seed}-n{count}"
    staging = store.staging(TINYWORLD_GOLD, version)
    staging.mark_done(0, [staging.write_shard("train", 0, rows)])
    staging.commit({"recipe": {"source": "benchmarks/train_smoke.py", "family": family,
                               "count": count, "seed": seed}})  # fmt: skip
    return f"{TINYWORLD_GOLD}/{version}"


def grpo_family(args: argparse.Namespace) -> None:
    """GRPO on one family's prompts (reasoning on); held-out accuracy of that family before and
    after, on the same `--heldout-n` tasks (seed `--heldout-seed`), one run per GRPO seed."""
    if args.grpo_model == "sft":
        raise SystemExit("--grpo-family trains no SFT student: --grpo-model embedded or DIR")
    if args.grpo_model != "embedded" and not Path(args.grpo_model).is_dir():
        raise SystemExit(f"--grpo-model {args.grpo_model}: not a model dir")
    if (
        args.grpo_model != "embedded"
        and args.out.resolve() in Path(args.grpo_model).resolve().parents
    ):
        raise SystemExit(f"--grpo-model {args.grpo_model} is under --out, which is rewritten")
    shutil.rmtree(args.out, ignore_errors=True)
    store = Store(args.out / "store")
    ref = _family_version(store, args.grpo_family, args.grpo_prompts, seed=7)
    start = args.grpo_model
    evaluate = dict(family=args.grpo_family, toggle="on", n=args.heldout_n, seed=args.heldout_seed)
    before = family_accuracy(start, **evaluate)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "start": before}
    print(f"start {start}: {_accuracy_line(before)}", flush=True)
    for seed in (int(x) for x in args.grpo_seeds.split(",")):
        config = GRPORunConfig(reasoning="on", max_steps=args.grpo_steps, num_generations=8,
                               prompts_per_step=4, learning_rate=args.grpo_lr, curriculum=False,
                               prefilter_samples=4, max_completion_length=160, seed=seed)  # fmt: skip
        run = train_grpo(store, ref, start, args.out / f"grpo_seed{seed}", config)
        after = family_accuracy(run["checkpoint"], **evaluate)
        paired = paired_difference(before, after)
        report[f"grpo_seed{seed}"] = {"summary": run, "eval": after, "paired": paired}
        print(f"grpo seed {seed}: {_accuracy_line(after)}; after - before {paired['diff']:+.3f} "
              f"(paired se {paired['stderr']:.3f}; {paired['gained']} tasks gained, "
              f"{paired['lost']} lost); {run['steps']} steps, {run['prefilter']['kept']}/"
              f"{run['prefilter']['prompts']} prompts kept, train {run['train_seconds']}s; "
              f"train reward {run['rewards']}", flush=True)  # fmt: skip
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def _accuracy_line(ev: dict) -> str:
    return (f"held-out {ev['family']} (reasoning {ev['toggle']}, n {ev['n']}, seed {ev['seed']}) "
            f"accuracy {ev['accuracy']:.3f} (se {ev['stderr']:.3f}), format {ev['format']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
