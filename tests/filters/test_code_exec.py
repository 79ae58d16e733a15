"""filters.code_exec and the test harnesses: function (assert / check) and stdin/stdout tests,
pass rates, drop reasons, and an end-to-end run on tinyworld code tasks."""

import json
import pickle

import pytest

from curation import tinyworld
from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.code import CodeExec, CodeParse
from filters.sandbox import Limits, SandboxError, run_python
from filters.sandbox.harness import (
    outputs_match,
    parse_io_tests,
    run_function_tests,
    run_io_tests,
    split_assert_tests,
)

FAST = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, max_procs=16, output_bytes=64 << 10)
FAST_PARAMS = {"time_limit_s": 1.5, "cpu_limit_s": 1, "memory_mb": 256, "max_output_kb": 64}
ADD = "def add(a, b):\n    return a + b\n"
SUM_STDIN = "a, b = map(int, input().split())\nprint(a + b)\n"


@pytest.fixture(scope="module", autouse=True)
def _jail_works():
    try:
        run_python("pass", FAST)
    except SandboxError as exc:
        pytest.skip(f"sandbox unavailable here: {exc}")


def outcomes(report):
    return [o.outcome for o in report.outcomes]


def test_split_assert_tests():
    tests = (
        "import math\nassert add(1, 2) == 3\n\ndef helper():\n    return 1\nassert helper() == 1"
    )
    assert [kind for kind, _ in split_assert_tests(tests)] == ["setup", "test", "setup", "test"]
    check = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    assert split_assert_tests(check, "add")[-1] == ("test", "check(add)")
    with pytest.raises(ValueError, match="entry point"):
        split_assert_tests(check, None)
    with pytest.raises(ValueError, match="do not parse"):
        split_assert_tests("assert (", None)


def test_function_tests_pass_fail_partial():
    tests = (
        "assert add(1, 2) == 3\nassert add(1, 1) == 3\nassert add(2, 2) == 4\nassert add(0, 0) == 1"
    )
    report = run_function_tests(ADD, tests, FAST)
    assert outcomes(report) == ["passed", "failed", "passed", "failed"]
    assert (report.passed, report.total, report.pass_rate) == (2, 4, 0.5)
    assert run_function_tests(ADD, "assert add(1, 2) == 3", FAST).pass_rate == 1.0


def test_function_tests_humaneval_check():
    check = (
        "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"
    )
    assert run_function_tests(ADD, check, FAST, entry_point="add").pass_rate == 1.0
    wrong = "def add(a, b):\n    return a * b\n"
    assert outcomes(run_function_tests(wrong, check, FAST, entry_point="add")) == ["failed"]


def test_function_tests_errors_and_hangs():
    code = "def f(x):\n    if x == 1:\n        raise KeyError(x)\n    if x == 2:\n        while True:\n            pass\n    return x\n"
    tests = "assert f(0) == 0\nassert f(1) == 1\nassert f(2) == 2\nassert f(3) == 3"
    report = run_function_tests(code, tests, FAST)
    # tests reported before the hang keep their verdicts; the rest took the run's fate
    assert outcomes(report) == ["passed", "error", "timeout", "timeout"]
    assert report.outcomes[1].detail == "KeyError: 1"


def test_function_tests_solution_that_dies_or_cheats():
    assert outcomes(run_function_tests("def f(:", "assert f()", FAST)) == ["crashed"]
    assert outcomes(run_function_tests("raise SystemExit(0)", "assert f()", FAST)) == ["crashed"]
    assert outcomes(run_function_tests("import os\nos._exit(0)", "assert f()", FAST)) == ["crashed"]
    main_guard = ADD + "if __name__ == '__main__':\n    input()\n"  # not run as __main__
    assert run_function_tests(main_guard, "assert add(1, 1) == 2", FAST).pass_rate == 1.0


@pytest.mark.parametrize(
    ("got", "expected", "match"),
    [("3\n", "3", True), ("1 2  \n3\n\n", "1 2\n3", True), ("3", "4", False), (" 3", "3", False)],
)
def test_outputs_match(got, expected, match):
    assert outputs_match(got, expected) is match


def test_io_tests_pass_fail_partial():
    cases = [
        {"input": "1 2\n", "output": "3\n"},
        {"input": "2 2\n", "output": "5\n"},
        {"input": "10 -3", "output": "7"},
    ]
    report = run_io_tests(SUM_STDIN, cases, FAST, workers=2)
    assert outcomes(report) == ["passed", "failed", "passed"]
    assert report.pass_rate == pytest.approx(2 / 3)
    assert outcomes(run_io_tests("while True: pass", cases[:1], FAST)) == ["timeout"]
    assert outcomes(run_io_tests("x = int('a')", cases[:1], FAST)) == ["crashed"]


def test_parse_io_tests_forms():
    cases = [{"input": "1", "output": "2"}]
    assert parse_io_tests(json.dumps(cases)) == cases
    assert parse_io_tests(json.dumps({"inputs": ["1"], "outputs": ["2"]})) == cases
    with pytest.raises(ValueError):
        parse_io_tests(json.dumps([{"input": "1"}]))


def code_row(code, tests=None, io_tests=None, expected=None, reasoning=True):
    answer = f"```python\n{code}\n```"
    record = Record(
        id="x",
        input=[{"role": "user", "content": "solve"}],
        output=f"<think>plan</think>{answer}" if reasoning else answer,
        reasoning="on" if reasoning else "off",
        expected_answer=expected,
    )
    if tests is not None:
        record.meta["tests"] = tests
    if io_tests is not None:
        record.meta["io_tests"] = json.dumps(io_tests)
    return record


