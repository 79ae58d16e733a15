"""One registry, two plain dicts: stage name -> class and backend name -> class.

Recipes name stages (`filters.math_verify`) and backends (`transformers`) as strings. The engine
never imports `filters` or `generators` itself; the first lookup of a name imports the package
that owns its namespace, and that package's modules register themselves with a decorator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

STAGES: dict[str, type] = {}
BACKENDS: dict[str, type] = {}

# namespace of a stage name -> the package whose import registers it
NAMESPACES = {
    "sources": "curation.sources",
    "tinyworld": "curation.sources",
    "generators": "generators",
    "filters": "filters",
    "decontam": "decontam",
    "mix": "curation.mix",
}
BACKEND_PACKAGE = "generators"


def register_stage(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        if name in STAGES and STAGES[name] is not cls:
            raise RuntimeError(f"stage {name!r} is registered twice")
        cls.stage_type = name
        STAGES[name] = cls
        return cls

    return decorate


def register_backend(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        BACKENDS[name] = cls
        return cls

    return decorate


def _namespace(name: str) -> str:
    if name in NAMESPACES:  # a top-level stage with its own module, e.g. `mix`
        return name
    return name.split(".", 1)[0] if "." in name else "sources"


def stage_class(name: str) -> type:
    """The class registered as `name`; raises KeyError listing what is known."""
    package = NAMESPACES.get(_namespace(name))
    if package is not None and name not in STAGES:
        importlib.import_module(package)
    if name not in STAGES:
        raise KeyError(f"unknown stage type {name!r}; known: {', '.join(known_stages())}")
    return STAGES[name]


def known_stages() -> list[str]:
    for package in sorted(set(NAMESPACES.values())):
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as exc:  # a namespace with no stages yet
            if exc.name != package:
                raise
    return sorted(STAGES)


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        importlib.import_module(BACKEND_PACKAGE)
    if name not in BACKENDS:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def make_backend(name: str, **options: Any) -> Any:
    return backend_class(name)(**options)
