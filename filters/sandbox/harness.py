"""Test harnesses on top of `run_python`: assert-style function tests and stdin/stdout tests.

- Function tests (HumanEval / MBPP style): `tests` is Python source. Each top-level `assert` is
  one test; other top-level statements (imports, helpers, `def check(candidate)`) are setup run
  in order. When there is no top-level assert but a `check` function, the one test is
  `check(<entry_point>)` (HumanEval). One sandbox run executes the solution and every test; each
  verdict is written to fd 3 as it happens, so tests that passed before a hang still count.
- Stdin/stdout tests (CodeContests / TACO / APPS style): a list of `{"input", "output"}`; one
  sandbox run per case, compared line by line with trailing whitespace ignored.

Only the function harness runs inside the program's interpreter, so a solution written to
forge its verdicts could; stdin/stdout verdicts are decided in the parent. docs/sandbox.md.
"""

from __future__ import annotations

import ast
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal

from filters.sandbox.core import DEFAULT_LIMITS, Limits, RunResult, run_python

Outcome = Literal["passed", "failed", "error", "timeout", "memory", "output_limit", "crashed"]
DETAIL_CHARS = 200

_HARNESS = """\
import json, os, sys
_out = os.fdopen(3, "w", buffering=1)
_steps = json.loads({steps!r})
_g = {{"__name__": "solution", "__builtins__": __builtins__}}

def _report(**row):
    _out.write(json.dumps(row) + "\\n")
    _out.flush()

def _describe(exc):
    return (type(exc).__name__ + ": " + str(exc))[:{chars}]

try:
    with open("solution.py", encoding="utf-8") as _f:
        _code = compile(_f.read(), "solution.py", "exec")
    exec(_code, _g)
except BaseException as _e:
    _report(setup_error=_describe(_e), exc=type(_e).__name__)
    sys.exit(1)
_i = 0
for _kind, _src in _steps:
    try:
        exec(compile(_src, "tests.py", "exec"), _g)
        _row = dict(ok=True, detail="", exc="")
    except BaseException as _e:
        _row = dict(ok=False, detail=_describe(_e), exc=type(_e).__name__)
    if _kind == "test":
        _report(i=_i, **_row)
        _i += 1
    elif not _row["ok"]:
        _report(setup_error="tests setup: " + _row["detail"], exc=_row["exc"])
        sys.exit(1)
"""


@dataclass(slots=True)
class TestOutcome:
    outcome: Outcome
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


@dataclass(slots=True)
class TestReport:
    outcomes: list[TestOutcome] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def to_json(self, max_items: int = 50) -> str:
        rows = [asdict(o) for o in self.outcomes[:max_items]]
        return json.dumps(rows, ensure_ascii=False)


def split_assert_tests(tests: str, entry_point: str | None = None) -> list[tuple[str, str]]:
    """`tests` source -> [("setup" | "test", statement source)] in order; see the module doc.

    Raises ValueError when the tests do not parse, or use `check` with no entry point."""
    try:
        tree = ast.parse(tests)
    except SyntaxError as exc:
        raise ValueError(f"tests do not parse: line {exc.lineno}: {exc.msg}") from exc
    steps = [
        ("test" if isinstance(node, ast.Assert) else "setup", ast.get_source_segment(tests, node))
        for node in tree.body
    ]
    if any(kind == "test" for kind, _ in steps):
        return steps  # type: ignore[return-value]
    defines_check = any(
        isinstance(node, ast.FunctionDef) and node.name == "check" for node in tree.body
    )
    if defines_check:
        if not entry_point or not entry_point.isidentifier():
            raise ValueError(f"tests define check(candidate) but entry point is {entry_point!r}")
        steps.append(("test", f"check({entry_point})"))
    return steps  # type: ignore[return-value]


def _failed_run(result: RunResult) -> TestOutcome:
    """What a test that reported nothing gets, from how the run ended."""
    if result.status in ("timeout", "memory", "output_limit"):
        return TestOutcome(result.status)
    return TestOutcome("crashed", result.stderr[-DETAIL_CHARS:])


def function_tests(
    code: str, steps: list[tuple[str, str]], limits: Limits = DEFAULT_LIMITS
) -> list[TestOutcome]:
    """One sandbox run of `code` against `steps` (from `split_assert_tests`)."""
    harness = _HARNESS.format(steps=json.dumps(steps), chars=DETAIL_CHARS)
    result = run_python(harness, limits, files={"solution.py": code}, want_results=True)
    n_tests = sum(kind == "test" for kind, _ in steps)
    outcomes: dict[int, TestOutcome] = {}
    missing = _failed_run(result)
    for line in result.results.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill
        if "setup_error" in row:  # the solution (or the tests' setup) raised: no test ran
            detail = str(row["setup_error"])[:DETAIL_CHARS]
            missing = TestOutcome(_error_kind(row.get("exc", ""), detail, "crashed"), detail)
        elif isinstance(row.get("i"), int) and 0 <= row["i"] < n_tests:
            outcomes[row["i"]] = _row_outcome(row)
    return [outcomes.get(i, missing) for i in range(n_tests)]


def _row_outcome(row: dict) -> TestOutcome:
    if row.get("ok") is True:
        return TestOutcome("passed")
    detail = str(row.get("detail", ""))[:DETAIL_CHARS]
    return TestOutcome(_error_kind(row.get("exc", ""), detail, "error"), detail)


def _error_kind(exc: str, detail: str, default: Outcome) -> Outcome:
    """The outcome for an exception the harness caught, by its type name and message."""
    if exc == "AssertionError":
        return "failed"
    if exc == "MemoryError":
        return "memory"
    if "[Errno 27]" in detail:  # EFBIG: RLIMIT_FSIZE (Python ignores SIGXFSZ)
        return "output_limit"
    return default


def outputs_match(got: str, expected: str) -> bool:
    """Line by line, trailing whitespace and trailing blank lines ignored."""

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.rstrip().splitlines()]

    return lines(got) == lines(expected)


def io_test(code: str, case: dict, limits: Limits = DEFAULT_LIMITS) -> TestOutcome:
    """One sandbox run of `code` with `case["input"]` on stdin, checked against `case["output"]`."""
    result = run_python(code, limits, stdin=str(case.get("input", "")))
    if result.status != "ok":
        return _failed_run(result)
    if outputs_match(result.stdout, str(case.get("output", ""))):
        return TestOutcome("passed")
    return TestOutcome("failed", f"got {result.stdout[:DETAIL_CHARS]!r}")


def parse_io_tests(text: str) -> list[dict]:
    """`meta["io_tests"]` JSON -> cases; also accepts {"inputs": [...], "outputs": [...]} (TACO)."""
    data = json.loads(text)
    if isinstance(data, dict) and "inputs" in data and "outputs" in data:
        data = [
            {"input": i, "output": o} for i, o in zip(data["inputs"], data["outputs"], strict=True)
        ]
    if not isinstance(data, list) or not all(
        isinstance(c, dict) and "input" in c and "output" in c for c in data
    ):
        raise ValueError("io tests must be a JSON list of {input, output} objects")
    return data


def run_function_tests(
    code: str, tests: str, limits: Limits = DEFAULT_LIMITS, entry_point: str | None = None
) -> TestReport:
    return TestReport(function_tests(code, split_assert_tests(tests, entry_point), limits))


def run_io_tests(
    code: str, cases: list[dict], limits: Limits = DEFAULT_LIMITS, workers: int = 1
) -> TestReport:
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return TestReport(list(pool.map(lambda c: io_test(code, c, limits), cases)))
