"""Load a flat config dataclass from YAML (and `--set KEY=VALUE` overrides) with clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config file or override; the message names the file and the field."""


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["learning_rate=1e-3", "packing=true"] -> {"learning_rate": 0.001, "packing": True}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set learning_rate=1e-3")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """`cls` built from the YAML mapping at `path` (if any) updated with `overrides`.

    An override of None sets the field to None (`--set drop_pass_rate_at_or_below=null`);
    callers leave out the options a user did not give.
    """
    where = str(path) if path else "config"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: invalid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"{where}: expected a mapping of field: value, got {type(loaded).__name__}"
            )
        data.update(loaded or {})
    data.update(overrides)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {loc}: {err['msg']} (got {err.get('input')!r})") from None
    except ValueError as exc:  # __post_init__ range checks
        raise ConfigError(f"{where}: {exc}") from None


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


__all__ = ["ConfigError", "config_dict", "load_config", "parse_overrides"]
