"""Code filters: Tree-sitter parse validation and sandboxed execution against tests.

DESIGN §6; arXiv 2505.00949 §3.1.2 (code SFT data: solutions are generated for competitive
programming problems and kept only when they are syntactically valid and pass the tests).

    stages:
      - {type: filters.code_parse, params: {language: python}}   # meta["code"], or a drop
      - {type: filters.code_exec, params: {min_pass_rate: 1.0}}  # runs meta["code"] in the jail

The sandbox (filters/sandbox/, docs/sandbox.md) runs Python only; C++ and Java are parsed, not run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Literal

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter, StageResult
from filters.code_parse import (
    GRAMMARS,
    ensure_grammar,
    extract_blocks,
    extract_code,
    python_compile_error,
    syntax_error,
)
from filters.sandbox import Limits
from filters.sandbox.harness import (
    TestOutcome,
    TestReport,
    function_tests,
    io_test,
    parse_io_tests,
    split_assert_tests,
)

if TYPE_CHECKING:
    from curation.context import RunContext

_WHICH = ("last", "first", "all")


@register_stage("filters.code_parse")
@dataclass
class CodeParse(Filter):
    """Keeps rows whose answer has a fenced code block that Tree-sitter parses without error.

    Reads `output` (only the text after `</think>`); writes `meta["code"]` (the chosen block, or
    all blocks joined), `meta["code_language"]`, and on a syntax error `meta["code_error"]`
    ("line 3, column 5: missing ')'", prefixed "block 2: " with `which: all`).
    Blocks count when labelled `language` (```python / ```py, ```cpp / ```c++, ```java) or,
    with `unlabeled`, carry no label. Python blocks are also checked by CPython's parser
    (`python_compile`), as the Tree-sitter grammar accepts Python 2 prints.

    Reasons: `code_missing_block`, `code_empty_block`, `code_syntax_error`.

    Example: output "<think>..</think>```python\\ndef f(:\\n```" -> Drop("code_syntax_error"),
    meta["code_error"] = "line 1, column 7: missing ')'".
    """

    requires: ClassVar[tuple[str, ...]] = ("output",)
    provides: ClassVar[tuple[str, ...]] = ("meta.code", "meta.code_language")

    language: str = "python"  # python, cpp or java (needs tree-sitter-<language>)
    which: Literal["last", "first", "all"] = "last"  # which block is the solution
    unlabeled: bool = True  # count ``` blocks with no language label
    python_compile: bool = True  # also run CPython's parser on Python blocks (no execution)

    def __post_init__(self) -> None:
        if self.language not in GRAMMARS:
            raise ValueError(
                f"filters.code_parse: language must be one of {', '.join(GRAMMARS)}, "
                f"got {self.language!r}"
            )
        if self.which not in _WHICH:
            raise ValueError(
                f"filters.code_parse: which must be one of {_WHICH}, got {self.which!r}"
            )
        ensure_grammar(self.language)  # fail at recipe load, with the pip install hint

    def keep(self, record: Record) -> bool | Drop:
        blocks = extract_blocks(record.output, self.language, self.unlabeled)
        if not blocks:
            return Drop("code_missing_block")
        chosen = (
            blocks if self.which == "all" else [blocks[-1] if self.which == "last" else blocks[0]]
        )
        record.meta["code"] = "\n\n".join(chosen)
        record.meta["code_language"] = self.language
        if not all(code.strip() for code in chosen):
            return Drop("code_empty_block")
        for index, code in enumerate(chosen, 1):
            error = syntax_error(code, self.language)
            if error is None and self.language == "python" and self.python_compile:
                error = python_compile_error(code)
            if error is not None:
                prefix = f"block {index}: " if len(chosen) > 1 else ""
                record.meta["code_error"] = prefix + error
                return Drop("code_syntax_error")
        return True


# Which reason a failing row gets: the worst thing that happened in any of its tests.
_REASONS = {
    "timeout": "code_timeout",
    "memory": "code_memory",
    "output_limit": "code_output_limit",
    "crashed": "code_crashed",
}

Job = Callable[[], list[TestOutcome]]


def _one(job: Callable[[], TestOutcome]) -> list[TestOutcome]:
    return [job()]


@register_stage("filters.code_exec")
@dataclass
class CodeExec(Filter):
    """Runs the row's Python solution against its tests in the sandbox; keeps it at a pass rate
    of at least `min_pass_rate`.

    Reads the program from `meta["code"]` (set by `filters.code_parse`) or else the `which`
    Python block of `output`; the tests from `meta["io_tests"]` (JSON list of {input, output},
    one sandbox run each) or `meta["tests"]` (assert lines, or a HumanEval `check(candidate)`
    called on `meta["entry_point"]` or `expected_answer`; one sandbox run for all). Writes
    `scores["filters.code_exec"]` = pass rate, `meta["tests_passed"]`, `meta["tests_total"]`,
    and `meta["test_results"]` (JSON list of {outcome, detail}, first `max_results` tests).
    `time_limit_s` is per sandbox run. Runs up to `workers` sandboxes at once.

    Reasons: `code_missing_block`, `code_language_unsupported`, `code_no_tests`,
    `code_bad_tests`; below the threshold the worst outcome among the tests: `code_timeout`,
    `code_memory`, `code_output_limit`, `code_crashed` (died before or while testing: syntax
    error, exit at import, a signal), else `code_tests_failed`.

    Example: meta["tests"] = "assert add(1, 2) == 3\\nassert add(2, 2) == 5" with a correct
    `add` -> score 0.5, Drop("code_tests_failed") at min_pass_rate 1.0, kept at 0.5.
    """

    requires: ClassVar[tuple[str, ...]] = ("output",)
    provides: ClassVar[tuple[str, ...]] = (
        "scores.filters.code_exec",
        "meta.tests_passed",
        "meta.tests_total",
        "meta.test_results",
    )

    min_pass_rate: float = 1.0  # arXiv 2505.00949 §3.1.2 keeps solutions that pass the tests
    time_limit_s: float = 4.0  # wall clock per sandbox run
    cpu_limit_s: int = 2  # CPU seconds per sandbox run
    memory_mb: int = 512  # address space per run
    max_procs: int = 32  # processes + threads per run
    max_output_kb: int = 1024  # stdout and file size cap per run
    no_network: bool = True  # run in an empty network namespace
    workers: int = 0  # sandboxes at once; 0 = os.cpu_count()
    which: Literal["last", "first", "all"] = "last"  # block choice when meta["code"] is absent
    max_results: int = 50  # tests listed in meta["test_results"]

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_pass_rate <= 1.0:
            raise ValueError(
                f"filters.code_exec: min_pass_rate must be in [0, 1], got {self.min_pass_rate}"
            )
        if self.which not in _WHICH:
            raise ValueError(
                f"filters.code_exec: which must be one of {_WHICH}, got {self.which!r}"
            )
        if self.workers < 0:
            raise ValueError(f"filters.code_exec: workers must be >= 0, got {self.workers}")
        self._limits()  # range checks now rather than at the first row

    def _limits(self) -> Limits:
        return Limits(
            wall_s=self.time_limit_s,
            cpu_s=self.cpu_limit_s,
            memory_mb=self.memory_mb,
            max_procs=self.max_procs,
            output_bytes=self.max_output_kb << 10,
            no_network=self.no_network,
        )

    def _plan(self, record: Record) -> list[Job] | Drop:
        """The sandbox jobs for one row, or why there are none."""
        language = record.meta.get("code_language", "python")
        if language != "python":
            return Drop("code_language_unsupported")
        code = record.meta.get("code") or extract_code(record.output, "python", self.which)
        if not code or not code.strip():
            return Drop("code_missing_block")
        limits = self._limits()
        try:
            if record.meta.get("io_tests", "").strip():
                cases = parse_io_tests(record.meta["io_tests"])
                return [
                    partial(_one, partial(io_test, code, case, limits)) for case in cases
                ] or Drop("code_no_tests")
            if record.meta.get("tests", "").strip():
                entry = record.meta.get("entry_point") or record.expected_answer
                steps = split_assert_tests(record.meta["tests"], entry)
                if not any(kind == "test" for kind, _ in steps):
                    return Drop("code_no_tests")
                return [partial(function_tests, code, steps, limits)]
        except ValueError as exc:
            record.meta["code_error"] = str(exc)[:200]
            return Drop("code_bad_tests")
        return Drop("code_no_tests")

    def _finish(self, record: Record, outcomes: list[TestOutcome]) -> bool | Drop:
        report = TestReport(outcomes)
        rate = report.pass_rate
        record.scores[self.stage_type] = rate
        record.meta["tests_passed"] = str(report.passed)
        record.meta["tests_total"] = str(report.total)
        record.meta["test_results"] = report.to_json(self.max_results)
        if rate >= self.min_pass_rate:
            return True
        seen = {o.outcome for o in outcomes}
        reason = next((r for kind, r in _REASONS.items() if kind in seen), "code_tests_failed")
        return Drop(reason, score=rate)

    def _verdicts(self, records: list[Record]) -> Iterator[bool | Drop]:
        plans = [self._plan(r) for r in records]
        workers = self.workers or os.cpu_count() or 1
        with ThreadPoolExecutor(workers, thread_name_prefix="sandbox") as pool:
            futures = [
                plan if isinstance(plan, Drop) else [pool.submit(job) for job in plan]
                for plan in plans
            ]
            for record, pending in zip(records, futures, strict=True):
                if isinstance(pending, Drop):
                    yield pending
                else:
                    outcomes = [o for future in pending for o in future.result()]
                    yield self._finish(record, outcomes)

    def keep(self, record: Record) -> bool | Drop:
        return next(self._verdicts([record]))

    def judge(self, records: list[Record]) -> StageResult:
        """All rows' sandbox runs at once on a thread pool, then the base class's bookkeeping."""
        verdicts = self._verdicts(records)
        return Filter.judge(_Replay(self.stage_type, verdicts), records)  # type: ignore[arg-type]

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        # The work happens in sandbox subprocesses; a thread pool here already fills every core,
        # so the context's process pool would only add a second layer of workers.
        return await asyncio.to_thread(self.judge, records)


@dataclass
class _Replay:
    """Stands in for the stage in `Filter.judge`: its `keep` hands out precomputed verdicts."""

    stage_type: str
    verdicts: Iterator[bool | Drop]

    def keep(self, record: Record) -> bool | Drop:
        return next(self.verdicts)


__all__ = ["CodeExec", "CodeParse"]
