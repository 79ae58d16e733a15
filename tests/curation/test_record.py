"""The record schema: the public Llama-Nemotron SFT layout reads in and survives parquet."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.record import (
    ARROW_SCHEMA,
    ForeignRow,
    Record,
    from_table,
    record_id,
    to_table,
)
from curation.store import parquet_bytes

FIXTURE = Path(__file__).parent.parent / "data" / "nemotron_sft_sample.jsonl"


def fixture_rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_public_layout_reads_into_records():
    records = [ForeignRow.model_validate(row).to_record("sft") for row in fixture_rows()]
    first = records[0]
    assert first.input == [{"role": "user", "content": fixture_rows()[0]["input"][0]["content"]}]
    assert first.reasoning == "on" and first.system_prompt == "detailed thinking on"
    assert first.used_in_training == ["Ultra", "Super", "Nano"]
    assert records[4].used_in_training == []
    assert first.output.startswith("<think>")
    assert len({r.id for r in records}) == len(records)


def test_parquet_round_trip_keeps_every_public_field(tmp_path):
    records = [ForeignRow.model_validate(row).to_record("sft") for row in fixture_rows()]
    records[0].scores = {"filters.math_verify": 1.0}
    records[0].meta = {"answer": "42"}
    pq.write_table(to_table(records), tmp_path / "part.parquet")
    table = pq.read_table(tmp_path / "part.parquet")
    assert table.schema.equals(ARROW_SCHEMA)
    back = from_table(table)
    assert back == records
    for row, original in zip(back, fixture_rows(), strict=True):
        assert row.output == original["output"]
        assert row.category == original["category"]
        assert row.license == original["license"]
        assert row.generator == original["generator"]
        assert row.version == original["version"]
        assert ", ".join(row.used_in_training) == original["used_in_training"]


def test_system_turn_in_input_becomes_the_system_prompt():
    row = ForeignRow.model_validate(
        {
            "input": [
                {"role": "system", "content": "detailed thinking off"},
                {"role": "user", "content": "hi"},
            ],
            "output": "hello",
        }
    ).to_record()
    assert row.input == [{"role": "user", "content": "hi"}]
    assert row.system_prompt == "detailed thinking off"


def test_record_ids_are_stable_and_distinct():
    a = record_id("math", "p1", [{"role": "user", "content": "x"}], "gen", "on0")
    assert a == record_id("math", "p1", [{"role": "user", "content": "x"}], "gen", "on0")
    assert a != record_id("math", "p1", [{"role": "user", "content": "x"}], "gen", "on1")
    assert len(a) == 16


def test_messages_alias():
    record = Record(id="r", input=[{"role": "user", "content": "q"}])
    assert record.messages is record.input


def _to_table_by_rows(records: list[Record]) -> pa.Table:
    """The row-wise builder `to_table` replaced (asdict per row); the reference it must equal."""
    rows = []
    for r in records:
        row = r.to_dict()
        row["scores"] = [{"key": k, "value": v} for k, v in sorted(r.scores.items())]
        row["meta"] = [{"key": k, "value": v} for k, v in sorted(r.meta.items())]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def varied_records() -> list[Record]:
    return [
        Record(id="empty", input=[]),
        Record(
            id="full",
            input=[
                {"role": "user", "content": "Combien font 2+2 ? 数学 λ∑ 🙂"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "and\nagain\t\u2028"},
            ],
            output="<think>\nplan\n</think>\n\n\\boxed{4}",
            system_prompt="detailed thinking on",
            reasoning="on",
            category="math",
            generator="DeepSeek-R1",
            license="cc-by-4.0",
            source="s",
            source_id="17",
            expected_answer="4",
            scores={"z": 0.5, "filters.quality": 1.0, "a": -2.0, "tokens": 12.0, "m": 3},
            version="v1.1",
            used_in_training=["Ultra", "Super", "Nano"],
            meta={"zeta": "ζ", "answer": "4", "": "empty key", "tests": '[{"input": "1"}]'},
            stage=None,
            reason=None,
        ),
        Record(
            id="dropped",
            input=[{"role": "user", "content": "q"}],
            expected_answer=None,
            used_in_training=[],
            meta={"b": "", "a": "x"},
            stage="filters.think_format",
            reason="format_missing_think",
        ),
        Record(id="nulls", input=[{"role": "user"}], scores={"b": None, "a": 1}, meta={"k": None}),
        Record(id="ünïcödé-ид", input=[{"role": "user", "content": "\x00nul"}], output="é" * 300),
    ]


def test_to_table_equals_the_row_wise_table_and_parquet_bytes():
    records = varied_records()
    for chunk in (records, records[:1], [], records * 50):
        new, old = to_table(chunk), _to_table_by_rows(chunk)
        assert new.schema.equals(ARROW_SCHEMA) and new.equals(old)
        assert new.to_pylist() == old.to_pylist()
        new_sink, old_sink = pa.BufferOutputStream(), pa.BufferOutputStream()
        pq.write_table(new, new_sink, compression="zstd")
        pq.write_table(old, old_sink, compression="zstd")
        assert new_sink.getvalue().to_pybytes() == old_sink.getvalue().to_pybytes()
        assert parquet_bytes(chunk) == parquet_bytes([Record.from_dict(r.to_dict()) for r in chunk])


def test_from_table_reads_back_every_record_and_tolerates_missing_columns():
    records = varied_records()
    table = to_table(records)
    assert from_table(table) == [Record.from_dict(row) for row in table.to_pylist()]
    clean = [r for r in records if r.id != "nulls"]  # a missing `content` reads back as None
    assert from_table(to_table(clean)) == clean
    partial = to_table(clean).select(["input", "id", "scores"])
    assert from_table(partial) == [Record(id=r.id, input=r.input, scores=r.scores) for r in clean]
