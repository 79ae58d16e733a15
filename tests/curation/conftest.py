"""Builders shared by the end-to-end tests: a small math recipe on the embedded teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curation.cli import app

SMALL_MATH = """\
name: tiny-math
sources:
  - {{type: tinyworld.math, count: {count}, seed: 3}}
teachers:
  reasoner: {{backend: transformers, model: embedded, batch_size: {batch}}}
stages:
  - {{type: generators.multi_sample, teacher: reasoner, samples_on: 2, samples_off: 2,
     temperature: 0.8, max_tokens: 320}}
  - {{type: filters.boxed_answer}}
  - {{type: filters.math_verify}}
  - {{type: filters.think_format}}
shards: {shards}
"""


def write_recipe(folder: Path, count: int = 10, batch: int = 16, shards: int = 2) -> Path:
    path = folder / "tiny-math.yaml"
    path.write_text(SMALL_MATH.format(count=count, batch=batch, shards=shards))
    return path


def thinkmix(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="session")
def built_math(tmp_path_factory) -> tuple[Path, Path, str]:
    """(recipe, store, ref) of one small math build, shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("built")
    recipe, store = write_recipe(folder), folder / "store"
    code, output = thinkmix("build", recipe, "--store", store, "--workers", "1")
    assert code == 0, output
    return recipe, store, output.strip().splitlines()[-1]
