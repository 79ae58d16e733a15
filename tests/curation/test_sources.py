"""Sources: tinyworld problems and local jsonl, with errors naming file, line and field."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from curation.context import RunContext
from curation.registry import stage_class
from curation.sources import JsonlSource, SourceError, _parse_line

FIXTURE = Path(__file__).parent.parent / "data" / "nemotron_sft_sample.jsonl"


def context(tmp_path: Path) -> RunContext:
    return RunContext(dataset="t", version="v", seed=0, base_dir=tmp_path)


def test_tinyworld_math_is_deterministic_and_has_gold_answers(tmp_path):
    source = stage_class("tinyworld.math")(count=5, seed=1)
    first = list(source.read(context(tmp_path)))
    assert [r.id for r in first] == [r.id for r in source.read(context(tmp_path))]
    assert all(r.expected_answer and r.category == "math" for r in first)
    assert len({r.id for r in first}) == 5


def test_problem_layout_reads_prompt_and_answer(tmp_path):
    (tmp_path / "p.jsonl").write_text(
        '{"id": "a", "problem": "1+1?", "answer": 2}\n\n{"id": "b", "problem": "2+2?", "answer": "4"}\n'
    )
    rows = list(JsonlSource(path="p.jsonl").read(context(tmp_path)))
    assert [(r.source_id, r.expected_answer) for r in rows] == [("a", "2"), ("b", "4")]
    assert rows[0].input == [{"role": "user", "content": "1+1?"}]


def test_nemotron_layout_reads_finished_samples(tmp_path):
    rows = list(JsonlSource(path=str(FIXTURE), layout="nemotron").read(context(tmp_path)))
    assert len(rows) == 5 and rows[0].output.startswith("<think>")
    assert rows[0].version == "v1"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"problem": "ok"}\n{"problem": \n', "p.jsonl:2: invalid JSON"),
        (b'{"problem": 5}\n', "p.jsonl:1: problem: expected a non-empty string, got int"),
        (b'{"question": "x"}\n', "p.jsonl:1: problem: expected a non-empty string, missing"),
        (b'["a list"]\n', "p.jsonl:1: expected a JSON object, got list"),
        (b'{"problem": "\xff"}\n', "p.jsonl:1: invalid UTF-8 at byte 13"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, content, expected):
    (tmp_path / "p.jsonl").write_bytes(content)
    with pytest.raises(SourceError) as info:
        list(JsonlSource(path="p.jsonl").read(context(tmp_path)))
    assert str(info.value).startswith(expected)


def test_nemotron_layout_names_the_bad_field(tmp_path):
    (tmp_path / "n.jsonl").write_text('{"input": "hi", "output": "x", "reasoning": "maybe"}\n')
    with pytest.raises(SourceError, match=r"n.jsonl:1: reasoning: "):
        list(JsonlSource(path="n.jsonl", layout="nemotron").read(context(tmp_path)))


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="input file not found"):
        list(JsonlSource(path="absent.jsonl").read(context(tmp_path)))


DATA = Path(__file__).parent.parent / "data"


def read(tmp_path: Path, name: str, **params) -> list:
    return list(JsonlSource(path=str(DATA / name), **params).read(context(tmp_path)))


def test_code_task_layouts_collect_io_tests(tmp_path):
    taco, contests = read(tmp_path, "code_tasks.jsonl", layout="code_task")
    assert taco.category == "code" and "sum" in taco.input[0]["content"]
    assert json.loads(taco.meta["io_tests"]) == [
        {"input": "1 2\n", "output": "3\n"},
        {"input": "5 7\n", "output": "12\n"},
    ]
    assert [t["output"] for t in json.loads(contests.meta["io_tests"])] == ["cba\n", "yx\n"]


def test_mcq_layout_accepts_letters_mappings_and_indices(tmp_path):
    rows = read(tmp_path, "mcq.jsonl", layout="mcq")
    assert [r.expected_answer for r in rows] == ["B", "C", "B"]
    assert rows[0].input[0]["content"].endswith("B) Carbon dioxide\nC) Nitrogen\nD) Helium")
    assert all(r.category == "science" for r in rows)


def test_conversations_cut_after_the_last_user_turn(tmp_path):
    (sharegpt,) = read(tmp_path, "sharegpt.jsonl", layout="conversation", category="chat")
    assert [t["role"] for t in sharegpt.input] == ["user", "assistant", "user"]
    assert sharegpt.input[-1]["content"] == "Another one?"
    (wildchat,) = read(
        tmp_path, "wildchat.jsonl", layout="conversation", id_field="conversation_hash"
    )
    assert wildchat.input == [{"role": "user", "content": "Write a haiku about rain."}]
    assert wildchat.source_id == "w1"


def test_parquet_source_streams_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.sources import ParquetSource

    pq.write_table(
        pa.table({"problem": ["1+1?", "2+3?"], "answer": ["2", "5"]}), tmp_path / "p.parquet"
    )
    rows = list(ParquetSource(path="p.parquet").read(context(tmp_path)))
    assert [r.expected_answer for r in rows] == ["2", "5"]
    assert rows[1].source_id == "2"


@pytest.mark.parametrize(
    ("layout", "content", "expected"),
    [
        (
            "mcq",
            '{"question": "q", "choices": ["a", "b"], "answer": "E"}',
            "x.jsonl:1: answer: 'E' is not one",
        ),
        (
            "mcq",
            '{"question": "q", "choices": "ab", "answer": "A"}',
            "x.jsonl:1: choices: expected a list",
        ),
        (
            "code_task",
            '{"question": "q", "input_output": "{bad"}',
            "x.jsonl:1: input_output: invalid JSON",
        ),
        (
            "conversation",
            '{"conversations": [{"from": "gpt", "value": "hi"}]}',
            "x.jsonl:1: conversations: no user turn",
        ),
        (
            "conversation",
            '{"conversations": [{"who": "x"}]}',
            "x.jsonl:1: conversations[0]: expected",
        ),
    ],
)
def test_layout_errors_name_the_field(tmp_path, layout, content, expected):
    (tmp_path / "x.jsonl").write_text(content + "\n")
    with pytest.raises(SourceError) as info:
        list(JsonlSource(path="x.jsonl", layout=layout).read(context(tmp_path)))
    assert str(info.value).startswith(expected)


# --- the fast JSON parser against json.loads ----------------------------------------------


def _parse_with_json_loads(path: Path, lineno: int, raw: bytes) -> object:
    """`_parse_line` before the fast parser: the reference for values and messages."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SourceError(f"{path.name}:{lineno}: invalid UTF-8 at byte {exc.start}")
    try:
        row = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return SourceError(f"{path.name}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return SourceError(f"{path.name}:{lineno}: invalid JSON: nested too deeply")
    if not isinstance(row, dict):
        return SourceError(
            f"{path.name}:{lineno}: expected a JSON object, got {type(row).__name__}"
        )
    return row


TRICKY_LINES = [
    b'{"a": 1e2, "b": -0, "c": 1.0, "d": 10E-1, "e": 5e-324, "f": 1E400, "g": -0.0}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809, "x": 0.1e1}',
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"a": 1, "b": 2, "a": 3}',  # duplicate key: last value, first position
    b'{"s": "\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t \\" \\\\", "\\u0000": "\x7f\xc2\x80"}',
    b'{"lone": "\\ud800"}',  # valid for json.loads, refused by pydantic-core
    b"[" * 300 + b"]" * 300,
    b"[" * 1100 + b"]" * 1100,
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": "\xff"}',
    b'{"a": "\xed\xa0\x80"}',
    b'{"a": "\xc0\xaf"}',
    b'{"a": "x\x01y"}',
    b'{"a": 1} x',
    b'{"a": 01}',
    b'{"a": .5}',
    b'{"a": 1.}',
    b'{"a": +1}',
    b'{"a": [1,]}',
    b"{'a': 1}",
    b'{"a": 1}\r\n',
    b'\t{"a":\x0c1}\n',
    b'"a string"\n',
    b"42\n",
    b"null\n",
    b'{"problem": \n',
]


def test_parse_line_gives_what_json_loads_gives():
    path, rng = Path("rows.jsonl"), random.Random(0)
    tokens = [b"{", b"}", b"[", b"]", b",", b":", b'"a"', b'"\\u00e9"', b'"\\ud800"', b"1", b"-",
              b".", b"e", b"+", b"true", b"null", b"NaN", b" ", b'"', b"\\", b"\xc3\xa9", b"\xff",
              b"\x01", b"0", b"5"]  # fmt: skip
    fuzzed = [
        b'{"k": ' + b"".join(rng.choice(tokens) for _ in range(rng.randint(1, 10))) + b"}"
        for _ in range(20000)
    ]
    for raw in TRICKY_LINES + fuzzed:
        new, old = _parse_line(path, 7, raw), _parse_with_json_loads(path, 7, raw)
        if isinstance(old, SourceError):
            assert isinstance(new, SourceError) and str(new) == str(old), raw
        else:  # repr tells 1 from 1.0 and shows key order
            assert repr(new) == repr(old), raw
