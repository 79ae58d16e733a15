"""A build killed with SIGKILL mid-generation resumes without repeating a finished request."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .conftest import write_recipe

PROBLEMS, SAMPLES = 24, 4
TOTAL = PROBLEMS * SAMPLES


def build(recipe: Path, store: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "curation.cli", "build", str(recipe), "--store", str(store)]
    return subprocess.Popen(
        [*command, "--no-stats", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def cached_requests(store: Path) -> int:
    path = store / ".cache" / "requests.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0


def files_of(store: Path) -> dict[str, str]:
    (manifest,) = store.glob("tiny-math/*/manifest.json")
    return {f["path"]: f["sha256"] for f in json.loads(manifest.read_text())["files"]}


def test_killed_build_resumes_without_repeating_requests(tmp_path):
    recipe = write_recipe(tmp_path, count=PROBLEMS, batch=8, shards=2)
    killed_store, clean_store = tmp_path / "killed", tmp_path / "clean"

    process = build(recipe, killed_store)
    deadline = time.monotonic() + 300
    while cached_requests(killed_store) < 16 and process.poll() is None:
        assert time.monotonic() < deadline, "the build never reached generation"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = cached_requests(killed_store)
    assert 0 < finished < TOTAL, f"killed too late to test anything ({finished} of {TOTAL})"
    assert not list(killed_store.glob("tiny-math/*/manifest.json")), "a partial version is visible"

    rerun = build(recipe, killed_store)
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output
    new = int(re.search(r"teacher reasoner: (\d+) new requests", output).group(1))
    assert new == TOTAL - finished
    assert cached_requests(killed_store) == TOTAL

    clean = build(recipe, clean_store)
    assert clean.wait(timeout=600) == 0
    assert files_of(killed_store) == files_of(clean_store)
