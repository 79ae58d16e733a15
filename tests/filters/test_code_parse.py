"""Code extraction and filters.code_parse (Tree-sitter + CPython parse validation)."""

import pickle

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.code import CodeParse
from filters.code_parse import code_blocks, extract_code, python_compile_error, syntax_error

FENCE = "```"


def fenced(code, label="python"):
    return f"{FENCE}{label}\n{code}\n{FENCE}"


@pytest.mark.parametrize(
    ("output", "language", "which", "expected"),
    [
        (fenced("print(1)"), "python", "last", "print(1)"),
        (fenced("print(1)", "py"), "python", "last", "print(1)"),
        (fenced("print(1)", "Python3"), "python", "last", "print(1)"),
        (fenced("print(1)", ""), "python", "last", "print(1)"),  # unlabeled counts
        (fenced("a = 1") + "\ntext\n" + fenced("b = 2"), "python", "last", "b = 2"),
        (fenced("a = 1") + "\ntext\n" + fenced("b = 2"), "python", "first", "a = 1"),
        (fenced("a = 1") + "\n" + fenced("b = 2"), "python", "all", "a = 1\n\nb = 2"),
        (fenced("echo hi", "bash") + "\n" + fenced("x = 1"), "python", "last", "x = 1"),
        (fenced("echo hi", "bash"), "python", "last", None),  # other languages never count
        ("no code here", "python", "last", None),
        (f"{FENCE}python\nprint(1)", "python", "last", None),  # truncated: never closed
        (f"<think>{fenced('wrong = 1')}</think>answer", "python", "last", None),
        (
            f"<think>{fenced('draft = 1')}</think>{fenced('final = 1')}",
            "python",
            "last",
            "final = 1",
        ),
        (f"<think>{fenced('draft = 1')}", "python", "last", None),  # unclosed think: no answer
        (fenced("int main() {}", "cpp"), "cpp", "last", "int main() {}"),
        (fenced("int main() {}", "c++"), "cpp", "last", "int main() {}"),
        (fenced("int main() {}", "cpp"), "python", "last", None),
        (fenced("class A {}", "java"), "java", "last", "class A {}"),
        ("Here:\n   ```python\nx = 1\n   ```\n", "python", "last", "x = 1"),  # indented fence
        (fenced("s = '''\nkeep\n\n'''"), "python", "last", "s = '''\nkeep\n\n'''"),
    ],
)
def test_extract_code(output, language, which, expected):
    assert extract_code(output, language, which) == expected


def test_extract_code_unlabeled_opt_out_and_bad_which():
    assert extract_code(fenced("x = 1", ""), unlabeled=False) is None
    with pytest.raises(ValueError, match="which"):
        extract_code("", which="middle")


def test_code_blocks_keep_raw_labels():
    blocks = code_blocks(fenced("x", "rust") + "\n" + fenced("y", ""))
    assert [(b.language, b.code) for b in blocks] == [("rust", "x"), (None, "y")]


@pytest.mark.parametrize(
    ("code", "language", "error"),
    [
        ("def f(x):\n    return x + 1\n", "python", None),
        ("def f(:\n    pass", "python", "line 1, column 7: missing ')'"),
        ("x = (1,\n", "python", "line 1, column 1: unexpected 'x = (1,'"),
        ("int main() { return 0; }", "cpp", None),
        ("int main() { return 0 }", "cpp", "line 1, column 22: missing ';'"),
        ("class A { int f() { return 1; } }", "java", None),
        ("class A { void f() { int x = ; } }", "java", "line 1, column 28: unexpected '='"),
    ],
)
def test_syntax_error(code, language, error):
    assert syntax_error(code, language) == error


def test_python_compile_catches_what_tree_sitter_accepts():
    assert syntax_error('print "hi"', "python") is None  # the grammar knows Python 2
    assert python_compile_error('print "hi"').startswith("line 1, column 1: Missing parentheses")
    assert python_compile_error("x = 1\n") is None


def row(output):
    return Record(id="x", input=[{"role": "user", "content": "write f"}], output=output)


@pytest.mark.parametrize(
    ("output", "params", "verdict", "error"),
    [
        (fenced("def f():\n    return 1"), {}, True, None),
        ("no code", {}, "code_missing_block", None),
        (fenced("   "), {}, "code_empty_block", None),
        (fenced("def f(:\n    pass"), {}, "code_syntax_error", "line 1, column 7: missing ')'"),
        (fenced('print "x"'), {}, "code_syntax_error", None),
        (fenced('print "x"'), {"python_compile": False}, True, None),
        (fenced("x = 1") + fenced("y = ("), {"which": "all"}, "code_syntax_error", None),
        (fenced("x = (") + "\n" + fenced("y = 1"), {"which": "last"}, True, None),
        (fenced("int main() { return 0; }", "cpp"), {"language": "cpp"}, True, None),
        (fenced("int f() { return 0 }", "cpp"), {"language": "cpp"}, "code_syntax_error", None),
        (fenced("class A { }", "java"), {"language": "java"}, True, None),
    ],
)
def test_code_parse_stage(output, params, verdict, error):
    record = row(output)
    got = CodeParse(**params).keep(record)
    assert got == (verdict if verdict is True else Drop(verdict))
    if verdict is True:
        assert record.meta["code_language"] == params.get("language", "python")
    if error is not None:
        assert record.meta["code_error"] == error


def test_code_parse_all_blocks_names_the_bad_block():
    record = row(fenced("x = 1") + "\n" + fenced("y = ("))
    assert CodeParse(which="all").keep(record) == Drop("code_syntax_error")
    assert record.meta["code_error"].startswith("block 2: ")


def test_code_parse_registered_validated_and_picklable():
    assert stage_class("filters.code_parse") is CodeParse
    with pytest.raises(ValueError, match="language"):
        CodeParse(language="cobol")
    with pytest.raises(ValueError, match="which"):
        CodeParse(which="middle")
    stage = pickle.loads(pickle.dumps(CodeParse(language="cpp")))
    result = stage.judge([row(fenced("int main() {}", "cpp")), row("none")])
    assert [r.reason for r in result.rejected] == ["code_missing_block"]
    assert result.kept[0].scores == {"filters.code_parse": 1.0}
