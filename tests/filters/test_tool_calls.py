"""filters.tool_call_valid: declared tool, JSON arguments, JSON-schema validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.context import RunContext
from curation.record import Record
from curation.registry import stage_class
from curation.sources import JsonlSource
from filters.tool_calls import ToolCallValid, parse_tool_calls

DATA = Path(__file__).parent.parent / "data"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "spots": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOLS = json.dumps([WEATHER])


def answer(*calls: object, raw: str | None = None) -> str:
    return f"<TOOLCALL>{raw if raw is not None else json.dumps(list(calls))}</TOOLCALL>"


def call(arguments: object, name: str = "get_weather") -> dict:
    return {"name": name, "arguments": arguments}


def row(output: str, tools: str | None = TOOLS) -> Record:
    meta = {} if tools is None else {"tools": tools}
    return Record(id="r", input=[], output=output, meta=meta, source="s", source_id="4")


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        (answer(call({"city": "Oslo"})), True),
        (answer(call({"city": "Oslo", "days": 3, "unit": "celsius", "spots": ["a"]})), True),
        (answer(call('{"city": "Oslo"}')), True),  # OpenAI wire form: a JSON string
        (answer({"type": "function", "function": {"name": "get_weather",
                                                  "arguments": '{"city": "Oslo"}'}}), True),
        ("<think>\nuse the tool\n</think>\n\n" + answer(call({"city": "Oslo"})), True),
        ("It is sunny in Oslo.", True),  # no call: nothing to check
        (answer(call({"city": "Oslo"}, name="book_table")), "tool_call_unknown_function"),
        (answer(call('{"city": "Oslo"')), "tool_call_bad_json"),
        (answer(raw='[{"name": "get_weather", "arguments": {}'), "tool_call_bad_json"),
        (answer(raw='[{"arguments": {}}]'), "tool_call_bad_json"),
        ("<TOOLCALL>[]", "tool_call_bad_json"),
        (answer(call({"city": 42})), "tool_call_schema:get_weather.city"),
        (answer(call({})), "tool_call_schema:get_weather.city"),
        (answer(call({"city": "Oslo", "unit": "kelvin"})), "tool_call_schema:get_weather.unit"),
        (answer(call({"city": "Oslo", "days": 0})), "tool_call_schema:get_weather.days"),
        (answer(call({"city": "Oslo", "spots": ["a", 2]})), "tool_call_schema:get_weather.spots.1"),
        (answer(call({"city": "Oslo", "mood": "good"})), "tool_call_schema:get_weather.mood"),
        (answer(call(["Oslo"])), "tool_call_schema:get_weather"),
        (answer(call({"city": "Oslo"}), call({"city": 1})), "tool_call_schema:get_weather.city"),
    ],
)  # fmt: skip
def test_tool_call_valid(output, verdict):
    result = ToolCallValid().keep(row(output))
    assert result is True if verdict is True else result.reason == verdict


def test_reasons_keep_details_and_options():
    record = row(answer(call({})))
    assert ToolCallValid().judge([record]).rejected == [record]
    assert record.meta["tool_call_error"] == "get_weather.city: 'city' is a required property"
    assert ToolCallValid(require_call=True).keep(row("plain text")).reason == "tool_call_missing"
    assert ToolCallValid().keep(row(answer(call({})), tools=None)).reason == (
        "tool_call_unknown_function"
    )
    broken = json.dumps([{"function": {"name": "f", "parameters": {"type": "nonsense"}}}])
    assert ToolCallValid().keep(row(answer(call({}, "f")), broken)).reason == (
        "tool_schema_invalid:f"
    )
    with pytest.raises(ValueError, match="row s:4: meta.tools"):
        ToolCallValid().keep(row(answer(call({})), tools="[oops"))


def test_parse_tool_calls_reads_every_block():
    text = answer(call({"city": "A"})) + " and " + answer(call('{"city": "B"}'))
    assert parse_tool_calls(text) == [call({"city": "A"}), call({"city": "B"})]
    assert parse_tool_calls("no calls") == []


def test_fixture_rows_end_to_end(tmp_path):
    """The tool_calling layout's rows through the registered stage: each bad row has its reason."""
    ctx = RunContext(dataset="d", version="v", seed=0, base_dir=tmp_path)
    rows = list(JsonlSource(path=str(DATA / "tool_calls.jsonl"), layout="tool_calling").read(ctx))
    result = stage_class("filters.tool_call_valid")(require_call=True).judge(rows)
    assert sorted(r.source_id for r in result.kept) == ["legacy-functions", "two-calls",
                                                        "weather-ok"]  # fmt: skip
    assert {r.source_id: r.reason for r in result.rejected} == {
        "weather-answered": "tool_call_missing",  # the final answer is plain text
        "unknown-function": "tool_call_unknown_function",
        "bad-json": "tool_call_bad_json",
        "wrong-type": "tool_call_schema:add_task.priority",
        "missing-required": "tool_call_schema:add_task.priority",
        "bad-enum": "tool_call_schema:get_weather.unit",
        "prompt-only": "tool_call_missing",
    }
