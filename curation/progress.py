"""Build progress: rich bars on a terminal, plain log lines everywhere else.

Shows shards, the rows of the current stage, model requests (new and cached) and tokens, with
rates and ETA. When stdout is not a terminal (CI, `| tee`, nohup) the same facts go out as log
lines: one per finished stage and at most one every `log_every` seconds while requests run.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BuildProgress:
    def __init__(self, console: Console, shards: int, log_every: float = 10.0):
        self.console = console
        self.live = console.is_terminal
        self.log_every = log_every
        self.requests_done = self.requests_planned = self.tokens = 0
        self._last_log = time.monotonic()
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self._shards = self._progress.add_task("shards", total=shards, extra="")
            self._requests = self._progress.add_task("requests", total=None, extra="")

    def __enter__(self) -> BuildProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def shard_skipped(self, shard: int) -> None:
        self._log(f"shard {shard}: already built, reused")
        if self._progress is not None:
            self._progress.advance(self._shards)

    def stage_done(self, shard: int, counts: dict) -> None:
        detail = f"in {counts['in']} kept {counts['kept']} rejected {counts['rejected']}"
        if counts["failed"]:
            detail += f" failed {counts['failed']}"
        self._log(f"shard {shard}: {counts['name']}: {detail} ({counts['seconds']:.1f}s)")

    def shard_done(self, shard: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._shards)

    def requests(self, done: int, tokens: int, planned: int = 0) -> None:
        self.requests_done += done
        self.requests_planned += planned
        self.tokens += tokens
        if self._progress is not None:
            self._progress.update(
                self._requests,
                completed=self.requests_done,
                total=self.requests_planned or None,
                extra=f"{self.tokens:,} tokens",
            )
        elif done and time.monotonic() - self._last_log >= self.log_every:
            self._log(
                f"requests {self.requests_done}/{self.requests_planned}, {self.tokens:,} tokens"
            )

    def _log(self, message: str) -> None:
        self._last_log = time.monotonic()
        stamp = time.strftime("%H:%M:%S")
        console = self._progress.console if self._progress is not None else self.console
        console.print(f"[dim]{stamp}[/] {message}", highlight=False)
