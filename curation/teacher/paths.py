"""Where the embedded teacher lives and how a model name becomes a directory."""

from __future__ import annotations

from pathlib import Path

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "teacher_model"


def resolve_model(name: str) -> Path:
    """`"embedded"` -> the committed teacher dir; anything else is a local model dir."""
    path = EMBEDDED_DIR if name == "embedded" else Path(name).expanduser()
    if not (path / "config.json").is_file():
        hint = "run `thinkmix teacher build`" if name == "embedded" else "pass a local HF model dir"
        raise FileNotFoundError(f"model {name!r}: no config.json in {path} ({hint})")
    return path
