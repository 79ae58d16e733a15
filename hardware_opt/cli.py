"""`thinkmix opt`: Puzzle block search, FFN Fusion, and a look at the resulting architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

opt_app = typer.Typer(
    help="Make models faster: Puzzle (arXiv 2411.19146), FFN Fusion (2503.18908)."
)

ThreadsOpt = Annotated[
    int,
    typer.Option("--threads", help="torch CPU threads (0 = torch default); 1 suits tiny models"),
]
ModelOpt = Annotated[
    str, typer.Option("--model", help="HF model dir, or 'embedded' for the teacher")
]
DataOpt = Annotated[
    str | None, typer.Option("--data", help="dataset version (DATASET/VERSION); default tinyworld")
]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="store root (default $THINKMIX_STORE)")
]
OutOpt = Annotated[Path, typer.Option("--out", help="directory for the exported checkpoint")]


def parse_budgets(items: list[str]) -> dict[str, float]:
    budgets = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            budgets[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(f"--budget {item!r}: expected NAME=FRACTION, e.g. params=0.6")
    return budgets


def _set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def _load(model: str):
    from curation.teacher.paths import resolve_model
    from hardware_opt.parent import load_model, load_tokenizer

    path = resolve_model(model)
    return load_model(path), load_tokenizer(path)


@opt_app.command("puzzle")
def puzzle_cmd(
    model: ModelOpt,
    out: OutOpt,
    budget: Annotated[
        list[str],
        typer.Option("--budget", help="NAME=FRACTION of the parent; params, kv_cache, latency"),
    ] = ["params=0.6"],  # noqa: B006 (typer needs a list default)
    data: DataOpt = None,
    store: StoreOpt = None,
    seq_len: Annotated[int, typer.Option(help="tokens per calibration block")] = 128,
    train_blocks: Annotated[int, typer.Option(help="calibration blocks for BLD")] = 32,
    eval_blocks: Annotated[int, typer.Option(help="held-out blocks for scoring")] = 16,
    bld_steps: Annotated[int, typer.Option(help="BLD optimiser steps per candidate")] = 60,
    workers: Annotated[int, typer.Option(help="candidates trained at once")] = 2,
    kd_steps: Annotated[int, typer.Option(help="logit-distillation steps after assembly")] = 0,
    latency_repeats: Annotated[int, typer.Option(help="timed calls per block (median)")] = 7,
    uniform_baseline: Annotated[bool, typer.Option(help="also report uniform pruning")] = True,
    threads: ThreadsOpt = 0,
) -> None:
    """Search a child architecture under the budgets and export it DeciLM-style."""
    import torch

    from hardware_opt.bld import BLDParams
    from hardware_opt.calibration import CalibrationParams
    from hardware_opt.costs import CostParams
    from hardware_opt.export import save
    from hardware_opt.mip import InfeasibleBudgetError
    from hardware_opt.puzzle import PuzzleParams, run_puzzle

    torch.manual_seed(0)
    _set_threads(threads)
    try:
        params = PuzzleParams(
            budgets=parse_budgets(budget),
            calibration=CalibrationParams(data, store, seq_len, train_blocks, eval_blocks),
            bld=BLDParams(steps=bld_steps, workers=workers),
            costs=CostParams(latency_seq=seq_len, latency_repeats=latency_repeats),
            uniform_baseline=uniform_baseline,
            kd_steps=kd_steps,
        )
        parent, tokenizer = _load(model)
        child, report = run_puzzle(parent, tokenizer, params)
    except (InfeasibleBudgetError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report["kind"], report["parent"] = "puzzle", model
    save(child, tokenizer, out, report)
    typer.echo(show_text(out))


@opt_app.command("ffn-fuse")
def ffn_fuse_cmd(
    model: ModelOpt,
    out: OutOpt,
    data: DataOpt = None,
    store: StoreOpt = None,
    drop_attention: Annotated[
        str, typer.Option(help="comma-separated layers to make attention-free first, e.g. 1,2,3")
    ] = "",
    threshold: Annotated[float, typer.Option(help="max pairwise dependency to fuse")] = 0.3,
    max_run: Annotated[int, typer.Option(help="most FFNs fused into one")] = 8,
    seq_len: Annotated[int, typer.Option(help="tokens per calibration block")] = 128,
    blocks: Annotated[int, typer.Option(help="calibration blocks")] = 16,
    threads: ThreadsOpt = 0,
) -> None:
    """Fuse runs of attention-free FFNs into one wide FFN; report KL and latency change."""
    from hardware_opt.calibration import CalibrationParams, load_blocks
    from hardware_opt.export import save
    from hardware_opt.fusion import FusionParams, run_fusion

    _set_threads(threads)
    try:
        layers = tuple(int(x) for x in drop_attention.split(",") if x.strip())
        params = FusionParams(threshold=threshold, max_run=max_run, drop_attention=layers)
        parent, tokenizer = _load(model)
        _, held = load_blocks(tokenizer, CalibrationParams(data, store, seq_len, 1, blocks))
        _, fused, report = run_fusion(parent, held, params)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report["kind"], report["parent"] = "ffn_fusion", model
    save(fused, tokenizer, out, report)
    typer.echo(show_text(out))
    typer.echo(
        f"fused {report['segments']}: KL vs unfused {report['kl_vs_unfused']:.4g}, latency "
        f"{report['latency_ms_unfused']:.2f} -> {report['latency_ms_fused']:.2f} ms"
    )


def show_text(path: Path) -> str:
    """The architecture per layer with params and KV bytes; latency/KL from the report if any."""
    from hardware_opt.costs import model_costs
    from hardware_opt.modeling import DeciConfig

    config = DeciConfig.from_pretrained(path)
    report_file = path / "hardware_opt.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    measured = report.get("layers", [])
    lines = [f"{path}: {config.num_hidden_layers} layers, hidden {config.hidden_size}"]
    lines.append(
        f"{'layer':>5}  {'attention':<14} {'ffn':<16} {'params':>10} {'kv B/tok':>9} {'ms':>7}"
    )
    for i, cost in enumerate(model_costs(config)):
        block = config.block(i)
        ms = ""
        if i < len(measured):
            ms = f"{measured[i]['attention']['latency'] + measured[i]['ffn']['latency']:.3f}"
        lines.append(
            f"{i:>5}  {_attn_name(block.attention):<14} {_ffn_name(block.ffn):<16} "
            f"{cost['attn_params'] + cost['ffn_params']:>10} {cost['kv_cache']:>9} {ms:>7}"
        )
    for key in ("parent_costs", "child_costs", "child_quality", "uniform_baseline"):
        if report.get(key):
            lines.append(f"{key}: {json.dumps(report[key], sort_keys=True)}")
    return "\n".join(lines)


def _attn_name(cfg) -> str:
    if cfg.no_op:
        return "no_op"
    if cfg.replace_with_linear:
        return "linear"
    return f"gqa/{cfg.n_heads_in_group}"


def _ffn_name(cfg) -> str:
    if cfg.no_op:
        return "no_op"
    if cfg.replace_with_linear:
        return "linear"
    return f"swiglu {cfg.intermediate_size}"


@opt_app.command("show")
def show_cmd(
    path: Annotated[Path, typer.Argument(help="an exported checkpoint directory")],
) -> None:
    """Print the chosen architecture per layer with its costs."""
    if not (path / "config.json").is_file():
        typer.echo(
            f"error: {path} has no config.json (pass a directory written by `opt`)", err=True
        )
        raise typer.Exit(2)
    typer.echo(show_text(path))
