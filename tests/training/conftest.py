"""Shared small parts for the training tests: tiny versions in a real store, a tiny model dir,
and the `train` / `lineage` commands mounted on a local Typer app as `curation/cli.py` does."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from curation.store import Store
from training.cli import lineage, train_app
from training.data import write_tinyworld_version
from training.student import fresh_student, load_tokenizer, save_checkpoint

TINY = {"student_hidden": 32, "student_layers": 1, "student_heads": 2, "threads": 1}


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(train_app, name="train")
    app.command("lineage")(lineage)
    return app


def thinkmix(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app(), [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def gold(store) -> str:
    """32 SFT rows: 4 tinyworld tasks per family, gold outputs with reasoning on and off."""
    return write_tinyworld_version(store, "gold", per_family=4, seed=0)


@pytest.fixture
def prompts(store) -> str:
    """8 prompt rows (2 per family) with gold answers and code tests, no outputs."""
    return write_tinyworld_version(store, "prompts", per_family=2, seed=5, outputs=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer student (a few thousand parameters) saved as a model dir."""
    out = tmp_path_factory.mktemp("tiny-model")
    model = fresh_student(TINY["student_hidden"], TINY["student_layers"], TINY["student_heads"])
    return save_checkpoint(model, load_tokenizer(), out)
