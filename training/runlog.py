"""metrics.jsonl: one JSON line per trainer log event, tagged with the run part that made it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends trainer logs to a jsonl file and keeps the losses of each part in memory."""

    def __init__(self, path: Path):
        self.path = path
        self.path.write_text("")
        self._losses: dict[str, list[float]] = {}
        self._offset = 0  # optimizer steps of the parts before the current one

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")

    def losses(self, part: str) -> list[float]:
        return list(self._losses.get(part, []))

    def callback(self, part: str) -> Any:
        """A transformers `TrainerCallback` writing this part's logs."""
        from transformers import TrainerCallback

        log = self

        class _Log(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                row = {"part": part, "step": state.global_step,
                       "global_step": log._offset + state.global_step, **(logs or {})}  # fmt: skip
                if "loss" in row:
                    log._losses.setdefault(part, []).append(float(row["loss"]))
                log.write(row)

            def on_train_end(self, args, state, control, **kwargs):
                log._offset += state.global_step

        return _Log()


__all__ = ["MetricsLog"]
