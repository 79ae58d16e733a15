"""Sources: tinyworld problems and local jsonl, with errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.context import RunContext
from curation.registry import stage_class
from curation.sources import JsonlSource, SourceError

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
