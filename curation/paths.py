"""Where a recipe may make the engine read and write (docs/reliability.md, "Security").

The rules, checked by `curation.recipe.load_recipe` before any stage runs:

1. A relative path in a recipe resolves against the recipe's folder and, once symlinks are
   resolved, must stay inside it: `../secrets.jsonl`, or a link inside the folder that points
   out of it, is refused.
2. A path outside the recipe's folder (absolute, or relative with `..`) is allowed only when it
   is given on the command line (`--set sources.0.path=/data/x.jsonl`: the person running the
   build chose it) or lies under a folder listed in `$THINKMIX_ALLOWED_PATHS` (os.pathsep
   separated, e.g. a shared data folder).
3. The checked path is handed to the stage resolved and absolute, so a stage that joins it with
   the recipe's folder or the current folder reads exactly the file that was checked.

Which parameters are paths: `path` and names ending in `_file`, `_dir` or `_path`; `template`
when its value has a `/` or a file suffix (otherwise it names a shipped template); the PATH of a
`NAME=PATH` entry of `benchmarks`. Writes go only to the store (dataset names cannot hold a path
separator; version and shard paths are built from content hashes and fixed names) and to these
checked `*_dir` parameters.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

ENV_ALLOWED = "THINKMIX_ALLOWED_PATHS"
PATH_SUFFIXES = ("_file", "_dir", "_path")


class PathRuleError(ValueError):
    """A recipe path outside the folders it may use; the message says how to allow it."""


def allowed_roots() -> list[Path]:
    """The folders listed in $THINKMIX_ALLOWED_PATHS, resolved."""
    raw = os.environ.get(ENV_ALLOWED, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def resolve_confined(value: str, base_dir: Path, explicit: bool = False) -> Path:
    """`value` as an absolute, symlink-resolved path; PathRuleError when it may not be used.

    `explicit` marks a value given on the command line, which may point anywhere.
    """
    base = base_dir.resolve()
    path = Path(value)
    full = (path if path.is_absolute() else base / path).resolve()
    if explicit or full.is_relative_to(base):
        return full
    if any(full.is_relative_to(root) for root in allowed_roots()):
        return full
    raise PathRuleError(
        f"{value!r} resolves to {full}, outside the recipe's folder {base}; give it on the "
        f"command line (--set KEY={value}) or add its folder to ${ENV_ALLOWED}"
    )


def is_path_param(name: str) -> bool:
    return name == "path" or name.endswith(PATH_SUFFIXES)


def _names_a_path(name: str, value: str) -> bool:
    if name == "template":  # generators.templates.template_path: a bare name is a shipped one
        return "/" in value or bool(PurePath(value).suffix)
    return is_path_param(name) and bool(value)


def confine_param(name: str, value: Any, base_dir: Path, explicit: bool = False) -> Any:
    """`value` of parameter `name`, with any path in it checked and made absolute and resolved.

    Values that are not paths come back unchanged. `explicit` marks a value given on the
    command line. Raises PathRuleError.
    """
    if isinstance(value, str) and _names_a_path(name, value):
        return str(resolve_confined(value, base_dir, explicit))
    if name == "benchmarks" and isinstance(value, str | list):
        specs = value.split(",") if isinstance(value, str) else value
        return [_bench_spec(s, base_dir, explicit) for s in specs]
    return value


def _bench_spec(spec: Any, base_dir: Path, explicit: bool) -> Any:
    """`NAME=PATH` -> `NAME=/resolved/PATH`; a registered benchmark name stays as it is."""
    if not isinstance(spec, str) or "=" not in spec:
        return spec.strip() if isinstance(spec, str) else spec
    name, _, raw = spec.partition("=")
    return f"{name.strip()}={resolve_confined(raw.strip(), base_dir, explicit)}"
