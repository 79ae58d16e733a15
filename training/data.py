"""From store rows to training examples: chat messages with the toggle's system prompt.

- `sft_example(record)`: system prompt (the row's own, else the one its `reasoning` toggle
  names), the prompt turns, then the row's `output` as the assistant turn;
- `select(records, ...)`: the rows of one SFT schedule stage (by toggle and category);
- `prompt_rows(records, ...)`: unique prompts for GRPO with the columns the rewards read;
- `write_tinyworld_version(...)`: a clean version of tinyworld gold solutions in both toggles,
  written through `curation.store.Staging` (what the tests and `benchmarks/train_smoke.py` train
  on while the embedded teacher is too weak to build a large verified blend).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curation.record import SYSTEM_PROMPTS, Record, record_id
from curation.store import Store
from curation.tinyworld import FAMILIES, format_output, generate

# tinyworld family -> the category column its sources write (curation/sources.py)
FAMILY_CATEGORY = {
    "math": "math",
    "code": "code",
    "mcq": "science",
    "instruct": "instruction following",
}
CATEGORY_FAMILY = {v: k for k, v in FAMILY_CATEGORY.items()}
TINYWORLD_GOLD = "tinyworld-gold"


def toggle_of(record: Record, default: str = "on") -> str:
    """The row's reasoning toggle: its `reasoning`, else read from its system prompt."""
    if record.reasoning in SYSTEM_PROMPTS:
        return record.reasoning
    for toggle, prompt in SYSTEM_PROMPTS.items():
        if record.system_prompt.strip() == prompt:
            return toggle
    return default


def system_prompt(record: Record, toggle: str | None = None) -> str:
    """The row's own system prompt, else "detailed thinking on/off" from its toggle."""
    if toggle is not None:
        return SYSTEM_PROMPTS[toggle]
    return record.system_prompt or SYSTEM_PROMPTS[toggle_of(record)]


def sft_example(record: Record) -> dict[str, Any]:
    """One conversational example for trl's SFTTrainer (`assistant_only_loss` needs `messages`)."""
    if not record.output.strip():
        raise ValueError(
            f"row {record.id}: empty output; SFT needs finished samples (build with a generation "
            "stage, or train GRPO on prompt rows instead)"
        )
    turns = [m for m in record.input if m.get("role") != "system"]
    return {
        "messages": [
            {"role": "system", "content": system_prompt(record)},
            *({"role": m["role"], "content": m["content"]} for m in turns),
            {"role": "assistant", "content": record.output},
        ]
    }


def family_of(record: Record) -> str:
    """The verifier family: `meta["family"]` (tinyworld sources), else from the category."""
    return record.meta.get("family") or CATEGORY_FAMILY.get(record.category, record.category)


def select(
    records: Iterable[Record], reasoning: str = "any", categories: Iterable[str] = ()
) -> list[Record]:
    """Rows with that toggle ("on", "off" or "any") and, when given, one of `categories`
    (a category column value or a tinyworld family name)."""
    if reasoning not in ("on", "off", "any"):
        raise ValueError(f"reasoning must be on, off or any, got {reasoning!r}")
    wanted = set(categories)
    return [
        r
        for r in records
        if (reasoning == "any" or toggle_of(r) == reasoning)
        and (not wanted or r.category in wanted or family_of(r) in wanted)
    ]


def prompt_rows(records: Iterable[Record], reasoning: str = "on") -> list[dict[str, Any]]:
    """Unique (prompt, toggle) rows for GRPO, in first-seen order.

    `reasoning` "on"/"off" sets every prompt's toggle (arXiv 2505.00949 §5 trains RL with
    reasoning on), "row" keeps each row's own, "both" makes one prompt per toggle. Rows
    without a gold answer are skipped, since no accuracy reward could score them.
    """
    if reasoning not in ("on", "off", "row", "both"):
        raise ValueError(f"reasoning must be on, off, row or both, got {reasoning!r}")
    seen: set[tuple[str, str]] = set()
    out = []
    for record in records:
        if not (record.expected_answer or "").strip():
            continue
        turns = [
            {"role": m["role"], "content": m["content"]}
            for m in record.input
            if m.get("role") != "system"
        ]
        if reasoning == "both":
            toggles = ["on", "off"]
        else:
            toggles = [toggle_of(record) if reasoning == "row" else reasoning]
        for toggle in toggles:
            key = (repr(turns), toggle)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                {
                    "prompt": [{"role": "system", "content": SYSTEM_PROMPTS[toggle]}, *turns],
                    "row_id": record.id,
                    "reasoning": toggle,
                    "family": family_of(record),
                    "expected_answer": record.expected_answer,
                    "tests": record.meta.get("tests", ""),
                    "pass_rate": record.scores.get("pass_rate", -1.0),
                }
            )
    return out


def tinyworld_records(
    per_family: int, seed: int, dataset: str = TINYWORLD_GOLD, outputs: bool = True
) -> list[Record]:
    """Tinyworld tasks as rows: gold outputs in both toggles, or prompt rows (`outputs=False`)."""
    records = []
    for family in FAMILIES:
        for task in generate(family, per_family, seed):
            turns = [{"role": "user", "content": task.prompt}]
            common = dict(
                input=turns,
                category=FAMILY_CATEGORY[family],
                license="Apache-2.0 (generated by thinkmix)",
                source="tinyworld",
                source_id=task.task_id,
                expected_answer=task.expected_answer,
                meta={"family": family, "tests": task.tests},
            )
            if not outputs:
                records.append(Record(id=record_id(dataset, task.task_id, turns), **common))
                continue
            for toggle in ("on", "off"):
                records.append(
                    Record(
                        id=record_id(dataset, task.task_id, turns, "tinyworld-gold", toggle),
                        output=format_output(task, toggle == "on"),
                        system_prompt=SYSTEM_PROMPTS[toggle],
                        reasoning=toggle,
                        generator="tinyworld-gold",
                        **common,
                    )
                )
    return records


def write_tinyworld_version(
    store: Store,
    version: str,
    per_family: int,
    seed: int = 0,
    dataset: str = TINYWORLD_GOLD,
    outputs: bool = True,
    shards: int = 2,
) -> str:
    """Commit tinyworld rows (see `tinyworld_records`) as `dataset/version`; returns the ref."""
    records = tinyworld_records(per_family, seed, dataset, outputs)
    staging = store.staging(dataset, version)
    for shard in range(shards):
        part = records[shard::shards]
        staging.mark_done(shard, [staging.write_shard("train", shard, part)])
    staging.commit(
        {
            "recipe": {"source": "training.data.tinyworld_records", "per_family": per_family,
                       "seed": seed, "outputs": outputs},
            "shards": shards,
        }
    )  # fmt: skip
    return f"{dataset}/{version}"


__all__ = [
    "CATEGORY_FAMILY",
    "FAMILY_CATEGORY",
    "family_of",
    "prompt_rows",
    "select",
    "sft_example",
    "system_prompt",
    "tinyworld_records",
    "toggle_of",
    "write_tinyworld_version",
]
