"""`thinkmix filters ...`: commands about filter decisions (mounted by `curation.cli`).

thinkmix filters agreement math/1a2b3c --recipe judge.yaml --judge judge --sample 200
thinkmix filters agreement math --teacher transformers:embedded --json
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

filters_app = typer.Typer(
    help="Inspect filter decisions: judge agreement with math-verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@filters_app.callback()
def main() -> None:
    """Inspect filter decisions: judge agreement with math-verify."""


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _backend(recipe: Path | None, judge: str, teacher: str | None) -> Any:
    from curation.recipe import RecipeError, load_recipe
    from curation.registry import make_backend

    if (recipe is None) == (teacher is None):
        _fail("name the judge with --recipe FILE [--judge NAME] or with --teacher BACKEND:MODEL")
    if teacher is not None:
        kind, sep, model = teacher.partition(":")
        if not sep or not kind or not model:
            _fail(f"--teacher {teacher}: expected BACKEND:MODEL, e.g. transformers:embedded")
        try:
            return make_backend(kind, model=model)
        except KeyError as exc:
            _fail(str(exc.args[0]))
    try:
        spec = load_recipe(recipe).recipe.teachers
    except RecipeError as exc:
        _fail(str(exc))
    if judge not in spec:
        _fail(f"{recipe}: no teacher {judge!r} (teachers: {', '.join(spec) or 'none'})")
    chosen = spec[judge]
    return make_backend(chosen.backend, model=chosen.model, **(chosen.model_extra or {}))


def _render(report: dict[str, Any], ref: str) -> None:
    rate = report["agreement"]
    console.print(
        f"{ref}: {report['rows']} rows judged, {report['decided']} decided by both, "
        f"agreement {'n/a' if rate is None else f'{rate:.1%}'}, {report['failed']} failed",
        highlight=False,
    )
    table = Table("math-verify \\ judge", "yes", "no", "unparsed")
    for verdict, counts in report["confusion"].items():
        table.add_row(verdict, *(str(counts[k]) for k in ("yes", "no", "unparsed")))
    console.print(table)
    for example in report["disagreements"]:
        console.print(
            f"- {example['id']}: answer {example['answer']!r} vs gold "
            f"{example['expected_answer']!r}: math-verify {example['math_verify']}, judge "
            f"{example['judge']}: {example['judge_output'][:120]!r}",
            highlight=False,
        )


@filters_app.command()
def agreement(
    ref: Annotated[str, typer.Argument(help="DATASET/VERSION, a version id, or a dataset.")],
    recipe: Annotated[
        Path | None, typer.Option(help="A recipe whose `teachers` hold the judge.")
    ] = None,
    judge: Annotated[str, typer.Option(help="The judge's teacher name in --recipe.")] = "judge",
    teacher: Annotated[
        str | None, typer.Option(help="Or the judge as BACKEND:MODEL (transformers:embedded).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to sample: train, rejected, failed.")] = "train",
    sample: Annotated[int, typer.Option(help="Rows to judge (0 = all).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the requests.")] = 0,
    template: Annotated[str, typer.Option(help="Judge prompt template.")] = "math_judge",
    max_tokens: Annotated[int, typer.Option(help="Judge reply budget.")] = 512,
    examples: Annotated[int, typer.Option(help="Disagreements to show.")] = 10,
    store: Annotated[
        str | None,
        typer.Option(help="Store root (default: $THINKMIX_STORE, else ./thinkmix-store)."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Request cache (default: $THINKMIX_CACHE, else STORE/.cache)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """How often an LLM judge agrees with math-verify on a version's rows (both verdicts per row)."""
    from curation.cache import RequestCache
    from curation.context import CachedTeacher, RunContext
    from curation.store import Store, StoreError
    from filters.judge import judge_agreement

    the_store = Store.from_option(store)
    try:
        records = the_store.read_records(ref, split)
        dataset, version = the_store.resolve(ref)
    except StoreError as exc:
        _fail(str(exc))
    backend = _backend(recipe, judge, teacher)
    cache_path = cache or Path(
        os.environ.get("THINKMIX_CACHE") or the_store.root / ".cache" / "requests.sqlite"
    )
    request_cache = RequestCache(cache_path)
    ctx = RunContext(dataset=dataset, version=version, seed=seed)
    ctx.teachers["judge"] = CachedTeacher("judge", backend, request_cache)
    try:
        report = asyncio.run(
            judge_agreement(
                records,
                ctx,
                "judge",
                sample,
                seed,
                examples,
                template=template,
                max_tokens=max_tokens,
            )
        )
    except ValueError as exc:
        _fail(str(exc))
    finally:
        ctx.close()
        request_cache.close()
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _render(report, f"{dataset}/{version}")
