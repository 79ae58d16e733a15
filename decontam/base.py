"""What every decontamination stage shares: benchmark parameters, row text, verdicts, matches.

A concrete stage implements `find(texts, ctx) -> list[Match | None]`, one verdict per row text.
The base turns those into the record columns (DESIGN §7), so every method is audited alike:

- `scores[STAGE]`: the match score in [0, 1] (0.0 when nothing matched);
- on a match the row is dropped with reason `contaminated_METHOD` (or `duplicate_METHOD`), and
  `meta[STAGE]` holds the match as JSON: {"benchmark", "item_id", "score", ...method details}.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from curation.record import Record
from curation.stage import Stage, StageResult
from decontam.bench import Benchmark, load_benchmarks

if TYPE_CHECKING:
    from curation.context import RunContext

# Bump with any change to normalisation or hashing: it keys the on-disk indices.
DECONTAM_VERSION = 1
TEXT_FIELDS = ("input", "output", "reasoning")


@dataclass(frozen=True, slots=True)
class Match:
    """One row matched one benchmark item; `details` are method specific (counts, n, ...)."""

    benchmark: str
    item_id: str
    score: float
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # overrides the stage's default reason (a within-blend duplicate)

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "item_id": self.item_id, "score": self.score} | dict(
            self.details
        )


def record_text(record: Record, fields: list[str] | tuple[str, ...]) -> str:
    """The text of `fields` of a record: `input` (user turns), `output`, `reasoning`, `meta.KEY`."""
    parts: list[str] = []
    for name in fields:
        if name == "input":
            parts += [m.get("content", "") for m in record.input if m.get("role") != "system"]
        elif name.startswith("meta."):
            parts.append(record.meta.get(name[5:], ""))
        else:
            value = getattr(record, name)
            parts.append(value if isinstance(value, str) else "")
    return "\n".join(p for p in parts if p)


def check_fields(fields: list[str], owner: str) -> None:
    for name in fields:
        if name not in TEXT_FIELDS and not name.startswith("meta."):
            raise ValueError(
                f"{owner}: fields entries must be one of {', '.join(TEXT_FIELDS)} or meta.KEY, "
                f"got {name!r}"
            )


@dataclass
class DecontamStage(Stage):
    """Base of the decontamination stages (see the module docstring)."""

    kind: ClassVar[str] = "filter"
    method: ClassVar[str] = ""

    benchmarks: list[str] = field(default_factory=lambda: ["humaneval"])
    bench_field: str | None = None  # benchmark column holding the item text (NAME=PATH specs)
    bench_id_field: str | None = None  # benchmark column holding the item id
    fields: list[str] = field(default_factory=lambda: ["input", "output"])  # row text to check
    cache_dir: str = ""  # on-disk index cache; default STORE/.cache (or BASE_DIR/.thinkmix-cache)

    def __post_init__(self) -> None:
        if isinstance(self.benchmarks, str):
            self.benchmarks = [b.strip() for b in self.benchmarks.split(",") if b.strip()]
        if not self.benchmarks:
            raise ValueError(f"{self.stage_type}: benchmarks must name at least one benchmark")
        check_fields(self.fields, self.stage_type)
        self._loaded: list[Benchmark] | None = None
        # Batches of a streamed build call one stage at once; its lazy indexes (and their
        # on-disk caches) must be built once, so its CPU work runs one call at a time.
        self._lock = threading.Lock()

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.fields)

    @property
    def provides(self) -> tuple[str, ...]:  # type: ignore[override]
        return (f"scores.{self.stage_type}", f"meta.{self.stage_type}")

    def load(self) -> list[Benchmark]:
        if self._loaded is None:
            self._loaded = load_benchmarks(self.benchmarks, self.bench_field, self.bench_id_field)
        return self._loaded

    @staticmethod
    def cache_root(ctx: object | None) -> Path | None:
        """Where a build keeps derived files: beside the request cache in the store, so that
        building a shipped recipe never writes into the installed package."""
        store = getattr(ctx, "store", None)
        if store is not None:
            return store.root / ".cache"
        return getattr(ctx, "base_dir", None)

    def cache_path(self, base_dir: Path | None) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        return Path(base_dir or ".") / ".thinkmix-cache" / "decontam"

    def find(
        self, texts: list[str], ctx: RunContext | None, ids: list[str] | None = None
    ) -> list[Match | None]:
        """One verdict per text; `ids` are the rows' ids (for within-blend matches)."""
        raise NotImplementedError(f"{type(self).__name__} must implement find()")

    async def run_locked(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` in a thread (the event loop stays free), one call of this stage at a time."""

        def locked() -> Any:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def find_async(
        self, texts: list[str], ctx: RunContext, ids: list[str]
    ) -> list[Match | None]:
        """The verdicts; CPU methods run in a thread so the event loop stays free."""
        return await self.run_locked(self.find, texts, ctx, ids)

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        texts = [record_text(r, self.fields) for r in records]
        ids = [r.id for r in records]
        return self.apply_matches(records, await self.find_async(texts, ctx, ids))

    def apply_matches(self, records: list[Record], matches: list[Match | None]) -> StageResult:
        result = StageResult()
        for record, match in zip(records, matches, strict=True):
            record.scores[self.stage_type] = match.score if match else 0.0
            if match is None:
                result.kept.append(record)
                continue
            record.meta[self.stage_type] = json.dumps(match.as_dict(), sort_keys=True)
            record.stage = self.stage_type
            record.reason = match.reason or f"contaminated_{self.method}"
            result.rejected.append(record)
        return result
