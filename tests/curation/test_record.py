"""The record schema: the public Llama-Nemotron SFT layout reads in and survives parquet."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from curation.record import ARROW_SCHEMA, ForeignRow, Record, from_table, record_id, to_table

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
