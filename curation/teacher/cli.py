"""`thinkmix teacher build|eval`: train the embedded teacher, or measure any local model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from curation.teacher.evaluate import EVAL_PER_FAMILY
from curation.teacher.paths import EMBEDDED_DIR, resolve_model

teacher_app = typer.Typer(help="Build and evaluate the embedded tiny teacher (DESIGN §11).")
console = Console()


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"held-out accuracy, {report['per_family']} tasks per family (greedy)")
    for column in ("family", "reasoning on", "reasoning off", "format on", "format off"):
        table.add_column(column, justify="right" if column != "family" else "left")
    for family, row in report["accuracy"].items():
        fmt = report["format"][family]
        table.add_row(
            family, f"{row['on']:.0%}", f"{row['off']:.0%}", f"{fmt['on']:.0%}", f"{fmt['off']:.0%}"
        )
    return table


@teacher_app.command()
def build(
    out: Annotated[Path, typer.Option(help="Model dir to write (overwritten).")] = EMBEDDED_DIR,
    minutes: Annotated[
        float, typer.Option(help="Wall-clock cap; with --max-steps 0, the whole budget.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for data, init and data order.")] = 0,
    max_steps: Annotated[
        int,
        typer.Option(help="Training steps (step-exact, so machine load changes only the time)."),
    ] = 1000,
) -> None:
    """Generate tinyworld data, train the tiny Llama, save it and write eval.json."""
    from curation.teacher.build import build_teacher

    logging.basicConfig(level=logging.INFO, handlers=[RichHandler(console=console)], force=True)
    report = build_teacher(out, minutes=minutes, seed=seed, max_steps=max_steps or None)
    console.print(
        f"{report['parameters']:,} parameters, {report['train_steps']} steps in "
        f"{report['train_seconds']:.0f}s, loss {report['train_loss']:.3f} -> {out}"
    )
    console.print(_table(report["eval"]))


@teacher_app.command("eval")
def eval_(
    model: Annotated[str, typer.Option(help='"embedded" or a local HF model dir.')] = "embedded",
    per_family: Annotated[int, typer.Option(help="Held-out tasks per family.")] = EVAL_PER_FAMILY,
) -> None:
    """Greedy held-out accuracy per family x reasoning on/off."""
    from curation.teacher.evaluate import evaluate_teacher

    report = evaluate_teacher(resolve_model(model), per_family=per_family)
    console.print(_table(report))
    console.print(f"{report['samples_per_second']:.1f} samples/s")
