"""Tool-call validity: every call in an answer names a declared tool with schema-valid arguments.

Rows come from the `tool_calling` layout (`curation.chat_layouts`) or from a teacher asked with
the row's tools: the declared tools are in `meta["tools"]` (OpenAI form, JSON) and the answer
carries its calls as one or more Llama-Nemotron-style blocks

    <TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</TOOLCALL>

where `arguments` is an object or a JSON string of one (the OpenAI wire form), and an item may
also be an OpenAI `{"type": "function", "function": {"name", "arguments"}}` call.

Arguments are validated against the tool's JSON-schema `parameters` with the `jsonschema`
package (types, required, enum, bounds, additionalProperties, nested items).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from curation.chat_layouts import TOOLCALL_CLOSE, TOOLCALL_OPEN
from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import strip_think

_BLOCK = re.compile(re.escape(TOOLCALL_OPEN) + r"(.*?)" + re.escape(TOOLCALL_CLOSE), re.DOTALL)


class ToolCallProblem(ValueError):
    """Why a call is invalid: `reason` is the drop reason, the message the details."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_tool_calls(text: str) -> list[dict[str, Any]]:
    """The calls in `text` as `[{"name", "arguments"}]` (arguments parsed); [] when none.

    Raises ToolCallProblem `tool_call_bad_json` for an unclosed block, a block that is not a JSON
    list (or object) of calls, a call without a name, or arguments that are not JSON.
    """
    if text.count(TOOLCALL_OPEN) != text.count(TOOLCALL_CLOSE):
        raise ToolCallProblem("tool_call_bad_json", f"unbalanced {TOOLCALL_OPEN} tags")
    calls = []
    for block in _BLOCK.findall(text):
        try:
            items = json.loads(block)
        except json.JSONDecodeError as exc:
            raise ToolCallProblem("tool_call_bad_json", f"tool call block: {exc.msg}") from None
        for item in items if isinstance(items, list) else [items]:
            calls.append(_one_call(item))
    return calls


def _one_call(item: Any) -> dict[str, Any]:
    spec = item.get("function", item) if isinstance(item, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ToolCallProblem("tool_call_bad_json", f"a call needs a name: {item!r:.80}")
    arguments = spec.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolCallProblem(
                "tool_call_bad_json", f"{spec['name']}: arguments are not JSON ({exc.msg})"
            ) from None
    return {"name": spec["name"], "arguments": arguments}


def declared_tools(value: str | None) -> dict[str, dict[str, Any]]:
    """`meta["tools"]` (OpenAI tools JSON) -> {name: parameters schema}; raises ValueError."""
    if not value:
        return {}
    tools = json.loads(value)
    if not isinstance(tools, list):
        raise ValueError(f"expected a list of tools, got {type(tools).__name__}")
    out = {}
    for i, tool in enumerate(tools):
        spec = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError(f"[{i}]: expected {{type: function, function: {{name, parameters}}}}")
        out[spec["name"]] = spec.get("parameters") or {"type": "object", "properties": {}}
    return out


def _path(error: Any) -> list[str]:
    """Where a jsonschema error points, with the missing / extra property named."""
    parts = [str(p) for p in error.absolute_path]
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        parts += [next(p for p in error.validator_value if p not in instance)]
    elif error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in known)
        parts += extra[:1]
    return parts


def check_call(call: dict[str, Any], tools: dict[str, dict[str, Any]]) -> None:
    """Raises ToolCallProblem when `call` is not a valid call of one of `tools`."""
    try:
        from jsonschema import exceptions, validators
    except ImportError as exc:  # pragma: no cover - a dependency of the install
        raise ImportError(
            "filters.tool_call_valid needs jsonschema: pip install jsonschema"
        ) from exc

    name = call["name"]
    if name not in tools:
        raise ToolCallProblem(
            "tool_call_unknown_function",
            f"{name!r} is not a declared tool ({', '.join(tools) or 'none declared'})",
        )
    schema = tools[name]
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as exc:
        raise ToolCallProblem(f"tool_schema_invalid:{name}", exc.message) from None
    error = exceptions.best_match(cls(schema).iter_errors(call["arguments"]))
    if error is not None:
        where = ".".join([name, *_path(error)])
        raise ToolCallProblem(f"tool_call_schema:{where}", f"{where}: {error.message}")


@register_stage("filters.tool_call_valid")
@dataclass
class ToolCallValid(Filter):
    """Keeps rows whose answer's tool calls are all valid calls of the row's declared tools.

    Reads `output` (the text after `</think>`) and `meta.tools`; writes `meta.tool_call_error`
    (the details) on dropped rows. Reasons: `tool_call_bad_json` (a block or arguments that do
    not parse), `tool_call_unknown_function`, `tool_call_schema:<function>.<path>` (the first
    schema error, e.g. `tool_call_schema:add_task.priority`), `tool_schema_invalid:<function>`
    (the declared schema itself is broken), `tool_call_missing` (no call, with `require_call`).
    Rows whose `meta.tools` is not valid JSON raise ValueError naming the row.

    Example: tools declare get_weather(city: string, required); the answer
    `<TOOLCALL>[{"name": "get_weather", "arguments": {"city": 3}}]</TOOLCALL>` ->
    Drop("tool_call_schema:get_weather.city").
    """

    require_call: bool = False  # drop answers without any tool call (a plain-text reply)

    requires: ClassVar[tuple[str, ...]] = ("output", "meta.tools")
    provides: ClassVar[tuple[str, ...]] = ("meta.tool_call_error",)

    def keep(self, record: Record) -> bool | Drop:
        try:
            tools = declared_tools(record.meta.get("tools"))
        except (ValueError, AttributeError) as exc:
            where = f"{record.source}:{record.source_id}" if record.source else record.id
            raise ValueError(f"row {where}: meta.tools: {exc}") from None
        try:
            calls = parse_tool_calls(strip_think(record.output))
            if not calls:
                return Drop("tool_call_missing") if self.require_call else True
            for call in calls:
                check_call(call, tools)
        except ToolCallProblem as problem:
            record.meta["tool_call_error"] = str(problem)
            return Drop(problem.reason)
        return True


__all__ = ["ToolCallProblem", "ToolCallValid", "check_call", "declared_tools", "parse_tool_calls"]
