"""Row layouts: how one input row of a known public format becomes a `Record`.

Each layout is a function `(row, where, options) -> Record` that raises `SourceError` naming the
place (`file:line`) and the field when the row does not fit. Layouts:

- `problem`: a prompt field and an optional answer field (math problem sets);
- `nemotron`: rows of the public Llama-Nemotron-Post-Training-Dataset SFT layout;
- `code_task`: TACO / APPS / CodeContests-style tasks (statement + input/output tests);
- `mcq`: multiple-choice questions (question, choices, answer);
- `conversation`: ShareGPT (`conversations: [{from, value}]`) or WildChat / OpenAI
  (`conversation` or `messages: [{role, content}]`) chats, cut after the last user turn.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from curation.record import ForeignRow, Record, record_id


class SourceError(ValueError):
    """Bad input data; the message starts with `file:line: field:`."""


@dataclass(frozen=True)
class LayoutOptions:
    dataset: str
    source: str
    category: str
    license: str
    prompt_field: str
    answer_field: str
    id_field: str


def _text(row: dict, where: str, names: tuple[str, ...]) -> str:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise SourceError(
        f"{where}: {names[0]}: expected a non-empty string in one of {', '.join(names)}"
    )


def _record(opts: LayoutOptions, row: dict, where: str, turns: list[dict], **fields: Any) -> Record:
    source_id = str(row.get(opts.id_field, where.rsplit(":", 1)[-1]))
    return Record(
        id=record_id(opts.dataset, source_id, turns),
        input=turns,
        category=fields.pop("category", opts.category),
        license=str(row.get("license", opts.license) or opts.license),
        source=opts.source,
        source_id=source_id,
        **fields,
    )


def problem(row: dict, where: str, opts: LayoutOptions) -> Record:
    prompt = row.get(opts.prompt_field)
    if not isinstance(prompt, str) or not prompt.strip():
        got = "missing" if prompt is None else f"got {type(prompt).__name__} {prompt!r:.40}"
        raise SourceError(f"{where}: {opts.prompt_field}: expected a non-empty string, {got}")
    answer = row.get(opts.answer_field) if opts.answer_field else None
    turns = [{"role": "user", "content": prompt}]
    return _record(opts, row, where, turns, expected_answer=None if answer is None else str(answer))


def nemotron(row: dict, where: str, opts: LayoutOptions) -> Record:
    try:
        foreign = ForeignRow.model_validate(row)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "row"
        raise SourceError(f"{where}: {field}: {err['msg']}") from None
    record = foreign.to_record(opts.dataset)
    record.source = record.source or opts.source
    record.source_id = record.source_id or str(row.get(opts.id_field, where.rsplit(":", 1)[-1]))
    return record


def _io_pairs(row: dict, where: str) -> list[dict[str, str]]:
    """Tests as [{input, output}] from the layouts TACO/APPS and CodeContests use."""
    spec = row.get("input_output", row.get("tests"))
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{where}: input_output: invalid JSON ({exc.msg})") from None
    if isinstance(spec, list):
        pairs = spec
    elif isinstance(spec, dict) and "inputs" in spec:
        inputs, outputs = spec["inputs"], spec.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise SourceError(f"{where}: input_output: expected lists 'inputs' and 'outputs'")
        pairs = [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=False)]
    else:  # CodeContests: public_tests / private_tests / generated_tests as {input: [], output: []}
        pairs = []
        for key in ("public_tests", "private_tests", "generated_tests"):
            block = row.get(key) or {}
            if not isinstance(block, dict) or not all(
                isinstance(block.get(k, []), list) for k in ("input", "output")
            ):
                raise SourceError(f"{where}: {key}: expected {{input: [...], output: [...]}}")
            pairs += [
                {"input": i, "output": o}
                for i, o in zip(block.get("input", []), block.get("output", []), strict=False)
            ]
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
            raise SourceError(f"{where}: tests[{i}]: expected an object with input and output")
    return [{"input": _joined(p["input"]), "output": _joined(p["output"])} for p in pairs]


def _joined(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def code_task(row: dict, where: str, opts: LayoutOptions) -> Record:
    statement = _text(
        row, where, ("question", "problem", "description", "statement", opts.prompt_field)
    )
    turns = [{"role": "user", "content": statement}]
    tests = _io_pairs(row, where)
    return _record(
        opts,
        row,
        where,
        turns,
        category="code",
        meta={"io_tests": json.dumps(tests)} if tests else {},
    )


def mcq(row: dict, where: str, opts: LayoutOptions) -> Record:
    question = _text(row, where, ("question", opts.prompt_field))
    choices = row.get("choices", row.get("options"))
    if isinstance(choices, dict):
        letters, texts = list(choices), list(choices.values())
    elif isinstance(choices, list) and len(choices) >= 2:
        letters, texts = list(string.ascii_uppercase[: len(choices)]), choices
    else:
        raise SourceError(
            f"{where}: choices: expected a list or a letter->text mapping of 2+ options"
        )
    answer = row.get(opts.answer_field if opts.answer_field in row else "answer")
    if isinstance(answer, int) and 0 <= answer < len(letters):
        letter = letters[answer]
    elif isinstance(answer, str) and answer.strip().strip("()").upper() in letters:
        letter = answer.strip().strip("()").upper()
    elif isinstance(answer, str) and answer in texts:
        letter = letters[texts.index(answer)]
    else:
        raise SourceError(
            f"{where}: answer: {answer!r} is not one of the options {', '.join(letters)}"
        )
    body = (
        question.rstrip()
        + "\n"
        + "\n".join(f"{k}) {v}" for k, v in zip(letters, texts, strict=True))
    )
    turns = [{"role": "user", "content": body}]
    return _record(opts, row, where, turns, category="science", expected_answer=letter)


_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def conversation(row: dict, where: str, opts: LayoutOptions) -> Record:
    turns_in = row.get("conversations", row.get("conversation", row.get("messages")))
    if not isinstance(turns_in, list) or not turns_in:
        raise SourceError(f"{where}: conversations: expected a non-empty list of turns")
    turns = []
    for i, turn in enumerate(turns_in):
        role = (
            _ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
            if isinstance(turn, dict)
            else None
        )
        content = turn.get("value", turn.get("content")) if isinstance(turn, dict) else None
        if role is None or not isinstance(content, str):
            raise SourceError(f"{where}: conversations[{i}]: expected {{from|role, value|content}}")
        if role != "system":
            turns.append({"role": role, "content": content})
    last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=None)
    if last_user is None:
        raise SourceError(f"{where}: conversations: no user turn")
    return _record(opts, row, where, turns[: last_user + 1], category=opts.category or "chat")


# Imported here, not at the top: chat_layouts builds on the helpers above.
from curation.chat_layouts import safety, tool_calling  # noqa: E402

LAYOUTS: dict[str, Callable[[dict, str, LayoutOptions], Record]] = {
    "problem": problem,
    "nemotron": nemotron,
    "code_task": code_task,
    "mcq": mcq,
    "conversation": conversation,
    "safety": safety,
    "tool_calling": tool_calling,
}
