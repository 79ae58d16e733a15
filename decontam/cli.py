"""`thinkmix decontam ...`: check files or dataset versions against benchmarks; list benchmarks.

    thinkmix decontam bench list
    thinkmix decontam bench show humaneval
    thinkmix decontam run rows.jsonl --bench humaneval --method ngram,minhash --report r.jsonl
    thinkmix decontam run math/v3 --store STORE --bench math500=m.jsonl --bench-field problem

A file INPUT is checked field `--field` per row; a dataset version (`--store`) is checked on
the input + output of its train rows and written as a new version `VERSION-decontam` whose
flagged rows moved to `rejected`. The report has one JSON line per (flagged row, method).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from curation.record import Record
from decontam.base import DecontamStage
from decontam.bench import BENCHMARKS, BenchmarkError, load_benchmark, read_rows

decontam_app = typer.Typer(
    help="Benchmark decontamination: n-gram, MinHash, exact, embedding + judge."
)
bench_app = typer.Typer(help="The benchmark registry.")
decontam_app.add_typer(bench_app, name="bench")

METHODS = ("ngram", "minhash", "exact", "embed")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@bench_app.command("list")
def bench_list() -> None:
    """Known benchmark names (local files are given as NAME=PATH)."""
    for name in sorted(BENCHMARKS):
        typer.echo(f"{name}\t{BENCHMARKS[name].description}")


@bench_app.command("show")
def bench_show(
    name: str,
    field: Annotated[str | None, typer.Option(help="Item text column.")] = None,
    id_field: Annotated[str | None, typer.Option(help="Item id column.")] = None,
    limit: Annotated[int, typer.Option(help="Items to print.")] = 3,
) -> None:
    """Load a benchmark and print its size, fingerprint and first items."""
    try:
        bench = load_benchmark(name, field, id_field)
    except BenchmarkError as exc:
        _fail(str(exc))
    typer.echo(f"{bench.name}: {len(bench.items)} items, fingerprint {bench.fingerprint}")
    for item in bench.items[:limit]:
        typer.echo(json.dumps({"item_id": item.item_id, "text": item.text[:300]}))


def _text(value: object) -> str:
    if isinstance(value, list):  # chat turns
        return "\n".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)


def _file_records(path: Path, field: str) -> list[Record]:
    rows = read_rows(path)
    if rows and field not in rows[0]:
        _fail(f"{path}: no field {field!r}; fields: {', '.join(rows[0])} (use --field)")
    return [
        Record(id=str(row.get("id", i)), input=[], output=_text(row.get(field)))
        for i, row in enumerate(rows)
    ]


def build_stages(methods: list[str], bench: str, options: dict) -> list[DecontamStage]:
    from decontam.embed import EmbedJudgeDecontam
    from decontam.exact import ExactDecontam
    from decontam.minhash import MinHashDecontam
    from decontam.ngram import NgramDecontam

    common = {k: options[k] for k in ("bench_field", "bench_id_field", "fields", "cache_dir")}
    common["benchmarks"] = bench
    out: list[DecontamStage] = []
    for method in methods:
        if method == "ngram":
            out.append(NgramDecontam(n=options["n"], mode=options["mode"], **common))
        elif method == "minhash":
            mode = "text" if options["mode"] == "both" else options["mode"]
            out.append(MinHashDecontam(threshold=options["threshold"], mode=mode, **common))
        elif method == "exact":
            mode = "text" if options["mode"] == "both" else options["mode"]
            out.append(ExactDecontam(mode=mode, **common))
        elif method == "embed":
            out.append(EmbedJudgeDecontam(judge="judge", **common))
        else:
            _fail(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return out


def check(records: list[Record], stages: list[DecontamStage], ctx) -> list[dict]:
    """Run every stage on every row; report lines sorted by row and method."""
    report = []
    for stage in stages:
        copies = [Record.from_dict(r.to_dict()) for r in records]
        result = asyncio.run(stage.process(copies, ctx))
        for record in result.rejected:
            match = json.loads(record.meta[stage.stage_type])
            row = next(i for i, c in enumerate(copies) if c is record)
            report.append(
                {"row": row, "id": record.id, "method": stage.method, "reason": record.reason}
                | match
            )
    return sorted(report, key=lambda line: (line["row"], line["method"]))


def _context(stages: list[DecontamStage], cache_dir: Path, backend: str, model: str):
    from curation.context import CachedTeacher, RunContext

    ctx = RunContext(dataset="decontam", version="", seed=0, base_dir=cache_dir.parent)
    if any(s.method == "embed" for s in stages):
        if not model:
            _fail("--method embed needs a judge: --judge-model NAME [--judge-backend openai]")
        from curation.cache import RequestCache
        from curation.registry import make_backend

        cache = RequestCache(cache_dir / "judge-requests.sqlite")
        ctx.teachers["judge"] = CachedTeacher("judge", make_backend(backend, model=model), cache)
    return ctx


@decontam_app.command("run")
def run(
    input: Annotated[str, typer.Argument(help="A .jsonl/.parquet/.csv file, or a version ref.")],
    bench: Annotated[str, typer.Option(help="Benchmarks: humaneval,NAME=PATH,...")] = "humaneval",
    method: Annotated[str, typer.Option(help="ngram,minhash,exact,embed")] = "ngram",
    field: Annotated[str, typer.Option(help="Row field holding the text (files).")] = "text",
    report: Annotated[Path | None, typer.Option(help="Write flagged rows as JSON lines.")] = None,
    n: Annotated[int, typer.Option(help="N-gram size (13 lm-eval, 8 open-r1).")] = 13,
    mode: Annotated[str, typer.Option(help="text | code | both")] = "text",
    threshold: Annotated[float, typer.Option(help="MinHash Jaccard threshold.")] = 0.8,
    bench_field: Annotated[str | None, typer.Option(help="Item text column.")] = None,
    bench_id_field: Annotated[str | None, typer.Option(help="Item id column.")] = None,
    judge_backend: Annotated[str, typer.Option(help="Backend of the embed judge.")] = "openai",
    judge_model: Annotated[str, typer.Option(help="Model of the embed judge.")] = "",
    cache_dir: Annotated[Path, typer.Option(help="Index and judge cache.")] = Path(
        ".thinkmix-cache/decontam"
    ),
    store: Annotated[str | None, typer.Option(help="Store root: INPUT is a version ref.")] = None,
) -> None:
    """Flag rows that overlap benchmark items; print a summary, write the report."""
    methods = [m.strip() for m in method.split(",") if m.strip()]
    as_file = store is None
    fields = ["output"] if as_file else ["input", "output"]
    options = {
        "n": n, "mode": mode, "threshold": threshold, "bench_field": bench_field,
        "bench_id_field": bench_id_field, "fields": fields, "cache_dir": str(cache_dir),
    }  # fmt: skip
    try:
        stages = build_stages(methods, bench, options)
        if as_file:
            path = Path(input)
            if not path.is_file():
                _fail(f"no file {path}; to check a dataset version pass --store ROOT")
            records = _file_records(path, field)
        else:
            from curation.store import Store

            the_store = Store.from_option(store)
            records = the_store.read_records(input, "train")
        ctx = _context(stages, cache_dir, judge_backend, judge_model)
        try:
            lines = check(records, stages, ctx)
        finally:
            ctx.close()
    except (BenchmarkError, ValueError) as exc:
        _fail(str(exc))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    flagged = sorted({x["row"] for x in lines})
    typer.echo(f"{len(records)} rows, {len(flagged)} flagged ({len(lines)} matches)")
    if not as_file:
        typer.echo(write_version(the_store, input, records, lines, methods, bench))


def write_version(store, ref: str, records: list[Record], lines: list[dict], methods, bench) -> str:
    """A new version of `ref` whose flagged rows moved to rejected; returns its ref."""
    dataset, version = store.resolve(ref)
    first: dict[int, dict] = {}
    for line in lines:
        first.setdefault(line["row"], line)
    kept, rejected = [], list(store.read_records(ref, "rejected"))
    for row, record in enumerate(records):
        if row in first:
            line = first[row]
            record.stage, record.reason = f"decontam.{line['method']}", line["reason"]
            record.meta[record.stage] = json.dumps(
                {k: line[k] for k in ("benchmark", "item_id", "score")}, sort_keys=True
            )
            rejected.append(record)
        else:
            kept.append(record)
    staging = store.staging(dataset, f"{version}-decontam")
    files = [
        staging.write_shard("train", 0, kept),
        staging.write_shard("rejected", 0, rejected),
        staging.write_shard("failed", 0, store.read_records(ref, "failed")),
    ]
    staging.mark_done(0, files)
    manifest = {"parent": f"{dataset}/{version}", "decontam": {"methods": methods, "bench": bench}}
    staging.commit(manifest)
    return f"{dataset}/{version}-decontam"
