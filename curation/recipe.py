"""Recipes: YAML validated by pydantic, with errors that name the file, the line and the field.

A recipe names its sources, its teachers and an ordered list of stages (DESIGN §3). Stage and
source parameters are validated against the registered class's dataclass fields, so a typo is
caught by `thinkmix validate` before the first model call. `--set a.b=value` overrides any field
(`stages.2.samples_on=16`, or `stages.multi_sample.samples_on=16` by the stage's type); the
overrides are part of the recipe's hash and its manifest. Paths in stage parameters must stay
inside the recipe's folder unless given with `--set` or allowed by $THINKMIX_ALLOWED_PATHS
(`curation.paths`); anything that looks like a secret in a teacher is refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from curation import __version__
from curation.paths import PathRuleError, confine_param
from curation.record import stable_hash
from curation.registry import backend_class, known_stages, stage_class
from curation.stage import Source, Stage

Loc = tuple[str | int, ...]
# `token` alone or as an auth token (`hf_token`, `access_token`), not `eos_token`/`pad_token`
_SECRET_KEYS = re.compile(
    r"(api_?key|(^|access_|auth_|bearer_|hf_|api_)token|secret|password|authorization|"
    r"credentials?)$",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*@", re.IGNORECASE)


class RecipeError(ValueError):
    """A recipe problem a user can fix; the message starts with `file:line: field:`."""


class TeacherSpec(BaseModel):
    """A teacher: a backend kind, a model, and backend options (passed through)."""

    model_config = ConfigDict(extra="allow")
    backend: str
    model: str


class StepSpec(BaseModel):
    """A source or a stage: its registered type and its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    sources: list[StepSpec] = Field(min_length=1)
    teachers: dict[str, TeacherSpec] = {}
    stages: list[StepSpec] = []
    shards: int = Field(default=4, ge=1, le=100_000)
    seed: int = 0
    # What a source does with a bad input row: fail the build (naming file:line: field) or
    # skip it into the version's quarantine with its reason. `--set on_error=skip`.
    on_error: Literal["fail", "skip"] = "fail"

    def canonical(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if data["on_error"] == "fail":  # the default is left out: older versions keep their ids
            del data["on_error"]
        return data

    def hash(self) -> str:
        return stable_hash(self.canonical(), __version__, length=32)

    def version_id(self) -> str:
        """Versions are content addresses: the same recipe and code give the same version."""
        return self.hash()[:12]


@dataclasses.dataclass
class LoadedRecipe:
    recipe: Recipe
    path: Path
    overrides: list[str]
    sources: list[Source]
    stages: list[Stage]


# ---------------------------------------------------------------- line numbers


def _node_line(root: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "recipe"


class _Locator:
    def __init__(self, path: Path, root: yaml.Node | None, overrides: dict[Loc, str]):
        self.path, self.root, self.overrides = path, root, overrides

    def where(self, loc: Loc) -> str:
        for override_loc, text in self.overrides.items():
            if loc[: len(override_loc)] == override_loc:
                return f"--set {text}"
        line = _node_line(self.root, loc)
        return f"{self.path.name}:{line}" if line else self.path.name

    def error(self, loc: Loc, message: str) -> RecipeError:
        return RecipeError(f"{self.where(loc)}: {_format_loc(loc)}: {message}")

    def explicit(self, loc: Loc) -> bool:
        """Whether the value at `loc` was given on the command line (`--set`)."""
        return any(loc[: len(o)] == o for o in self.overrides)


def _did_you_mean(word: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(word, known, n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _describe(error: dict[str, Any]) -> str:
    expected = {
        "int_parsing": "expected int",
        "int_type": "expected int",
        "float_parsing": "expected float",
        "float_type": "expected float",
        "bool_parsing": "expected bool",
        "bool_type": "expected bool",
        "string_type": "expected string",
        "list_type": "expected a list",
        "dict_type": "expected a mapping",
        "model_type": "expected a mapping",
        "dataclass_type": "expected a mapping",
    }.get(error["type"])
    if expected and "input" in error:
        return f"{expected}, got {error['input']!r}"
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "value_error":  # a stage's own range check in __post_init__
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    return error["msg"]


def _raise_validation(
    locator: _Locator, prefix: Loc, exc: pydantic.ValidationError, known: list[str] | None = None
) -> None:
    """One line per error; `known` fields give an unknown top-level key a suggestion."""
    messages = []
    for err in exc.errors():
        loc, message = prefix + tuple(err["loc"]), _describe(err)
        if err["type"] == "extra_forbidden" and known and len(err["loc"]) == 1:
            suggestion = _did_you_mean(str(err["loc"][0]), known)
            message += f"{suggestion} (known: {', '.join(known)})"
        messages.append(str(locator.error(loc, message)))
    raise RecipeError("\n".join(messages))


# ---------------------------------------------------------------- overrides


def _parse_override(text: str) -> tuple[Loc, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. teachers.reasoner.model=foo")
    loc = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
    return loc, yaml.safe_load(raw) if raw.strip() else ""


def _entry_by_type(entries: list[Any], name: str, text: str, where: Loc) -> int:
    types = [str(e.get("type", "")) if isinstance(e, dict) else "" for e in entries]
    hits = [i for i, t in enumerate(types) if name in (t, t.rsplit(".", 1)[-1])]
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(f"{i}: {t}" for i, t in enumerate(types))
    if not hits:
        raise RecipeError(
            f"--set {text}: no entry of {_format_loc(where)} has type {name!r} ({listing})"
        )
    raise RecipeError(
        f"--set {text}: {len(hits)} entries of {_format_loc(where)} have type {name!r}; "
        f"give the index instead ({listing})"
    )


def _apply_override(data: dict[str, Any], loc: Loc, value: Any, text: str) -> Loc:
    """Sets `value` at `loc`; returns `loc` with list entries named by type turned into indices.

    `stages.multi_sample.samples_on` names the one stage whose type is `generators.multi_sample`
    (the part after the last dot, since keys split on dots), so an override keeps working when
    a stage is added in front of it; two stages of that type need the index.
    """
    node: Any = data
    resolved: list[str | int] = []

    def step(part: str | int) -> str | int:
        if isinstance(node, list) and isinstance(part, str):
            part = _entry_by_type(node, part, text, tuple(resolved))
        resolved.append(part)
        return part

    for part in loc[:-1]:
        part = step(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            if isinstance(node, dict) and isinstance(part, str):
                node = node.setdefault(part, {})
            else:
                raise RecipeError(
                    f"--set {text}: {_format_loc(tuple(resolved))} does not exist"
                ) from None
    last = step(loc[-1])
    if isinstance(node, list) and isinstance(last, int) and last >= len(node):
        raise RecipeError(f"--set {text}: {_format_loc(tuple(resolved))} does not exist")
    node[last] = value
    return tuple(resolved)


# ---------------------------------------------------------------- building stages


def _instantiate(locator: _Locator, loc: Loc, spec: StepSpec, base: type) -> Any:
    try:
        cls = stage_class(spec.type)
    except KeyError:
        names = known_stages()
        raise locator.error(
            loc + ("type",),
            f"unknown stage type {spec.type!r}{_did_you_mean(spec.type, names)} "
            f"(known: {', '.join(names)})",
        ) from None
    if not issubclass(cls, base):
        kind = "a source" if base is Source else "a stage"
        raise locator.error(loc + ("type",), f"{spec.type!r} is not {kind}")
    params = spec.params
    known = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    for key in params:
        if key not in known:
            raise locator.error(
                loc + (key,),
                f"unknown parameter for {spec.type}{_did_you_mean(key, known)} "
                f"(known: {', '.join(known) or 'none'})",
            )
    # Paths go to the stage checked, absolute and resolved (curation.paths); the recipe itself,
    # and so its hash, keeps them as written.
    for key, value in params.items():
        try:
            params[key] = confine_param(
                key, value, locator.path.parent, locator.explicit(loc + (key,))
            )
        except PathRuleError as exc:
            raise locator.error(loc + (key,), str(exc)) from None
    try:
        return pydantic.TypeAdapter(cls).validate_python(params)
    except pydantic.ValidationError as exc:
        _raise_validation(locator, loc, exc)
    except (ValueError, TypeError) as exc:  # a stage's own range checks in __post_init__
        raise locator.error(loc, str(exc)) from None


def _check_columns(locator: _Locator, sources: list[Source], stages: list[Stage]) -> None:
    available = {"id", "input", "category", "source", "source_id", "expected_answer", "license"}
    for source in sources:
        available |= set(source.provides)
    for i, stage in enumerate(stages):
        missing = [c for c in stage.requires if c not in available]
        if missing:
            raise locator.error(
                ("stages", i, "type"),
                f"{stage.stage_type} needs column(s) {', '.join(missing)} that no earlier stage "
                f"provides (available: {', '.join(sorted(available))})",
            )
        available |= set(stage.provides)


def _check_teachers(locator: _Locator, recipe: Recipe, stages: list[Stage]) -> None:
    for name, teacher in recipe.teachers.items():
        try:
            backend_class(teacher.backend)
        except KeyError as exc:
            raise locator.error(("teachers", name, "backend"), str(exc.args[0])) from None
        for loc, key, value in _walk(("teachers", name), teacher.model_extra or {}):
            secret = _SECRET_KEYS.search(str(key)) and value
            if secret or (isinstance(value, str) and _URL_USERINFO.search(value)):
                raise locator.error(
                    loc,
                    "secrets never go in a recipe (they would be copied into every manifest); "
                    "put the key in an environment variable and name it with api_key_env",
                )
    for i, stage in enumerate(stages):
        for field_name in stage.teacher_fields:
            wanted = getattr(stage, field_name)
            if wanted not in recipe.teachers:
                names = list(recipe.teachers)
                raise locator.error(
                    ("stages", i, field_name),
                    f"unknown teacher {wanted!r}{_did_you_mean(str(wanted), names)} "
                    f"(teachers: {', '.join(names) or 'none defined'})",
                )


def _walk(loc: Loc, mapping: dict[str, Any]) -> list[tuple[Loc, str, Any]]:
    """(loc, key, value) of every entry of a nested mapping, so nested secrets are found too."""
    found = []
    for key, value in mapping.items():
        found.append((loc + (key,), key, value))
        if isinstance(value, dict):
            found += _walk(loc + (key,), value)
    return found


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> LoadedRecipe:
    """Read, override, validate and instantiate a recipe; raise RecipeError naming file:line."""
    path = Path(path)
    overrides = list(overrides or [])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        raise RecipeError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path.name}:1: recipe: expected a mapping at the top level")

    override_locs: dict[Loc, str] = {}
    for item in overrides:
        loc, value = _parse_override(item)
        loc = _apply_override(data, loc, value, item)
        override_locs[loc] = item
    locator = _Locator(path, root, override_locs)

    try:
        recipe = Recipe.model_validate(data)
    except pydantic.ValidationError as exc:
        _raise_validation(locator, (), exc, list(Recipe.model_fields))
    sources = [
        _instantiate(locator, ("sources", i), s, Source) for i, s in enumerate(recipe.sources)
    ]
    stages = [_instantiate(locator, ("stages", i), s, Stage) for i, s in enumerate(recipe.stages)]
    for i, stage in enumerate(stages):
        if isinstance(stage, Source):
            raise locator.error(("stages", i, "type"), f"{stage.stage_type!r} is a source")
    _check_teachers(locator, recipe, stages)
    _check_columns(locator, sources, stages)
    return LoadedRecipe(recipe, path, overrides, sources, stages)


def recipe_summary(loaded: LoadedRecipe) -> str:
    return json.dumps(loaded.recipe.canonical(), indent=2)
