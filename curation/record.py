"""The one record type of thinkmix, its Arrow schema, and the reader for foreign rows.

One `Record` is one training sample. Its columns are a superset of the public
Llama-Nemotron-Post-Training-Dataset SFT layout (DESIGN §2), so released rows and ours load the
same way. Dropped rows keep their `stage` and `reason`; failed rows keep their `error`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import accumulate, chain
from operator import attrgetter, methodcaller
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, field_validator

THINKING_ON = "detailed thinking on"
THINKING_OFF = "detailed thinking off"
SYSTEM_PROMPTS = {"on": THINKING_ON, "off": THINKING_OFF}

Message = dict[str, str]


@dataclass(slots=True)
class Record:
    """One row; `input` holds the prompt turns without the system prompt."""

    id: str
    input: list[Message]
    output: str = ""
    system_prompt: str = ""
    reasoning: str = ""
    category: str = ""
    generator: str = ""
    license: str = ""
    source: str = ""
    source_id: str = ""
    expected_answer: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    version: str = ""
    used_in_training: list[str] = field(default_factory=list)
    # Stage-specific columns that are not part of the public layout (tests for code tasks,
    # the extracted answer, the verdict of a judge). Strings only, so the schema stays fixed.
    meta: dict[str, str] = field(default_factory=dict)
    stage: str | None = None  # the stage that dropped or failed the row
    reason: str | None = None  # why it was dropped or failed

    @property
    def messages(self) -> list[Message]:
        return self.input

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        # Stored as lists of {key, value} structs (see ARROW_SCHEMA).
        for key in ("scores", "meta"):
            if isinstance(values.get(key), list):
                values[key] = {item["key"]: item["value"] for item in values[key]}
        return cls(**values)


Records = Iterator[Record]


# What json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str) builds on every call.
_HASH_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A content hash that is the same on every machine and Python run."""
    payload = _HASH_JSON.encode(parts)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def record_id(
    blend: str, source_id: str, prompt: Any, generator: str = "", sample: int | str = ""
) -> str:
    """DESIGN §2: a stable hash of (blend, source id, prompt, generator, sample index)."""
    return stable_hash(blend, source_id, prompt, generator, sample)


_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def _pairs(value_type: pa.DataType) -> pa.DataType:
    # Not pa.map_: `datasets` cannot read Arrow maps, and shards must load with it.
    return pa.list_(pa.struct([("key", pa.string()), ("value", value_type)]))


ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("input", pa.list_(_MESSAGE)),
        ("output", pa.string()),
        ("system_prompt", pa.string()),
        ("reasoning", pa.string()),
        ("category", pa.string()),
        ("generator", pa.string()),
        ("license", pa.string()),
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("expected_answer", pa.string()),
        ("scores", _pairs(pa.float64())),
        ("version", pa.string()),
        ("used_in_training", pa.list_(pa.string())),
        ("meta", _pairs(pa.string())),
        ("stage", pa.string()),
        ("reason", pa.string()),
    ]
)


_FIELDS = tuple(f.name for f in fields(Record))
assert tuple(ARROW_SCHEMA.names) == _FIELDS, "Record fields and ARROW_SCHEMA must match in order"
_PAIRS = ("scores", "meta")


def _pairs_array(maps: list[dict[str, Any]], list_type: pa.ListType) -> pa.ListArray:
    """Dicts -> their `[{key, value}]` lists sorted by key, from flat key and value arrays."""
    items = list(map(sorted, map(methodcaller("items"), maps)))
    offsets = pa.array([0, *accumulate(map(len, items))], pa.int32())
    flat = list(chain.from_iterable(items))
    key, value = list_type.value_type
    keys = pa.array([k for k, _ in flat], key.type)
    values = pa.array([v for _, v in flat], value.type)
    return pa.ListArray.from_arrays(
        offsets, pa.StructArray.from_arrays([keys, values], fields=[key, value])
    )


def to_table(records: list[Record]) -> pa.Table:
    """Records -> an Arrow table with the fixed schema (keys sorted, so bytes are stable).

    Built column by column from the slots, with no row dicts; the table (and so the parquet
    file) is the one `pa.Table.from_pylist([asdict(r) ...])` makes, value for value.
    """
    columns = []
    for name in _FIELDS:
        values = list(map(attrgetter(name), records))
        field_type = ARROW_SCHEMA.field(name).type
        columns.append(_pairs_array(values, field_type) if name in _PAIRS else values)
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def from_table(table: pa.Table) -> list[Record]:
    """An Arrow table (any subset of the record columns, in any order) -> Records, read by column."""
    names = [name for name in _FIELDS if name in table.column_names]
    columns = []
    for name in names:
        values = table.column(name).to_pylist()
        if name in _PAIRS:  # stored as lists of {key, value} structs (see ARROW_SCHEMA)
            values = [
                {item["key"]: item["value"] for item in v} if isinstance(v, list) else v
                for v in values
            ]
        columns.append(values)
    if len(names) == len(_FIELDS):
        return [Record(*row) for row in zip(*columns, strict=True)]
    return [
        Record(**{name: values[i] for name, values in zip(names, columns, strict=True)})
        for i in range(table.num_rows)
    ]


class ForeignRow(BaseModel):
    """A row in the public Llama-Nemotron-Post-Training-Dataset SFT jsonl layout.

    That layout writes `used_in_training` as one comma-separated string ("Ultra, Super, Nano")
    and has no id; both are normalised here so the row becomes a `Record`.
    """

    model_config = ConfigDict(extra="allow")

    input: list[Message]
    output: str
    category: str = ""
    license: str = ""
    reasoning: Literal["on", "off"] = "off"
    generator: str = ""
    used_in_training: list[str] = []
    version: str = ""
    system_prompt: str = ""
    expected_answer: str | None = None
    source: str = ""
    source_id: str = ""
    id: str | None = None

    @field_validator("used_in_training", mode="before")
    @classmethod
    def _split_runs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("input", mode="before")
    @classmethod
    def _prompt_as_turns(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        return value

    def to_record(self, dataset: str = "") -> Record:
        turns = [m for m in self.input if m.get("role") != "system"]
        system = self.system_prompt or next(
            (m["content"] for m in self.input if m.get("role") == "system"), ""
        )
        rid = self.id or record_id(dataset or self.category, self.source_id, turns, self.generator)
        return Record(
            id=rid,
            input=turns,
            output=self.output,
            system_prompt=system or SYSTEM_PROMPTS[self.reasoning],
            reasoning=self.reasoning,
            category=self.category,
            generator=self.generator,
            license=self.license,
            source=self.source,
            source_id=self.source_id,
            expected_answer=self.expected_answer,
            version=self.version,
            used_in_training=list(self.used_in_training),
        )
