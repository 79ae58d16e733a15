"""`thinkmix card`: a Hugging Face dataset card (README.md) for a dataset version (DESIGN §8).

The YAML header follows the Hub's dataset card metadata: `pretty_name`, `license` (the rows'
licences, lower-cased; "unknown" when rows name none), `task_categories`, `size_categories`
(of all rows), one `configs` entry whose `data_files` map each split to its parquet shards, and
`dataset_info.splits` with the row count and bytes of each split. The paths are relative to the
version directory (`<split>/part-*.parquet`), so the card is right when that directory is
uploaded as the dataset repository, and `load_dataset("parquet", data_files=...)` reads the
same files locally.

Splits without rows are left out of `configs` (the Hub's viewer trips on empty splits) but are
listed, with 0, in the body.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import yaml

from curation.report import report_data
from curation.store import SPLITS, Store

TASK_CATEGORIES = ["text-generation", "question-answering"]
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(rows: int) -> str:
    """The Hub's `size_categories` bucket for a row count."""
    return next((name for limit, name in _SIZES if rows < limit), "n>1B")


def _column_counts(store: Store, ref: str, column: str) -> dict[str, int]:
    """Value -> rows in train, most frequent first ("" shown as "(none)")."""
    values = store.read_table(ref, "train").column(column).to_pylist()
    return dict(Counter(v or "(none)" for v in values).most_common())


def card_header(store: Store, ref: str, totals: dict[str, int]) -> dict[str, Any]:
    """The card's YAML metadata as a dict (see the module docstring)."""
    dataset, version = store.resolve(ref)
    base = store.path(ref)
    manifest = store.manifest(ref)
    licenses = sorted({lic.lower() for lic in _column_counts(store, ref, "license")} - {"(none)"})
    splits = [s for s in SPLITS if totals.get(s) or s == "train"]
    split_bytes = Counter()
    for info in manifest.get("files", []):
        split_bytes[info["split"]] += (base / info["path"]).stat().st_size
    return {
        "pretty_name": f"thinkmix {dataset} {version}",
        "license": (licenses[0] if len(licenses) == 1 else licenses) or "unknown",
        "language": ["en"],
        "task_categories": TASK_CATEGORIES,
        "tags": ["thinkmix", "synthetic", "reasoning", "sft"],
        "size_categories": [size_category(sum(totals.values()))],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{s}/part-*.parquet"} for s in splits],
            }
        ],
        "dataset_info": {
            "splits": [
                {"name": s, "num_examples": totals.get(s, 0), "num_bytes": split_bytes[s]}
                for s in splits
            ],
            "dataset_size": sum(split_bytes[s] for s in splits),
        },
    }


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _counts_table(title: str, counts: dict[str, int], total: int) -> str:
    if not counts:
        return f"No train rows, so no {title.lower()} counts."
    rows = [[k, f"{n:,}", f"{n / total:.1%}"] for k, n in counts.items()]
    return _md_table([title, "train rows", "share"], rows)


