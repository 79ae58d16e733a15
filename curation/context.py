"""What a stage may use while it runs: cached teachers, a CPU pool, the seed and progress.

`RunContext` is created by the runner for one build. Stages ask it for a teacher by the name the
recipe gives (`ctx.teacher("reasoner")`) and get a `CachedTeacher`: the backend behind the
request cache, with usage counted for the manifest and the progress display.
"""

from __future__ import annotations

import asyncio
import contextvars
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


# The shard whose batch is running in this asyncio task: usage is counted per shard, so a
# shard's manifest entry says what it needed, however the calls of many shards interleave.
CURRENT_SHARD: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "thinkmix_shard", default=None
)


def backend_concurrency(backend: Any) -> int | None:
    """Calls an HTTP backend keeps in flight (`max_concurrency`); None for batch backends."""
    options = getattr(backend, "options", None)
    value = getattr(options, "max_concurrency", None) or getattr(backend, "max_concurrency", None)
    return int(value) if value else None


@dataclass
class _Group:
    """Requests of one `generate` call that differ only in their sample index.

    A group is never split between backend calls, so an HTTP backend asks for its samples with
    one `n=k` call whatever else is in flight, and the answers do not depend on timing.
    """

    requests: list[GenerationRequest]
    keys: list[str]
    future: asyncio.Future


