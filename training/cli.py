"""`thinkmix train sft|grpo|rloo|rpo|rm|eval` and `thinkmix lineage`; mounted by `curation/cli.py`:

from training.cli import lineage, train_app
app.add_typer(train_app, name="train", help="SFT and GRPO on versioned shards.")
app.command("lineage")(lineage)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

train_app = typer.Typer(
    help="Train on store versions: SFT with the reasoning toggle, GRPO with a pass-rate "
    "curriculum, RLOO with a verifier reward, RPO against a reward model.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store root (default: $THINKMIX_STORE, else ./thinkmix-store)."),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML with config fields.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config field: --set max_steps=50.")
]


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _store(store: str | None):
    from curation.store import Store

    return Store.from_option(store)


def _quiet() -> None:
    logging.basicConfig(level=logging.WARNING, force=True)
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    disable_progress_bar()
    hf_logging.disable_progress_bar()  # keep stdout clean for --json and the printed run id


@train_app.command()
def sft(
    data: Annotated[str, typer.Option("--data", help="Version: dataset/version, id or dataset.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    store: StoreOpt = None,
    model: Annotated[
        str | None, typer.Option(help='"fresh" (a new tiny student), "embedded" or a model dir.')
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """SFT on a version: system prompt per row's toggle, loss on assistant tokens, stages."""
    from curation.store import StoreError
    from training.config_io import ConfigError, load_config, parse_overrides
    from training.sft import train_sft
    from training.sft_config import SFTRunConfig

    _quiet()
    try:
        given = {"model": model} if model is not None else {}
        cfg = load_config(SFTRunConfig, config, **parse_overrides(set_), **given)
        summary = train_sft(_store(store), data, out, cfg)
    except (ConfigError, StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for stage in summary["stages"]:
        console.print(
            f"stage {stage['name']}: {stage['rows']} rows, {stage['steps']} steps, "
            f"loss {stage['first_loss']:.3f} -> {stage['last_loss']:.3f}",
            highlight=False,
        )
    console.print(f"run {summary['run_id']} -> {summary['checkpoint']}", highlight=False)
    print(summary["run_id"])


@train_app.command()
def grpo(
    data: Annotated[str, typer.Option("--data", help="Version holding the prompts.")],
    model: Annotated[str, typer.Option("--model", help='Starting model dir (or "embedded").')],
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """GRPO: pass-rate pre-filter, accuracy + format rewards, easy -> hard curriculum."""
    from curation.store import StoreError
    from training.config_io import ConfigError, load_config, parse_overrides
    from training.grpo import train_grpo
    from training.grpo_config import GRPORunConfig

    _quiet()
    try:
        cfg = load_config(GRPORunConfig, config, **parse_overrides(set_))
        summary = train_grpo(_store(store), data, model, out, cfg)
    except (ConfigError, StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    pre = summary["prefilter"]
    console.print(
        f"pre-filter: {pre['kept']} of {pre['prompts']} prompts kept, dropped {pre['dropped']}",
        highlight=False,
    )
    for name, trend in summary["rewards"].items():
        console.print(f"{name} reward {trend['first']:.3f} -> {trend['last']:.3f}", highlight=False)
    console.print(f"run {summary['run_id']} -> {summary['checkpoint']}", highlight=False)
    print(summary["run_id"])


@train_app.command()
def rloo(
    data: Annotated[str, typer.Option("--data", help="Version holding the (constrained) prompts.")],
    model: Annotated[str, typer.Option("--model", help='Starting model dir (or "embedded").')],
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """RLOO for instruction following: verifier reward (share of constraints met) + format."""
    from curation.store import StoreError
    from training.config_io import ConfigError, load_config, parse_overrides
    from training.rloo import train_rloo
    from training.rloo_config import RLOORunConfig

    _quiet()
    try:
        cfg = load_config(RLOORunConfig, config, **parse_overrides(set_))
        summary = train_rloo(_store(store), data, model, out, cfg)
    except (ConfigError, StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{summary['prompts']} prompts, {summary['steps']} steps", highlight=False)
    for name, trend in summary["rewards"].items():
        console.print(f"{name} reward {trend['first']:.3f} -> {trend['last']:.3f}", highlight=False)
    console.print(f"run {summary['run_id']} -> {summary['checkpoint']}", highlight=False)
    print(summary["run_id"])


@train_app.command()
def rpo(
    data: Annotated[
        str,
        typer.Option("--data", help="Preference version (offline) or prompt version (--online)."),
    ],
    model: Annotated[str, typer.Option("--model", help='Starting model dir (or "embedded").')],
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    online: Annotated[
        bool, typer.Option("--online", help="Sample, score and pair fresh answers each iteration.")
    ] = False,
    reward_model: Annotated[
        str | None, typer.Option("--reward-model", help="Reward model dir (online mode).")
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Reward-aware preference optimisation: the policy's reward gap pulled to the RM's gap."""
    from curation.store import StoreError
    from training.config_io import ConfigError, load_config, parse_overrides
    from training.rpo import train_rpo
    from training.rpo_config import RPORunConfig

    _quiet()
    try:
        overrides = parse_overrides(set_)
        if reward_model is not None:
            overrides["reward_model"] = reward_model
        if online:
            overrides["online"] = True
        cfg = load_config(RPORunConfig, config, **overrides)
        summary = train_rpo(_store(store), data, model, out, cfg)
    except (ConfigError, StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for r in summary["rounds"]:
        reward = f", mean reward {r['mean_reward']:.3f}" if "mean_reward" in r else ""
        console.print(f"round {r['round']}: {r['pairs']} pairs, {r['steps']} steps{reward}",
                      highlight=False)  # fmt: skip
    if "mean_reward" in summary:
        console.print(f"final policy mean reward {summary['mean_reward'][-1]:.3f}", highlight=False)
    console.print(f"run {summary['run_id']} -> {summary['checkpoint']}", highlight=False)
    print(summary["run_id"])


@train_app.command()
def rm(
    out: Annotated[Path, typer.Option("--out", help="Reward model dir to write.")],
    set_: SetOpt = None,
) -> None:
    """A tiny reward model for the embedded default (trl RewardTrainer on tinyworld pairs)."""
    from training.config_io import ConfigError, load_config, parse_overrides
    from training.reward_model import RewardModelConfig, train_reward_model

    _quiet()
    try:
        cfg = load_config(RewardModelConfig, None, **parse_overrides(set_))
        summary = train_reward_model(out, cfg)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{summary['pairs']} pairs, {summary['steps']} steps; pairwise accuracy "
                  f"{summary['train_accuracy']:.0%} train, {summary['held_out_accuracy']:.0%} "
                  "held out", highlight=False)  # fmt: skip
    print(summary["dir"])


@train_app.command("eval")
def eval_(
    model: Annotated[str, typer.Option("--model", help='Model dir (or "embedded").')],
    data: Annotated[
        str, typer.Option("--data", help='"tinyworld" (held-out tasks) or a version.')
    ] = "tinyworld",
    store: StoreOpt = None,
    per_family: Annotated[int, typer.Option(help="Prompts per family and toggle.")] = 50,
    max_tokens: Annotated[int, typer.Option(help="Completion tokens per answer.")] = 320,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Greedy accuracy per family x reasoning on/off, and format compliance."""
    from curation.store import StoreError
    from training.evaluate import TINYWORLD, evaluate_model

    _quiet()
    try:
        the_store = None if data == TINYWORLD else _store(store)
        report = evaluate_model(model, data, the_store, per_family, max_tokens)
    except (StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{model} on {report['data']} (greedy)")
    for column in ("family", "acc on", "acc off", "format on", "format off"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family, row in report["accuracy"].items():
        fmt = report["format"][family]
        cells = [row.get("on"), row.get("off"), fmt.get("on"), fmt.get("off")]
        table.add_row(family, *("-" if v is None else f"{v:.0%}" for v in cells))
    console.print(table)


def lineage(
    row_id: Annotated[str | None, typer.Argument(help="A row id: which runs used it.")] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="A run id: its version and rows.")
    ] = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Which runs trained on a row (ROW_ID), or which rows a run trained on (--run)."""
    from training.lineage import Lineage, LineageError

    if (row_id is None) == (run is None):
        _fail("give a ROW_ID or --run RUN_ID (one of them)")
    with Lineage.open(_store(store)) as db:
        if run is not None:
            try:
                info = db.run(run)
            except LineageError as exc:
                _fail(str(exc))
            if as_json:
                print(json.dumps(info.to_dict(), indent=2, default=str))
                return
            console.print(f"{info.run_id} ({info.kind}) trained on {info.ref}", highlight=False)
            for part, ids in info.rows.items():
                console.print(f"  {part}: {len(ids)} rows", highlight=False)
                for rid in ids:
                    print(rid)
            return
        found = db.runs_for_row(row_id)
    if as_json:
        print(json.dumps([{**i.to_dict(), "parts": p} for i, p in found], indent=2, default=str))
        return
    if not found:
        console.print(f"row {row_id}: no training run used it", highlight=False)
        return
    for info, parts in found:
        print(f"{info.run_id}\t{info.kind}\t{info.ref}\t{','.join(parts)}\t{info.out_dir}")


__all__ = ["lineage", "train_app"]