def _sections(store: Store, data: dict[str, Any]) -> list[str]:
    ref, m, totals = data["ref"], data["manifest"], data["totals"]
    train = totals.get("train", 0)
    recipe = m.get("recipe", {})
    sources = "\n".join(f"- `{json.dumps(s, sort_keys=True)}`" for s in recipe.get("sources", []))
    teachers = [
        [name, spec.get("backend", "?"), spec.get("model", "?")]
        for name, spec in sorted(m.get("teachers", {}).items())
    ]
    sampling = [
        f"- `{s.get('stage', '?')}`: "
        + ", ".join(f"{k}={v}" for k, v in sorted(s.items()) if k != "stage")
        for s in m.get("sampling", [])
    ]
    funnel = [
        [
            f"`{s['stage']}`",
            s["in"],
            s["kept"],
            s["rejected"],
            s["failed"],
            ", ".join(f"{r['reason']} ({r['count']})" for r in s["top_reasons"]) or "-",
        ]
        for s in data["funnel"]
    ]
    decontam_stages = [s["type"] for s in recipe.get("stages", []) if "decontam." in s["type"]]
    decontam = [[d["benchmark"], d["rows"], d["items"], d["methods"]] for d in data["decontam"]]
    return [
        "## Splits\n\n"
        + _md_table(["split", "rows"], [[s, f"{totals.get(s, 0):,}"] for s in SPLITS])
        + "\n\n`train` is the data to train on. `rejected` holds the rows a filter dropped, with "
        "the `stage` and `reason` columns saying why; `failed` the rows whose generation or check "
        "failed. The `category` and `reasoning` (on/off) columns split `train` further:\n\n"
        + _md_table(
            ["category", "reasoning", "generator", "rows", "share"],
            [
                [
                    b["category"],
                    b["reasoning"],
                    b["generator"],
                    f"{b['rows']:,}",
                    f"{b['share']:.1%}",
                ]
                for b in data["blend"]
            ],
        ),
        "## Sources\n\nPrompts come from the recipe's sources:\n\n"
        + (sources or "- (none recorded)")
        + "\n\n"
        + _counts_table("Source", _column_counts(store, ref, "source"), train),
        "## Licences\n\nEach row carries the licence of its source in the `license` column.\n\n"
        + _counts_table("License", _column_counts(store, ref, "license"), train),
        "## Teachers and sampling\n\n"
        + (_md_table(["teacher", "backend", "model"], teachers) if teachers else "No teachers.")
        + "\n\n"
        + ("\n".join(sampling) or "No sampling parameters recorded.")
        + "\n\nGenerators of the train rows:\n\n"
        + _counts_table("Generator", _column_counts(store, ref, "generator"), train),
        "## Filter funnel\n\n"
        + (
            _md_table(["stage", "in", "kept", "rejected", "failed", "top reasons"], funnel)
            if funnel
            else "The manifest lists no stages."
        ),
        "## Decontamination\n\n"
        + f"Stages: {', '.join(f'`{s}`' for s in decontam_stages) or 'none ran in this recipe'}. "
        + f"Rows dropped as contaminated: {data['decontam_rows']:,}.\n\n"
        + (
            _md_table(["benchmark", "rows dropped", "items matched", "methods"], decontam)
            if decontam
            else ""
        ),
        _loading(ref),
        "## Provenance\n\n"
        + _md_table(
            ["field", "value"],
            [
                ["dataset / version", f"`{ref}`"],
                ["recipe hash", f"`{m.get('recipe_hash', '-')}`"],
                ["thinkmix version", m.get("thinkmix_version", "-")],
                ["code revision", f"`{m.get('code_revision', '-')}`"],
                ["created at", m.get("created_at", "-")],
                ["overrides", ", ".join(f"`{o}`" for o in m.get("overrides", [])) or "-"],
                ["parents", ", ".join(f"`{p}`" for p in m.get("parents", [])) or "-"],
            ],
        ),
    ]


LOAD_SNIPPET = """\
import datasets

root = "{root}"
ds = datasets.load_dataset("parquet", data_files={{"train": f"{{root}}/train/*.parquet"}})
"""


def _loading(ref: str) -> str:
    return (
        "## Loading\n\n"
        'From the Hub (this folder uploaded as a dataset repository): `datasets.load_dataset("YOUR_ORG/NAME")`. '
        "From a local thinkmix store:\n\n"
        f"```python\n{LOAD_SNIPPET.format(root=f'thinkmix-store/{ref}')}```\n\n"
        f'or `polars.scan_parquet("thinkmix-store/{ref}/train/*.parquet")`. `scores` and `meta` '
        "are lists of `{key, value}`. `input` holds the prompt turns; put `system_prompt` "
        "(`detailed thinking on|off`) first when training with the reasoning toggle."
    )


def render_card(store: Store, ref: str) -> str:
    """The README.md text of a Hugging Face dataset card for version `ref`."""
    data = report_data(store, ref)
    dataset, version = data["ref"].split("/", 1)
    header = yaml.safe_dump(card_header(store, data["ref"], data["totals"]), sort_keys=False)
    description = data["manifest"].get("recipe", {}).get("description") or ""
    intro = (
        f"# thinkmix {dataset} {version}\n\n"
        + (f"{description}\n\n" if description else "")
        + f"Post-training (SFT) data built by thinkmix from the recipe `{dataset}` "
        f"(hash `{data['manifest'].get('recipe_hash', '-')}`), in the Llama-Nemotron style "
        "(arXiv 2505.00949): teacher outputs with the reasoning toggle on and off, filtered by "
        "answer checks and judges, decontaminated against benchmarks. Rows follow the public "
        "Llama-Nemotron-Post-Training-Dataset SFT columns plus `id`, `scores` and `meta`."
    )
    return f"---\n{header}---\n\n" + "\n\n".join([intro, *_sections(store, data)]) + "\n"
