"""Row layouts for safety prompt/response sets and function-calling conversations.

Registered in `curation.layouts.LAYOUTS` (use them as `{type: jsonl, layout: safety, ...}`):

- `safety` (category `safety`): Aegis / BeaverTails-style rows. Prompt from `prompt`,
  `question`, `instruction`, `user_input` (or the source's `prompt_field`); optional response
  from `response`, `output`, `completion`, `safe_response`. Labels go to `meta`:
  `prompt_label` / `response_label` ("safe" / "unsafe", from `prompt_label`, `response_label`,
  `is_safe` / `is_response_safe` (bool, the response), `is_prompt_safe`, or `label` (the
  response's when there is one, else the prompt's)); hazard categories to `meta["hazards"]`
  as a JSON list (BeaverTails' names hold commas), from `violated_categories`, `categories`,
  `category` or `hazard_category`: a comma-separated string, a list, or a {name: bool} map.
- `tool_calling` (category `tool calling`): OpenAI chat rows, `messages` (or `conversation`)
  with `tools` (OpenAI `[{type: function, function: {name, description, parameters}}]`, the
  legacy `functions` list, or either as a JSON string). Assistant turns may carry `tool_calls`
  (`[{id, type, function: {name, arguments}}]`, `arguments` a JSON string or an object); `tool`
  (or legacy `function`) turns answer them.

Both make a *finished sample* when the row ends with an assistant turn (or, for safety, has a
response): that turn is `output`, `reasoning` is the row's `reasoning` ("on"/"off", default
"off") and `system_prompt` the toggle's; else the row is a prompt for a generation stage.

The record keeps everything as JSON-serialisable strings: `meta["tools"]` holds the tools (OpenAI
form, JSON), and an assistant turn's tool calls are written into its text as one block in the
Llama-Nemotron style, after any content:

    <TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</TOOLCALL>

(`arguments` that are not valid JSON stay a string there, so `filters.tool_call_valid` can drop
the row with `tool_call_bad_json`). A system turn that is not a toggle goes to `meta["system"]`.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from curation.record import SYSTEM_PROMPTS, Record

if TYPE_CHECKING:
    from curation.layouts import LayoutOptions

# curation.layouts imports this module to list its layouts, so its names are looked up at call
# time (`_error`, and the imports inside `safety` / `tool_calling`) to allow either import order.

TOOLCALL_OPEN = "<TOOLCALL>"
TOOLCALL_CLOSE = "</TOOLCALL>"
SAFETY = "safety"
TOOL_CALLING = "tool calling"

_PROMPT_FIELDS = ("prompt", "question", "instruction", "user_input")
_RESPONSE_FIELDS = ("response", "output", "completion", "safe_response")
_HAZARD_FIELDS = ("violated_categories", "categories", "category", "hazard_category")
_LABELS = {"safe": "safe", "unsafe": "unsafe", "harmful": "unsafe", "harmless": "safe"}


def _error(message: str) -> ValueError:
    """A `curation.layouts.SourceError` (what sources catch and quarantine)."""
    from curation.layouts import SourceError

    return SourceError(message)


def _label(where: str, name: str, value: Any) -> str:
    if isinstance(value, bool):  # is_safe-style fields
        return "safe" if value else "unsafe"
    if isinstance(value, str) and value.strip().lower() in _LABELS:
        return _LABELS[value.strip().lower()]
    raise _error(f"{where}: {name}: expected safe/unsafe or true/false, got {value!r:.40}")


def _labels(row: dict, where: str, has_response: bool) -> dict[str, str]:
    out = {}
    for name in ("prompt_label", "is_prompt_safe"):
        if row.get(name) is not None:
            out["prompt_label"] = _label(where, name, row[name])
    for name in ("response_label", "is_safe", "is_response_safe"):
        if row.get(name) is not None:
            out["response_label"] = _label(where, name, row[name])
    if row.get("label") is not None:
        out.setdefault("response_label" if has_response else "prompt_label",
                       _label(where, "label", row["label"]))  # fmt: skip
    return out


def _hazards(row: dict, where: str) -> list[str]:
    for name in _HAZARD_FIELDS:
        value = row.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
        if isinstance(value, dict):
            return sorted(k for k, flagged in value.items() if flagged)
        raise _error(
            f"{where}: {name}: expected a string, a list of strings or a {{name: bool}} map"
        )
    return []


def _finished(row: dict, where: str, output: str) -> dict[str, Any]:
    """The columns of a finished sample: output, toggle, system prompt, generator."""
    toggle = row.get("reasoning", "off")
    if toggle not in SYSTEM_PROMPTS:
        raise _error(f"{where}: reasoning: expected on or off, got {toggle!r}")
    generator = row.get("generator", row.get("model", ""))
    return {
        "output": output,
        "reasoning": toggle,
        "system_prompt": SYSTEM_PROMPTS[toggle],
        "generator": str(generator or ""),
    }


def safety(row: dict, where: str, opts: LayoutOptions) -> Record:
    """A safety prompt with an optional (safe) response; see the module docstring."""
    from curation.layouts import _record, _text

    prompt = _text(row, where, (*_PROMPT_FIELDS, opts.prompt_field))
    response = next(
        (row[n] for n in _RESPONSE_FIELDS if isinstance(row.get(n), str) and row[n].strip()), None
    )
    meta = _labels(row, where, response is not None)
    hazards = _hazards(row, where)
    if hazards:
        meta["hazards"] = json.dumps(hazards, ensure_ascii=False)
    turns = [{"role": "user", "content": prompt}]
    extra = _finished(row, where, response) if response is not None else {}
    return _record(opts, row, where, turns, category=SAFETY, meta=meta, **extra)


# ---- tool calling ---------------------------------------------------------------------------


def _tools(row: dict, where: str) -> list[dict[str, Any]]:
    """The declared tools in OpenAI form; [] when the row declares none."""
    name = "tools" if "tools" in row else "functions"
    value = row.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _error(f"{where}: {name}: invalid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise _error(f"{where}: {name}: expected a list of tools")
    tools = []
    for i, tool in enumerate(value):
        spec = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _error(f"{where}: {name}[{i}]: expected {{type: function, function: {{name, "
                              "parameters}}}} or {name, parameters}")  # fmt: skip
        params = spec.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise _error(f"{where}: {name}[{i}].parameters: expected a JSON schema object")
        function = {"name": spec["name"], "description": str(spec.get("description", "")),
                    "parameters": params}  # fmt: skip
        tools.append({"type": "function", "function": function})
    return tools


def _call(call: Any, where: str) -> dict[str, Any]:
    """One OpenAI tool call -> {"name", "arguments"} (arguments parsed when they are JSON)."""
    spec = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise _error(f"{where}: expected {{function: {{name, arguments}}}}")
    arguments = spec.get("arguments", {})
    if isinstance(arguments, str):
        # bad JSON stays the string it is; the tool-call filter says why it is bad
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    elif not isinstance(arguments, dict):
        raise _error(f"{where}.arguments: expected a JSON string or an object")
    return {"name": spec["name"], "arguments": arguments}


def render_tool_calls(calls: list[dict[str, Any]]) -> str:
    """`[{"name", "arguments"}]` -> the `<TOOLCALL>[...]</TOOLCALL>` block an assistant turn holds."""
    return f"{TOOLCALL_OPEN}{json.dumps(calls, ensure_ascii=False)}{TOOLCALL_CLOSE}"


def _turn_text(turn: dict, where: str) -> str:
    content = turn.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise _error(f"{where}.content: expected a string or null")
    calls = turn.get("tool_calls") or ([turn["function_call"]] if turn.get("function_call") else [])
    if not calls:
        return content
    if not isinstance(calls, list):
        raise _error(f"{where}.tool_calls: expected a list")
    block = render_tool_calls([_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)])
    return f"{content.rstrip()}\n{block}" if content.strip() else block


_TOOL_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool",
               "system": "system"}  # fmt: skip


def tool_calling(row: dict, where: str, opts: LayoutOptions) -> Record:
    """A function-calling conversation; see the module docstring."""
    from curation.layouts import _record

    field = "messages" if "messages" in row else "conversation"
    messages = row.get(field)
    if not isinstance(messages, list) or not messages:
        raise _error(f"{where}: messages: expected a non-empty list of OpenAI messages")
    turns, system = [], []
    for i, turn in enumerate(messages):
        role = _TOOL_ROLES.get(turn.get("role", "")) if isinstance(turn, dict) else None
        if role is None:
            raise _error(f"{where}: {field}[{i}].role: expected one of "
                              f"{', '.join(_TOOL_ROLES)}")  # fmt: skip
        text = _turn_text(turn, f"{where}: {field}[{i}]")
        if role == "system":
            if text.strip() not in SYSTEM_PROMPTS.values():
                system.append(text)
            continue
        turns.append({"role": role, "content": text})
    if not any(t["role"] == "user" for t in turns):
        raise _error(f"{where}: {field}: no user turn")
    meta = {"tools": json.dumps(_tools(row, where), ensure_ascii=False, sort_keys=True)}
    if system:
        meta["system"] = "\n\n".join(system)
    extra = {}
    if turns[-1]["role"] == "assistant":
        extra = _finished(row, where, turns.pop()["content"])
    return _record(opts, row, where, turns, category=TOOL_CALLING, meta=meta, **extra)


__all__ = ["TOOLCALL_CLOSE", "TOOLCALL_OPEN", "render_tool_calls", "safety", "tool_calling"]
