"""`thinkmix`: build versioned post-training data, inspect it, and manage the embedded teacher."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="thinkmix: build, version and inspect LLM post-training data (Llama-Nemotron style).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store root (default: $THINKMIX_STORE, else ./thinkmix-store)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe field: --set teachers.reasoner.model=NAME."),
]


def _fail(message: str, code: int = 2) -> None:
    # soft_wrap: a long error stays one line, so logs and greps see file, line and field together
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _store(store: str | None):
    from curation.store import Store

    return Store.from_option(store)


def _load(
    recipe: Path, overrides: list[str] | None, shards: int | None, on_error: str | None = None
):
    from curation.recipe import RecipeError, load_recipe

    overrides = list(overrides or [])
    if shards is not None:
        overrides.append(f"shards={shards}")
    if on_error is not None:
        overrides.append(f"on_error={on_error}")
    try:
        return load_recipe(recipe, overrides)
    except RecipeError as exc:
        _fail(str(exc))


@app.command()
def validate(recipe: Path, set_: SetOpt = None) -> None:
    """Check a recipe (fields, stage parameters, teachers, columns) without calling any model."""
    loaded = _load(recipe, set_, None)
    r = loaded.recipe
    console.print(
        f"[green]ok[/] {recipe}: dataset [bold]{r.name}[/], version {r.version_id()}, "
        f"{len(loaded.sources)} source(s), {len(loaded.stages)} stage(s), {r.shards} shard(s)"
    )
    for stage in loaded.stages:
        reads = ", ".join(stage.requires) or "-"
        adds = ", ".join(stage.provides) or "-"
        console.print(f"  {stage.stage_type:<28} reads {reads}; adds {adds}", highlight=False)


@app.command()
def build(
    recipe: Path,
    set_: SetOpt = None,
    shards: Annotated[
        int | None, typer.Option(help="Number of shards (overrides the recipe).")
    ] = None,
    shard: Annotated[int | None, typer.Option(help="Build (or re-check) only this shard.")] = None,
    store: StoreOpt = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Request cache (default: $THINKMIX_CACHE, else STORE/.cache)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes for CPU-bound filters.")] = None,
    on_error: Annotated[
        str | None,
        typer.Option(
            "--on-error",
            help="Bad input rows: fail (stop at the first, naming file, line and field) or skip "
            "(keep them in the version's quarantine split with their reason).",
            show_default="the recipe's on_error, else fail",
        ),
    ] = None,
    stats: Annotated[bool, typer.Option(help="Print the stats table when done.")] = True,
    executor: Annotated[
        str, typer.Option(help="Where shards run: local (this process) or ray (a task each).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="--executor ray: a cluster to join (auto, ray://HOST:10001).",
            show_default="a local Ray",
        ),
    ] = None,
    task_cpus: Annotated[
        float | None,
        typer.Option(
            help="--executor ray: CPUs reserved per shard task.",
            show_default="1; 0 with a ray (ray.data.llm) teacher",
        ),
    ] = None,
) -> None:
    """Build a recipe into a new immutable version; prints the version id last.

    With `--executor ray` each unfinished shard is a Ray task; the store and the request cache
    must then be on a filesystem every Ray node shares (docs/cluster.md).
    """
    from rich.markup import escape

    from curation.cache import RequestCache
    from curation.context import default_workers
    from curation.executors import ExecutorError, make_executor
    from curation.progress import BuildProgress
    from curation.runner import Builder, BuildError
    from curation.sources import SourceError
    from curation.stats import render_stats, stats_dict
    from curation.store import StoreError

    loaded = _load(recipe, set_, shards, on_error)
    try:
        runner = make_executor(executor, address=address, task_cpus=task_cpus)
    except ExecutorError as exc:
        _fail(escape(str(exc)))  # the install hint's [ray] is not rich markup
    the_store = _store(store)
    cache_path = cache or Path(
        os.environ.get("THINKMIX_CACHE") or the_store.root / ".cache" / "requests.sqlite"
    )
    try:
        request_cache = RequestCache(cache_path)
    except (OSError, sqlite3.Error) as exc:
        _fail(escape(f"request cache {cache_path}: {exc}; give a writable path with --cache"))
    started = time.perf_counter()
    with BuildProgress(console, loaded.recipe.shards) as progress:
        try:
            builder = Builder(
                loaded, the_store, request_cache, progress, workers or default_workers(), runner
            )
            result = builder.build(shard)
        except (BuildError, ExecutorError, SourceError, StoreError) as exc:
            # A shard that failed on Ray carries a note saying which shards to redo.
            _fail(escape("\n".join([str(exc), *getattr(exc, "__notes__", ())])))
        finally:
            request_cache.close()
    seconds = time.perf_counter() - started
    for name, usage in result.usage.items():
        console.print(
            f"teacher {name}: {usage['new_requests']} new requests, {usage['cached_requests']} "
            f"cached, {usage['failed_requests']} failed; {usage['completion_tokens']:,} "
            "completion tokens"
            + (f", ${usage['cost_usd']:.4f} at its prices" if "cost_usd" in usage else ""),
            highlight=False,
        )
    if result.status == "up_to_date":
        console.print(f"{result.ref} is already built (same recipe and code); 0 new requests")
    elif result.status == "partial":
        console.print(
            f"built shard(s) {result.shards_built}; the version is complete once every shard is built"
        )
    elif result.status in ("reproduced", "differs"):
        for line in result.mismatches:
            err_console.print(f"[red]{line}[/]", highlight=False)
        console.print(f"shard {shard} of {result.ref}: {result.status}")
        if result.status == "differs":
            raise typer.Exit(1)
    if stats and result.status in ("built", "up_to_date"):
        render_stats(console, stats_dict(the_store, result.ref))
    console.print(f"done in {seconds:.1f}s", highlight=False)
    print(result.ref)


@app.command("ls")
def list_versions(
    dataset: Annotated[str | None, typer.Argument()] = None, store: StoreOpt = None
) -> None:
    """List the versions in the store."""
    versions = _store(store).versions(dataset)
    table = Table("dataset", "version", "created", "train", "rejected", "failed")
    for v in versions:
        table.add_row(
            v.dataset,
            v.version,
            v.created_at,
            *(str(v.rows.get(s, 0)) for s in ("train", "rejected", "failed")),
        )
    console.print(table)


@app.command()
def show(
    version: str, store: StoreOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show a version's manifest: recipe, teachers, sampling, splits and files."""
    the_store = _store(store)
    manifest = _resolve_manifest(the_store, version)
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    console.print(
        f"[bold]{manifest['dataset']}/{manifest['version']}[/]  created {manifest['created_at']}"
    )
    console.print(
        f"recipe {manifest['recipe_file']} (hash {manifest['recipe_hash'][:12]}), overrides: {manifest['overrides'] or 'none'}"
    )
    console.print(
        f"thinkmix {manifest['thinkmix_version']}, code {manifest['code_revision']}, parents: {manifest['parents'] or 'none'}"
    )
    for name, teacher in manifest["teachers"].items():
        console.print(f"teacher {name}: {teacher['backend']} / {teacher['model']}", highlight=False)
    for sampling in manifest["sampling"]:
        console.print(f"sampling {sampling}", highlight=False)
    console.print(
        f"splits: {manifest['splits']}; {len(manifest['files'])} files in {manifest['shards']} shard(s)"
    )