class CachedTeacher:
    """A backend behind the request cache, shared by every batch in flight.

    Misses go out as soon as they are asked for, from whichever stage and shard: an HTTP backend
    (one with `max_concurrency`) gets one call per prompt group and bounds its own concurrency,
    so it always has work queued while any batch waits; a batch backend (an in-process model,
    offline vLLM) gets the queued groups of all callers coalesced into batches of `batch_size`.
    Every answer is committed to the cache as its call returns.
    """

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
        self.usage_by_shard: dict[int, TeacherUsage] = {}
        self._on_progress = on_progress or (lambda *args, **kwargs: None)
        # USD for (prompt, completion) tokens when the backend knows its prices, else None.
        self._cost: Callable[[int, int], float | None] = getattr(
            backend, "cost", lambda prompt, completion: None
        )
        fingerprint = getattr(backend, "fingerprint", "")
        self.identity = f"{backend.model}@{fingerprint}" if fingerprint else backend.model
        self.chunk_size = max(1, int(getattr(backend, "batch_size", 16)))
        self.concurrency = backend_concurrency(backend)
        options = getattr(backend, "options", None)
        # Samples of one prompt that an HTTP backend asks for in one call (`n`).
        self._per_call = (
            int(getattr(options, "max_n", 1)) if getattr(options, "group_samples", False) else 1
        )
        # Work the backend has been handed and not finished: calls for an HTTP backend,
        # requests for a batch backend (the units `capacity` counts in).
        self.outstanding = 0
        self.listeners: list[Callable[[], None]] = []  # told when `outstanding` drops
        self._queue: list[_Group] = []  # batch backends: groups waiting for the dispatcher
        self._dispatching = False
        # key -> (future of the group asking for it, its place in that group)
        self._pending: dict[str, tuple[asyncio.Future, int]] = {}

    @property
    def capacity(self) -> int:
        """Requests the backend works on at once: its concurrency, or its batch size."""
        return self.concurrency or self.chunk_size

    @property
    def hungry(self) -> bool:
        """True while the backend has less than two rounds of work handed to it: then a new
        batch of rows is worth admitting (`curation.engine.StreamEngine`)."""
        return self.outstanding < 2 * self.capacity

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in order; each distinct request reaches the backend once.

        A request equal to an earlier one (in this call, or in flight for another caller) gets
        that one's response, counted as cached: it is what the cache would answer on a rerun,
        so a build and its resumed rerun write the same rows.
        """
        keys = [r.key(self.backend.name, self.identity) for r in requests]
        hits = self.cache.get_many(keys)
        out: list[GenerationResponse | None] = [None] * len(requests)
        by_prompt: dict[tuple, list[int]] = {}
        first: dict[str, int] = {}  # key -> index of the miss in this call that asks for it
        repeats: list[tuple[int, int]] = []  # (index, index of the first equal request)
        waits: list[tuple[int, asyncio.Future, int]] = []  # requests another caller has pending
        for i, (key, request) in enumerate(zip(keys, requests, strict=True)):
            if key in hits:
                out[i] = GenerationResponse(**hits[key], cached=True)
            elif key in first:
                repeats.append((i, first[key]))
            elif key in self._pending:
                waits.append((i, *self._pending[key]))
            else:
                first[key] = i
                prompt = (request.messages, request.sampling, request.seed)
                by_prompt.setdefault(prompt, []).append(i)
        loop = asyncio.get_running_loop()
        groups: list[tuple[list[int], _Group]] = []
        for members in by_prompt.values():
            group = _Group(
                [requests[i] for i in members], [keys[i] for i in members], loop.create_future()
            )
            groups.append((members, group))
            for place, key in enumerate(group.keys):
                self._pending[key] = (group.future, place)
        self._on_progress(0, 0, len(requests))
        self._progress_free([r for r in out if r is not None])
        for _, group in groups:
            self._submit(group)
        for members, group in groups:
            for i, answer in zip(members, await group.future, strict=True):
                out[i] = answer
        for i, future, place in waits:
            out[i] = replace((await future)[place], cached=True)
        for i, j in repeats:
            out[i] = replace(out[j], cached=True)  # type: ignore[arg-type]
        self._progress_free([out[i] for i, *_ in waits] + [out[i] for i, _ in repeats])  # type: ignore[misc]
        self._count(out)  # type: ignore[arg-type]
        return out  # type: ignore[return-value]

    # -- dispatch -----------------------------------------------------------------------------

    def _units(self, group: _Group) -> int:
        if self.concurrency:
            return -(-len(group.requests) // self._per_call)
        return len(group.requests)

    def _submit(self, group: _Group) -> None:
        self.outstanding += self._units(group)
        if self.concurrency:
            asyncio.get_running_loop().create_task(self._call([group]))
            return
        self._queue.append(group)
        if not self._dispatching:
            self._dispatching = True
            asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Batch backends: hand over queued groups in chunks of `chunk_size` requests."""
        try:
            while self._queue:
                chunk, size = [], 0
                while self._queue and (
                    not chunk or size + len(self._queue[0].requests) <= self.chunk_size
                ):
                    group = self._queue.pop(0)
                    chunk.append(group)
                    size += len(group.requests)
                await self._call(chunk)
        finally:
            self._dispatching = False

    async def _call(self, chunk: list[_Group]) -> None:
        requests = [r for group in chunk for r in group.requests]
        try:
            responses = await self.backend.generate(requests)
        except BaseException as exc:  # a backend bug: every waiting caller sees it
            for group in chunk:
                self._settle(group, exc=exc)
            if not isinstance(exc, Exception):
                raise
            return
        done = []
        start = 0
        for group in chunk:
            answers = responses[start : start + len(group.requests)]
            start += len(group.requests)
            done += [
                (key, answer.to_dict())
                for key, answer in zip(group.keys, answers, strict=True)
                if answer.error is None
            ]
        # Committed as the call returns, so a killed build loses only the calls in flight.
        self.cache.put_many(self.backend.name, self.identity, done)
        start = 0
        for group in chunk:
            answers = responses[start : start + len(group.requests)]
            start += len(group.requests)
            self._progress_new(answers)
            self._settle(group, answers=answers)

    def _settle(
        self, group: _Group, answers: list | None = None, exc: BaseException | None = None
    ) -> None:
        for key in group.keys:
            if self._pending.get(key, (None,))[0] is group.future:
                del self._pending[key]
        self.outstanding -= self._units(group)
        if not group.future.done():
            if exc is not None:
                group.future.set_exception(exc)
            else:
                group.future.set_result(answers)
        for listener in self.listeners:
            listener()

    # -- counting -----------------------------------------------------------------------------

    def _progress_free(self, answers: list[GenerationResponse]) -> None:
        """Live progress for answers that cost nothing here (cached, or another caller's)."""
        if answers:
            tokens = sum(a.completion_tokens for a in answers)
            self._on_progress(len(answers), tokens, teacher=self.name)

    def _progress_new(self, answers: list[GenerationResponse]) -> None:
        """Live progress as calls return (any shard); new answers carry their cost."""
        new = [a for a in answers if a.error is None]
        prompt = sum(a.prompt_tokens for a in new)
        completion = sum(a.completion_tokens for a in new)
        tokens = sum(a.completion_tokens for a in answers)
        self._on_progress(
            len(answers), tokens, teacher=self.name, cost=self._cost(prompt, completion)
        )

    def _count(self, out: list[GenerationResponse]) -> None:
        """Usage of one `generate` call, overall and for the shard of the calling batch."""
        shard = CURRENT_SHARD.get()
        targets = [self.usage]
        if shard is not None:
            targets.append(self.usage_by_shard.setdefault(shard, TeacherUsage()))
        for usage in targets:
            for response in out:
                usage.requests += 1
                if response.error is not None:
                    usage.failed_requests += 1
                elif response.cached:
                    usage.cached_requests += 1
                else:
                    usage.new_requests += 1
                usage.prompt_tokens += response.prompt_tokens
                usage.completion_tokens += response.completion_tokens


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
        self, fn: Callable[[list[Record]], T], records: list[Record], min_chunk: int = 16
    ) -> list[T] | T:
        """Run a CPU-bound `fn(records) -> StageResult` over chunks in the process pool.

        The event loop stays free meanwhile (the teachers' calls keep moving). Tiny inputs and
        single-worker builds run inline: a pool round trip costs more than it saves there.
        """
        from curation.stage import StageResult

        if self.workers <= 1 or len(records) < min_chunk:
            return fn(records)
        if self._pool is None:
            # spawn, not fork: the parent holds torch's thread pools, which do not survive fork
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        size = max(min_chunk, -(-len(records) // self.workers))
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
