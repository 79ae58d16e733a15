"""Build progress: rich bars on a terminal, plain log lines everywhere else.

Shows shards, the rows through each stage so far (the build streams: every stage works at
once), model requests (new and cached), tokens per teacher and, for teachers with `prices`,
what this run has spent, with rates and ETA. When stdout is not a terminal (CI, `| tee`,
nohup) the same facts go out as log lines: one per finished shard and at most one every
`log_every` seconds while rows and requests move.
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
        self.shards, self.shards_done = shards, 0
        self.live = console.is_terminal
        self.log_every = log_every
        self.requests_done = self.requests_planned = self.tokens = 0
        self.teacher_tokens: dict[str, int] = {}
        self.teacher_cost: dict[str, float] = {}  # USD of new answers; only priced teachers
        self._last_log = time.monotonic()
        self.stage_rows: list[list] = []  # per stage position: [name, in, kept, rejected, failed]
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
            self._rows = self._progress.add_task("rows", total=None, extra="")

    def __enter__(self) -> BuildProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def shard_skipped(self, shard: int) -> None:
        self.shards_done += 1
        self._log(f"shard {shard}: already built, reused")
        if self._progress is not None:
            self._progress.advance(self._shards)

    def batch_done(self, shard: int, counts: list[dict]) -> None:
        """A batch of `shard` went through every streamed stage; `counts` per stage position."""
        for position, c in enumerate(counts):
            if position == len(self.stage_rows):
                self.stage_rows.append([c["name"], 0, 0, 0, 0])
            row = self.stage_rows[position]
            for i, key in enumerate(("in", "kept", "rejected", "failed"), start=1):
                row[i] += c[key]
        if self._progress is not None:
            self._progress.update(self._rows, completed=self._kept(), extra=self.funnel_text())
        elif time.monotonic() - self._last_log >= self.log_every:
            self._log(f"rows {self.funnel_text()}")

    def _kept(self) -> int:
        return self.stage_rows[-1][2] if self.stage_rows else 0

    def funnel_text(self) -> str:
        """e.g. `source 120 > multi_sample 960 (-12) > boxed_answer 801 (-159)`: rows kept
        after each stage so far, with its rejected (and failed) rows in brackets."""
        parts = []
        for name, _, kept, rejected, failed in self.stage_rows:
            drop = (
                f" (-{rejected}" + (f", {failed} failed)" if failed else ")")
                if rejected or failed
                else ""
            )
            parts.append(f"{name.rsplit('.', 1)[-1]} {kept}{drop}")
        return " > ".join(parts)

    def shard_done(self, shard: int) -> None:
        self.shards_done += 1
        funnel = f"; rows so far: {self.funnel_text()}" if self.stage_rows else ""
        self._log(f"shard {shard} written ({self.shards_done}/{self.shards} shards){funnel}")
        if self._progress is not None:
            self._progress.advance(self._shards)

    def requests(
        self,
        done: int,
        tokens: int,
        planned: int = 0,
        *,
        teacher: str = "",
        cost: float | None = None,
    ) -> None:
        """`done` requests answered with `tokens` completion tokens, `planned` more announced.

        `cost` is what the new answers among them cost (None: the teacher has no prices).
        """
        self.requests_done += done
        self.requests_planned += planned
        self.tokens += tokens
        if teacher:
            self.teacher_tokens[teacher] = self.teacher_tokens.get(teacher, 0) + tokens
            if cost is not None:
                self.teacher_cost[teacher] = self.teacher_cost.get(teacher, 0.0) + cost
        if self._progress is not None:
            self._progress.update(
                self._requests,
                completed=self.requests_done,
                total=self.requests_planned or None,
                extra=self.usage_text(),
            )
        elif done and time.monotonic() - self._last_log >= self.log_every:
            self._log(f"requests {self.requests_done}/{self.requests_planned}, {self.usage_text()}")

    def usage_text(self) -> str:
        """e.g. `12,400 tokens, $0.0310` or, with two teachers, `... (reasoner 9,000 $0.0310;
        judge 3,400)`; costs only appear for teachers with prices."""
        text = f"{self.tokens:,} tokens"
        if self.teacher_cost:
            text += f", ${sum(self.teacher_cost.values()):.4f}"
        if len(self.teacher_tokens) > 1:
            parts = []
            for name, count in self.teacher_tokens.items():
                cost = self.teacher_cost.get(name)
                parts.append(f"{name} {count:,}" + (f" ${cost:.4f}" if cost is not None else ""))
            text += f" ({'; '.join(parts)})"
        return text

    def log(self, message: str) -> None:
        """One line of news (a phase ended), on the terminal or in the log."""
        self._log(message)

    def _log(self, message: str) -> None:
        self._last_log = time.monotonic()
        stamp = time.strftime("%H:%M:%S")
        console = self._progress.console if self._progress is not None else self.console
        console.print(f"[dim]{stamp}[/] {message}", highlight=False)
