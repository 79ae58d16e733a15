"""What a stage may use while it runs: cached teachers, a CPU pool, the seed and progress.

`RunContext` is created by the runner for one build. Stages ask it for a teacher by the name the
recipe gives (`ctx.teacher("reasoner")`) and get a `CachedTeacher`: the backend behind the
request cache, with usage counted for the manifest and the progress display.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from curation.cache import RequestCache
from curation.generation import GenerationRequest, GenerationResponse
from curation.record import Record

T = TypeVar("T")


@dataclass
class TeacherUsage:
    requests: int = 0  # requests answered (new + cached)
    new_requests: int = 0  # requests sent to the backend and answered
    cached_requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class CachedTeacher:
    """A backend behind the request cache. Misses go to the backend in chunks, each committed."""

    def __init__(
        self,
        name: str,
        backend: Any,
        cache: RequestCache,
        on_progress: Callable[..., None] | None = None,
    ) -> None:
        """`on_progress(done, tokens, planned=0, *, teacher, cost)`, as `BuildProgress.requests`."""
        self.name, self.backend, self.cache = name, backend, cache
        self.usage = TeacherUsage()
        self._on_progress = on_progress or (lambda *args, **kwargs: None)
        # USD for (prompt, completion) tokens when the backend knows its prices, else None.
        self._cost: Callable[[int, int], float | None] = getattr(
            backend, "cost", lambda prompt, completion: None
        )
        fingerprint = getattr(backend, "fingerprint", "")
        self.identity = f"{backend.model}@{fingerprint}" if fingerprint else backend.model
        self.chunk_size = max(1, int(getattr(backend, "batch_size", 16)))  # one commit per batch

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in order; each distinct request reaches the backend once.

        A request equal to an earlier one in the same call (same key) gets that one's response,
        counted as cached: it is what the cache would answer on a rerun, so a build and its
        resumed rerun write the same rows.
        """
        keys = [r.key(self.backend.name, self.identity) for r in requests]
        hits = self.cache.get_many(keys)
        out: list[GenerationResponse | None] = [None] * len(requests)
        misses: list[int] = []
        first: dict[str, int] = {}  # key -> index of the miss that asks for it
        repeats: list[tuple[int, int]] = []  # (index, index of the first equal request)
        for i, key in enumerate(keys):
            if key in hits:
                out[i] = GenerationResponse(**hits[key], cached=True)
            elif key in first:
                repeats.append((i, first[key]))
            else:
                first[key] = i
                misses.append(i)
        self._on_progress(0, 0, len(requests))
        self._count(out, [i for i in range(len(requests)) if out[i] is not None])

        async def run(chunk: list[int]) -> None:
            responses = await self.backend.generate([requests[i] for i in chunk])
            done = []
            for i, response in zip(chunk, responses, strict=True):
                out[i] = response
                if response.error is None:
                    done.append((keys[i], response.to_dict()))
            # Committed per chunk, so a killed build loses at most the chunks in flight.
            self.cache.put_many(self.backend.name, self.identity, done)
            self._count(out, chunk)

        # All chunks are handed over at once: an HTTP backend bounds its own concurrency, and an
        # in-process model serialises them; either way one slow chunk does not hold the others.
        chunks = [misses[s : s + self.chunk_size] for s in range(0, len(misses), self.chunk_size)]
        await asyncio.gather(*(run(chunk) for chunk in chunks))
        for i, j in repeats:
            out[i] = replace(out[j], cached=True)  # type: ignore[arg-type]
        self._count(out, [i for i, _ in repeats])
        return out  # type: ignore[return-value]

    def _count(self, out: list[GenerationResponse | None], indices: list[int]) -> None:
        if not indices:
            return
        prompt_tokens = completion_tokens = 0
        new_tokens = [0, 0]  # (prompt, completion) of answers paid for in this run
        for i in indices:
            response = out[i]
            assert response is not None, "every counted request has a response"
            self.usage.requests += 1
            if response.error is not None:
                self.usage.failed_requests += 1
            elif response.cached:
                self.usage.cached_requests += 1
            else:
                self.usage.new_requests += 1
                new_tokens[0] += response.prompt_tokens
                new_tokens[1] += response.completion_tokens
            prompt_tokens += response.prompt_tokens
            completion_tokens += response.completion_tokens
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self._on_progress(
            len(indices),
            completion_tokens,
            teacher=self.name,
            cost=self._cost(*new_tokens),
        )


@dataclass
class RunContext:
    dataset: str
    version: str
    seed: int
    base_dir: Path = Path(".")
    store: Any = None  # the curation.store.Store being built into (sources read parents from it)
    teachers: dict[str, CachedTeacher] = field(default_factory=dict)
    workers: int = 1
    # The recipe's `on_error`: "fail" raises on a bad input row; "skip" makes sources append
    # {where, reason, raw} entries to `quarantine`, which the runner writes into the version.
    on_error: str = "fail"
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    _pool: ProcessPoolExecutor | None = None

    def teacher(self, name: str) -> CachedTeacher:
        if name not in self.teachers:
            raise KeyError(f"unknown teacher {name!r}; teachers: {', '.join(self.teachers)}")
        return self.teachers[name]

    async def run_cpu(
        self, fn: Callable[[list[Record]], T], records: list[Record], min_chunk: int = 64
    ) -> list[T] | T:
        """Run a CPU-bound `fn(records) -> StageResult` over chunks in the process pool.

        Small inputs run inline: starting worker processes costs more than it saves.
        """
        from curation.stage import StageResult

        if self.workers <= 1 or len(records) < 2 * min_chunk:
            return fn(records)
        if self._pool is None:
            # spawn, not fork: the parent holds torch's thread pools, which do not survive fork
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        size = max(min_chunk, -(-len(records) // (self.workers * 2)))
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(*(loop.run_in_executor(self._pool, fn, c) for c in chunks))
        merged = StageResult()
        for part in parts:
            merged.kept += part.kept
            merged.rejected += part.rejected
            merged.failed += part.failed
        return merged  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        for teacher in self.teachers.values():
            teacher.backend.close()


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
