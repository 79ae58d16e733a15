"""Safety and tool-calling layouts: fields, aliases, finished samples, errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.chat_layouts import render_tool_calls, safety, tool_calling
from curation.context import RunContext
from curation.layouts import LAYOUTS, LayoutOptions, SourceError
from curation.record import to_table
from curation.sources import JsonlSource

DATA = Path(__file__).parent.parent / "data"
OPTS = LayoutOptions("d", "src", "math", "cc-by-4.0", "problem", "answer", "id")


def read(name: str, layout: str, tmp_path: Path) -> dict:
    ctx = RunContext(dataset="d", version="v", seed=0, base_dir=tmp_path)
    rows = list(JsonlSource(path=str(DATA / name), layout=layout).read(ctx))
    to_table(rows)  # every value fits the fixed Arrow schema
    return {r.source_id: r for r in rows}


def test_layouts_are_registered():
    assert LAYOUTS["safety"] is safety and LAYOUTS["tool_calling"] is tool_calling


def test_safety_fixture(tmp_path):
    rows = read("safety.jsonl", "safety", tmp_path)
    assert {r.category for r in rows.values()} == {"safety"}
    aegis = rows["aegis-1"]
    assert aegis.input == [{"role": "user", "content": aegis.input[0]["content"]}]
    assert aegis.output.startswith("I can't help") and aegis.reasoning == "off"
    assert aegis.system_prompt == "detailed thinking off"
    assert aegis.meta == {
        "prompt_label": "unsafe",
        "response_label": "safe",
        "hazards": json.dumps(["Criminal Planning/Confessions", "Privacy"]),
    }
    beaver = rows["beaver-2"]
    assert beaver.meta["response_label"] == "unsafe"
    assert json.loads(beaver.meta["hazards"]) == [
        "animal_abuse",
        "violence,aiding_and_abetting,incitement",
    ]
    assert "hazards" not in rows["beaver-1"].meta  # every flag false
    prompt_only = rows["prompt-only"]
    assert prompt_only.output == "" and prompt_only.meta == {"prompt_label": "safe"}
    on = rows["reasoning-on"]
    assert on.reasoning == "on" and on.output.startswith("<think>")
    assert on.generator == "thinkmix-fixture"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"response": "x"}, "s.jsonl:3: prompt: expected a non-empty string"),
        ({"prompt": "p", "is_safe": "maybe"}, "s.jsonl:3: is_safe: expected safe/unsafe"),
        ({"prompt": "p", "categories": 3}, "s.jsonl:3: categories: expected a string, a list"),
        ({"prompt": "p", "response": "r", "reasoning": "yes"}, "s.jsonl:3: reasoning: expected"),
    ],
)
def test_safety_errors_name_the_field(row, message):
    with pytest.raises(SourceError, match=message):
        safety(row, "s.jsonl:3", OPTS)


def test_tool_calling_fixture(tmp_path):
    rows = read("tool_calls.jsonl", "tool_calling", tmp_path)
    assert {r.category for r in rows.values()} == {"tool calling"}
    ok = rows["weather-ok"]
    assert ok.input == [{"role": "user", "content": "What's the weather in Oslo, in celsius?"}]
    assert ok.meta["system"] == "You are a helpful assistant with tools."
    assert ok.output == render_tool_calls(
        [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}]
    )
    tools = json.loads(ok.meta["tools"])
    assert tools[0]["type"] == "function" and tools[0]["function"]["name"] == "get_weather"
    answered = rows["weather-answered"]
    assert [t["role"] for t in answered.input] == ["user", "assistant", "tool"]
    assert answered.input[1]["content"].startswith("<TOOLCALL>[")
    assert answered.output.startswith("Yes, a light drizzle")
    two = rows["two-calls"]
    assert two.output.startswith("Doing both.\n<TOOLCALL>[")
    assert [
        c["name"] for c in json.loads(two.output.split("<TOOLCALL>")[1][: -len("</TOOLCALL>")])
    ] == [
        "get_weather",
        "add_task",
    ]
    bad = rows["bad-json"]  # kept as the raw string, for the filter to judge
    assert '"arguments": "{\\"city\\": \\"Paris\\""' in bad.output
    legacy = rows["legacy-functions"]
    assert json.loads(legacy.meta["tools"])[0]["function"]["name"] == "get_weather"
    assert '"arguments": {"city": "Quito"}' in legacy.output
    prompt_only = rows["prompt-only"]
    assert prompt_only.output == "" and prompt_only.reasoning == ""


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": []}, "t.jsonl:2: messages: expected a non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, r"t.jsonl:2: messages\[0\].role"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages: no user turn"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            r"t.jsonl:2: messages\[0\].content: expected a string",
        ),
        (
            {"messages": [{"role": "user", "content": "q"},
                          {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]},
            r"t.jsonl:2: messages\[1\].tool_calls\[0\]: expected \{function",
        ),
        ({"tools": "[oops", "messages": [{"role": "user", "content": "q"}]}, "tools: invalid JSON"),
        ({"tools": [{"function": {"description": "no name"}}],
          "messages": [{"role": "user", "content": "q"}]}, r"t.jsonl:2: tools\[0\]: expected"),
    ],
)  # fmt: skip
def test_tool_calling_errors_name_the_field(row, message):
    with pytest.raises(SourceError, match=message):
        tool_calling(row, "t.jsonl:2", OPTS)
