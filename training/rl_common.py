"""Pieces the RLOO and RPO runs share: the run directory's files, lineage start/finish, prompt
rows that need no gold answer, and the trl settings every CPU run wants.

A run directory holds `config.json`, `lineage.json`, `metrics.jsonl`, `checkpoint/` and
`summary.json` (as `thinkmix train grpo` writes them); `Run` writes the first two and the
lineage record when it starts, and the summary when it finishes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.record import SYSTEM_PROMPTS, Record
from curation.store import Store
from training.config_io import config_dict
from training.data import family_of, toggle_of
from training.lineage import Lineage, RunInfo, new_run_id


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


@dataclass
class Run:
    """One training run: its id, version, model, directory and lineage record."""

    store: Store
    kind: str
    dataset: str
    version: str
    model: str
    out: Path
    run_id: str = ""

    @classmethod
    def begin(cls, store: Store, kind: str, data: str, model: str, out_dir: Path | str) -> Run:
        """Resolve `data` to a version and make the run directory (no lineage yet)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        dataset, version = store.resolve(data)
        run = cls(store, kind, dataset, version, model, out)
        run.run_id = new_run_id(kind, run.ref, out.resolve())
        return run

    @property
    def ref(self) -> str:
        return f"{self.dataset}/{self.version}"

    def start(self, config: Any, rows: dict[str, list[str]]) -> None:
        """config.json, lineage.json and the lineage record: which rows this run reads."""
        settings = config_dict(config)
        write_json(self.out / "config.json", {"run_id": self.run_id, "data": self.ref,
                                              "model": self.model, "config": settings})  # fmt: skip
        write_json(self.out / "lineage.json", {"run_id": self.run_id, "version": self.ref,
                                               "rows": rows})  # fmt: skip
        with Lineage.open(self.store) as lineage:
            lineage.start(RunInfo(self.run_id, self.kind, self.dataset, self.version, self.model,
                                  str(self.out.resolve()), settings, rows=rows))  # fmt: skip

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        remove_tree(self.out / "_trainer")
        write_json(self.out / "summary.json", summary)
        with Lineage.open(self.store) as lineage:
            lineage.finish(self.run_id, summary)
        return summary


def rl_prompt_rows(records: Iterable[Record], reasoning: str = "on") -> list[dict[str, Any]]:
    """Unique (prompt, toggle) rows, in first-seen order, with or without a gold answer.

    Like `training.data.prompt_rows` (same columns, plus `constraints` from
    `meta["constraints"]` for instruction-following verifiers), but a row without
    `expected_answer` is kept: reward models and instruction verifiers need no gold.
    """
    if reasoning not in ("on", "off", "row", "both"):
        raise ValueError(f"reasoning must be on, off, row or both, got {reasoning!r}")
    seen: set[tuple[str, str]] = set()
    out = []
    for record in records:
        turns = [{"role": m["role"], "content": m["content"]} for m in record.input
                 if m.get("role") != "system"]  # fmt: skip
        if not turns:
            continue
        toggles = ["on", "off"] if reasoning == "both" else [
            toggle_of(record) if reasoning == "row" else reasoning
        ]  # fmt: skip
        for toggle in toggles:
            key = (repr(turns), toggle)
            if key in seen:
                continue
            seen.add(key)
            out.append({
                "prompt": [{"role": "system", "content": SYSTEM_PROMPTS[toggle]}, *turns],
                "row_id": record.id,
                "reasoning": toggle,
                "family": family_of(record),
                "expected_answer": record.expected_answer or "",
                "tests": record.meta.get("tests", ""),
                "constraints": record.meta.get("constraints", ""),
            })  # fmt: skip
    return out


def cpu_trainer_args() -> dict[str, Any]:
    """trl/transformers TrainingArguments every thinkmix RL run sets (as `training.grpo`)."""
    import torch

    return {
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "activation_checkpointing": False,  # trl turns it on; at this size it only costs time
        "bf16": False,  # float32 on CPU; bf16 autocast only slows tiny models down
    }


__all__ = ["Run", "cpu_trainer_args", "remove_tree", "rl_prompt_rows", "write_json"]