@app.command()
def verify(version: str, store: StoreOpt = None) -> None:
    """Recompute every shard's sha256 and row count; exit 1 naming each shard that differs."""
    from curation.store import verify as verify_version

    the_store = _store(store)
    ref = _resolve(the_store, version)
    problems = verify_version(the_store, ref)
    for problem in problems:
        err_console.print(f"[red]{problem}[/]", highlight=False)
    if problems:
        raise typer.Exit(1)
    files = len(the_store.manifest(ref)["files"])
    console.print(f"[green]ok[/] {ref}: {files} files match their manifest")


@app.command()
def diff(
    version_a: str,
    version_b: str,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare two versions: recipe changes, rows per split and category, rows added/removed."""
    from curation.store import diff as diff_versions

    the_store = _store(store)
    report = diff_versions(
        the_store, _resolve(the_store, version_a), _resolve(the_store, version_b)
    )
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    from curation.stats import render_diff

    render_diff(console, report)


@app.command()
def stats(
    version: str, store: StoreOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """The blend table (category x reasoning x generator) and the per-stage funnel."""
    from curation.stats import render_stats, stats_dict

    the_store = _store(store)
    data = stats_dict(the_store, _resolve(the_store, version))
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render_stats(console, data)


@app.command()
def report(
    version: str,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
) -> None:
    """Write one self-contained HTML page with the blend's plots, funnel and teachers."""
    from curation.report import write_report

    the_store = _store(store)
    path = write_report(the_store, _resolve(the_store, version), out)
    console.print(f"wrote {path}")


@app.command()
def card(
    version: str,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    store: StoreOpt = None,
) -> None:
    """A Hugging Face dataset card (README.md) for a version."""
    from curation.card import render_card

    the_store = _store(store)
    text = render_card(the_store, _resolve(the_store, version))
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


@app.command()
def export(
    version: str,
    out: Annotated[Path, typer.Option(help="New or empty folder to write.")],
    format: Annotated[str, typer.Option(help="jsonl (public SFT layout) or hf.")] = "jsonl",
    store: StoreOpt = None,
) -> None:
    """Export a version as public-layout jsonl or a `datasets` save_to_disk folder."""
    from curation.export import ExportError, export_version

    the_store = _store(store)
    try:
        path = export_version(the_store, _resolve(the_store, version), out, format)  # type: ignore[arg-type]
    except ExportError as exc:
        _fail(str(exc))
    console.print(f"wrote {path}")


@app.command()
def stages() -> None:
    """List the registered source and stage types."""
    from curation.registry import STAGES, known_stages

    for name in known_stages():
        cls = STAGES[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        console.print(f"{name:<28} {cls.kind:<9} {doc}", highlight=False)


def _resolve(store, ref: str) -> str:
    try:
        dataset, version = store.resolve(ref)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    return f"{dataset}/{version}"


def _resolve_manifest(store, ref: str) -> dict:
    return store.manifest(_resolve(store, ref))


def _mount_apps() -> None:
    """Sub-commands that live beside the packages they drive."""
    from curation.teacher.cli import teacher_app
    from decontam.cli import decontam_app
    from filters.cli import filters_app
    from hardware_opt.cli import opt_app
    from training.audit_cli import audit_app
    from training.cli import lineage, train_app

    app.add_typer(teacher_app, name="teacher", help="Build and evaluate the embedded tiny teacher.")
    app.add_typer(decontam_app, name="decontam", help="Check rows against benchmarks.")
    app.add_typer(filters_app, name="filters", help="Reports on filter decisions.")
    app.add_typer(opt_app, name="opt", help="Puzzle block search and FFN Fusion on a model.")
    app.add_typer(train_app, name="train", help="SFT, GRPO, RLOO and RPO on versioned shards.")
    app.add_typer(audit_app, name="audit", help="Audits of trained models (reasoning toggle).")
    app.command("lineage")(lineage)


_mount_apps()


if __name__ == "__main__":  # python -m curation.cli
    app()
