"""`thinkmix audit toggle`: reasoning-toggle compliance of a model; mounted by `curation/cli.py`:

from training.audit_cli import audit_app
app.add_typer(audit_app, name="audit", help="Audit a model: reasoning-toggle compliance.")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

audit_app = typer.Typer(
    help="Audit a model: does it think when asked to, and only then?", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


@audit_app.callback()
def _group() -> None:
    """Audits of trained models (the formulas: docs/instruction_following.md)."""


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _judge_backend(spec: str) -> Any:
    from curation.registry import make_backend

    kind, sep, model = spec.partition(":")
    if not sep or not kind or not model:
        _fail(f"--judge {spec}: expected BACKEND:MODEL, e.g. transformers:embedded")
    try:
        return make_backend(kind, model=model)
    except KeyError as exc:
        _fail(str(exc.args[0]))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _render(report: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    table.add_column("check")
    table.add_column("value", justify="right")
    leak = report["leakage"]
    rows = [
        ("on: well-formed <think> block", _pct(report["on"]["think_well_formed"])),
        ("on: truncated at max tokens", _pct(report["on"]["truncated"])),
        ("off: <think> present anyway", _pct(report["off"]["think_present"])),
        ("off: clean (passes think_format)", _pct(report["off"]["clean"])),
        ("off: leakage score (0..1)", "-" if leak["score"] is None else f"{leak['score']:.3f}"),
        ("off: length term L", "-" if leak["length_term"] is None else f"{leak['length_term']:.3f}"),
        ("off: marker term M", f"{leak['marker_term']:.3f}"),
        ("off/on answer length (median)",
         "-" if leak["length_ratio_median"] is None else f"{leak['length_ratio_median']:.2f}"),
        ("off: reasoning markers per answer", f"{leak['markers_per_answer']:.2f}"),
    ]  # fmt: skip
    if "judge_leak_share" in leak:
        rows.append(("off: judge says it reasons", _pct(leak["judge_leak_share"])))
        rows.append(("off: judge replies unparsed", str(leak["judge_unparsed"])))
    if "instructions" in report:
        rows.append(("on: all constraints met", _pct(report["instructions"]["on"])))
        rows.append(("off: all constraints met", _pct(report["instructions"]["off"])))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    reasons = report["on"]["reasons"]
    if reasons:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        console.print(f"on-mode format failures: {listed}", highlight=False)


@audit_app.command()
def toggle(
    model: Annotated[str, typer.Option("--model", help='Model dir (or "embedded").')],
    data: Annotated[
        str,
        typer.Option(
            "--data", help='"tinyworld", "ifeval" (built-in prompt sets) or a store version.'
        ),
    ] = "tinyworld",
    limit: Annotated[int, typer.Option(help="Prompts to audit (each asked on and off).")] = 100,
    max_tokens: Annotated[int, typer.Option(help="Completion tokens per answer.")] = 320,
    batch_size: Annotated[int, typer.Option(help="Prompts decoded together.")] = 32,
    judge: Annotated[
        str | None,
        typer.Option(help="Also ask a judge (BACKEND:MODEL) whether off answers show reasoning."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="Store root (default: $THINKMIX_STORE, else ./thinkmix-store)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report, with every answer, as JSON.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Answer each prompt with reasoning on and off (greedy); report think-block compliance
    and how much reasoning leaks into the off answers."""
    from curation.store import Store, StoreError
    from training.audit import BUILT_IN_SETS, audit_prompts, toggle_audit
    from training.cli import _quiet

    _quiet()  # no progress bars: stdout stays clean for --json
    try:
        the_store = None if data in BUILT_IN_SETS else Store.from_option(store)
        prompts = audit_prompts(data, limit, the_store)
        backend = _judge_backend(judge) if judge else None
        report = toggle_audit(model, prompts, max_tokens, batch_size=batch_size, judge=backend,
                              keep_rows=out is not None)  # fmt: skip
    except (StoreError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    report = {"model": model, "data": data, **report}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        report.pop("rows")
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _render(report, f"toggle audit: {model} on {data} ({report['prompts']} prompts, greedy)")
    if out is not None:
        console.print(f"report with every answer -> {out}", highlight=False)


__all__ = ["audit_app"]