TWO = "assert add(1, 2) == 3\nassert add(2, 2) == 5"


@pytest.mark.parametrize(
    ("code", "tests", "io_tests", "params", "verdict", "score"),
    [
        (ADD, "assert add(1, 2) == 3", None, {}, True, 1.0),
        (ADD, TWO, None, {}, "code_tests_failed", 0.5),
        (ADD, TWO, None, {"min_pass_rate": 0.5}, True, 0.5),
        (SUM_STDIN, None, [{"input": "1 2", "output": "3"}], {}, True, 1.0),
        (SUM_STDIN, None, [{"input": "1 2", "output": "4"}], {}, "code_tests_failed", 0.0),
        ("while True:\n    pass", "assert True", None, {}, "code_timeout", 0.0),
        ("x = bytearray(10 * 1024**3)", "assert True", None, {}, "code_memory", 0.0),
        ("print('x' * 10**6)", "assert True", None, {}, "code_output_limit", 0.0),
        ("import os\nos._exit(0)", "assert True", None, {}, "code_crashed", 0.0),
        ("def f(:", "assert True", None, {}, "code_crashed", 0.0),
        (ADD, None, None, {}, "code_no_tests", None),
        (ADD, "x = 1", None, {}, "code_no_tests", None),
        (ADD, None, [], {}, "code_no_tests", None),
        (ADD, "assert (", None, {}, "code_bad_tests", None),
        (ADD, None, {"not": "cases"}, {}, "code_bad_tests", None),
    ],
)
def test_code_exec_verdicts(code, tests, io_tests, params, verdict, score):
    record = code_row(code, tests, io_tests)
    got = CodeExec(**{**FAST_PARAMS, **params}).keep(record)
    if verdict is True:
        assert got is True
    else:
        assert got == Drop(verdict, score=score or 0.0)
    if score is not None:
        assert record.scores["filters.code_exec"] == score
        results = json.loads(record.meta["test_results"])
        assert len(results) == int(record.meta["tests_total"])
        assert sum(r["outcome"] == "passed" for r in results) == int(record.meta["tests_passed"])


def test_code_exec_reads_code_parse_output_and_rejects_other_languages():
    record = code_row("ignored = 1", "assert add(2, 2) == 4")
    record.meta["code"] = ADD
    assert CodeExec(**FAST_PARAMS).keep(record) is True
    cpp = code_row("int main() {}", "assert True")
    cpp.meta["code_language"] = "cpp"
    assert CodeExec(**FAST_PARAMS).keep(cpp) == Drop("code_language_unsupported")
    assert CodeExec(**FAST_PARAMS).keep(code_row("", "assert True")) == Drop("code_missing_block")


def test_code_exec_entry_point_from_expected_answer():
    check = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    assert CodeExec(**FAST_PARAMS).keep(code_row(ADD, check, expected="add")) is True


def test_code_exec_params_checked_and_registered():
    assert stage_class("filters.code_exec") is CodeExec
    for bad in ({"min_pass_rate": 1.5}, {"workers": -1}, {"which": "x"}, {"memory_mb": 1}):
        with pytest.raises(ValueError):
            CodeExec(**bad)
    stage = pickle.loads(pickle.dumps(CodeExec(min_pass_rate=0.5)))
    assert stage.min_pass_rate == 0.5


def broken_variants(task):
    """(output, expected pass rate) pairs that are wrong in different ways for one task."""
    good = tinyworld.format_output(task, reasoning=True)
    name = task.expected_answer
    n = task.tests.count("assert")
    wrong = good.replace("    return ", "    return None and ")  # returns None: fails all
    crash = good.replace("    return ", "    raise ValueError\n    return ")
    renamed = good.replace(f"def {name}(", f"def {name}_v2(")  # NameError in every test
    syntax = good.replace(f"def {name}(x):", f"def {name}(x)")
    hang = good.replace("    return ", "    while True:\n        pass\n    return ")
    return [(wrong, 0.0, n), (crash, 0.0, n), (renamed, 0.0, n), (syntax, None, n), (hang, 0.0, n)]


def test_end_to_end_tinyworld_code_tasks():
    tasks = tinyworld.generate("code", 20, seed=7)
    records, expected = [], {}
    for index, task in enumerate(tasks):
        variants = [(tinyworld.format_output(task, reasoning=True), 1.0, None)]
        variants += broken_variants(task) if index < 4 else []
        for k, (output, rate, _) in enumerate(variants):
            record = Record(
                id=f"{task.task_id}-{k}",
                input=[{"role": "user", "content": task.prompt}],
                output=output,
                reasoning="on",
                expected_answer=task.expected_answer,
            )
            record.meta["tests"] = task.tests
            records.append(record)
            expected[record.id] = rate
    parsed = CodeParse().judge(records)
    assert {r.id for r in parsed.rejected} == {i for i, rate in expected.items() if rate is None}
    assert {r.reason for r in parsed.rejected} == {"code_syntax_error"}
    executed = CodeExec(**{**FAST_PARAMS, "time_limit_s": 1.0}).judge(parsed.kept)
    rates = {r.id: r.scores["filters.code_exec"] for r in executed.kept + executed.rejected}
    assert rates == {i: rate for i, rate in expected.items() if rate is not None}
    assert {r.id for r in executed.kept} == {i for i, rate in expected.items() if rate == 1.0}
    assert len(executed.kept) == 20
    reasons = {r.reason for r in executed.rejected}
    assert reasons == {"code_tests_failed", "code_timeout"}
    assert all(r.meta["tests_total"] == "3" for r in executed.kept)
