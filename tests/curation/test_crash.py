"""Builds killed with SIGKILL at many moments, then run again, end as if never interrupted.

Each build is `python KILLER build ...` in a subprocess, where KILLER (written below) patches the
store so the process SIGKILLs itself at a chosen point, then runs the CLI unchanged:

    shard:N     at the start of the N-th `Staging.open_shard` (a shard's split file opened)
    write:N     in the N-th file write of the store, after half of the bytes (a torn temp file)
    manifest:N  the same, in the N-th write of a `manifest.json`
    replace:N   just after the N-th `os.replace` of the store (a file became visible)
    commit:1    just before the `os.rename` that publishes the version
    renamed:1   just after it, before the staging area is removed

and the teacher server kills the build at its N-th request (`hit:N`, during generation). The slow
loop also kills at random times. After every kill: no version without a manifest is visible, every
visible version verifies, and the request cache passes sqlite's integrity check. The build run
again to completion sends exactly the requests the cache lacks, and its shards are byte-identical
to an uninterrupted build's.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.store import SPLITS, Store, verify
from generators.fault_server import FaultPlan, FaultServer, Hit

from .conftest import thinkmix

PROBLEMS, SAMPLES, SHARDS = 12, 4, 3
TOTAL = PROBLEMS * SAMPLES
CALLS = PROBLEMS * 2  # the two on and the two off samples of a prompt go in one call each
DATASET = "crash-math"

RECIPE = """\
name: crash-math
sources:
  - {{type: tinyworld.math, count: {problems}, seed: 9}}
teachers:
  reasoner: {{backend: openai, model: fault-model, base_url: "{base_url}", batch_size: 4,
             max_concurrency: 2}}
stages:
  - {{type: generators.multi_sample, teacher: reasoner, samples_on: 2, samples_off: 2,
     max_tokens: 64}}
  - {{type: filters.think_format}}
shards: {shards}
"""

KILLER = '''\
"""Runs the thinkmix CLI, SIGKILLing itself at $THINKMIX_KILL_AT (POINT:N) inside the store."""
import builtins
import os
import runpy
import signal

import curation.store as store

POINT, _, NTH = os.environ.get("THINKMIX_KILL_AT", "").partition(":")
NTH = int(NTH or 1)
calls = {}


def reached(point):
    calls[point] = calls.get(point, 0) + 1
    return point == POINT and calls[point] == NTH


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class TornFile:
    """Writes half of what it is given, makes that durable, and dies."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

    def __getattr__(self, name):  # the parquet writer asks for tell(), closed, ...
        return getattr(self.f, name)

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        die()


def store_open(path, mode="r", *args, **kwargs):
    f = builtins.open(path, mode, *args, **kwargs)
    if "w" in mode:
        torn = reached("write")
        if str(path).split("/")[-1].startswith(".manifest.json"):
            torn = reached("manifest") or torn
        if torn:
            return TornFile(f)
    return f


class StoreOS:
    """`os` as the store sees it, with kill points around its renames."""

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, src, dst):
        os.replace(src, dst)
        if reached("replace"):
            die()

    def rename(self, src, dst):
        if reached("commit"):
            die()
        os.rename(src, dst)
        if reached("renamed"):
            die()


open_shard = store.Staging.open_shard


def dying_open_shard(self, *args, **kwargs):
    if reached("shard"):
        die()
    return open_shard(self, *args, **kwargs)


store.open = store_open
store.os = StoreOS()
store.Staging.open_shard = dying_open_shard
runpy.run_module("curation.cli", run_name="__main__", alter_sys=True)
'''


class Rig:
    """The server, the recipe and the killer script shared by the tests of this module."""

    def __init__(self, folder: Path, server: FaultServer):
        self.folder, self.server = folder, server
        self.recipe = folder / "crash-math.yaml"
        self.recipe.write_text(
            RECIPE.format(problems=PROBLEMS, base_url=server.base_url, shards=SHARDS)
        )
        self.killer = folder / "killer.py"
        self.killer.write_text(KILLER)

    def start(self, store: Path, kill_at: str = "") -> subprocess.Popen:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "THINKMIX_KILL_AT": kill_at}
        command = [sys.executable, str(self.killer), "build", str(self.recipe)]
        options = ["--store", str(store), "--no-stats", "--workers", "1"]
        return subprocess.Popen(
            [*command, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def run(self, store: Path, kill_at: str = "", timeout: float = 120) -> tuple[int, str]:
        """One build; `hit:N` makes the server kill it at its N-th request."""
        process = self.start(store, "" if kill_at.startswith("hit:") else kill_at)
        if kill_at.startswith("hit:"):
            self.kill_on_hit(process, int(kill_at.split(":")[1]))
        try:
            output = process.communicate(timeout=timeout)[0]
        finally:
            self.server.on_hit = None
        return process.returncode, output

    def kill_on_hit(self, process: subprocess.Popen, nth: int) -> None:
        seen = []

        def on_hit(_: Hit) -> None:
            seen.append(1)
            if len(seen) == nth:
                process.send_signal(signal.SIGKILL)

        self.server.on_hit = on_hit


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with FaultServer(FaultPlan(reasoning="field")) as server:
        yield Rig(tmp_path_factory.mktemp("crash"), server)


@pytest.fixture(scope="module")
def clean(rig) -> dict[str, str]:
    """{path: sha256} of the shards of an uninterrupted build."""
    store = rig.folder / "clean"
    code, output = rig.run(store)
    assert code == 0, output
    return shard_hashes(store)


def shard_hashes(store: Path) -> dict[str, str]:
    (ref,) = [v.ref for v in Store(store).versions(DATASET)]
    assert verify(Store(store), ref) == []
    files = Store(store).manifest(ref)["files"]
    assert {f["split"] for f in files} == set(SPLITS) and len(files) == SHARDS * len(SPLITS)
    return {f["path"]: f["sha256"] for f in files}


def cached_requests(store: Path) -> int:
    path = store / ".cache" / "requests.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        try:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:  # killed before the table was created
            return 0


def assert_consistent(store: Path) -> int:
    """Checks what a reader can see after a kill; returns the cached requests."""
    if not store.exists():  # killed before the build created its store
        return 0
    the_store = Store(store)
    visible = [v.ref for v in the_store.versions()]
    dataset_dir = store / DATASET
    if dataset_dir.is_dir():
        for version_dir in dataset_dir.iterdir():
            assert (version_dir / "manifest.json").is_file(), f"partial version {version_dir}"
            assert the_store.exists(DATASET, version_dir.name)
    for ref in visible:
        assert verify(the_store, ref) == [], ref
    code, listing = thinkmix("ls", "--store", store)
    assert code == 0 and len(re.findall(DATASET, listing)) == len(visible), listing
    stray = [p for p in store.iterdir() if p.name not in (".cache", ".staging", DATASET)]
    assert not stray, stray
    return cached_requests(store)


def finish(rig: Rig, store: Path, clean: dict[str, str]) -> None:
    """Runs the build to the end and compares it with the uninterrupted one."""
    before = assert_consistent(store)
    hits_before = len(rig.server.hits)
    code, output = rig.run(store)
    assert code == 0, output
    # No teacher line: every shard was already written (or the version already published).
    found = re.search(r"teacher reasoner: (\d+) new requests", output)
    new = int(found.group(1)) if found else 0
    assert new == TOTAL - before, output
    assert sum(h.n for h in rig.server.hits[hits_before:]) == new  # and nothing else was sent
    assert cached_requests(store) == TOTAL
    assert shard_hashes(store) == clean
    leftover = [p for p in (store / ".staging").rglob("*") if p.is_file()]
    assert not leftover, f"the staging area outlived the commit: {leftover}"


def kill(rig: Rig, store: Path, kill_at: str) -> None:
    code, output = rig.run(store, kill_at)
    assert code == -signal.SIGKILL, f"{kill_at}: the build was not killed (exit {code})\n{output}"
    assert_consistent(store)


def test_killed_during_generation_then_finished(rig, clean, tmp_path):
    store = tmp_path / "store"
    kill(rig, store, f"hit:{CALLS // 2}")
    assert 0 < cached_requests(store) < TOTAL
    assert not Store(store).versions()
    finish(rig, store, clean)


def test_killed_while_writing_and_publishing_then_finished(rig, clean, tmp_path):
    store = tmp_path / "store"
    kill(rig, store, "shard:2")  # between the splits of a shard
    kill(rig, store, "write:1")  # a torn shard file
    # shards stream, so the other split files opened so far are left as temp files too
    assert {re.sub(r"\d", "N", p.name[:14]) for p in torn(store)} == {".part-NNNNN.pa"}
    kill(rig, store, "manifest:1")  # a torn manifest
    assert ".manifest.json" in {p.name[:14] for p in torn(store)}
    kill(rig, store, "commit:1")  # the manifest written, the version not yet published
    assert not Store(store).versions() and cached_requests(store) == TOTAL
    code, output = rig.run(store, "renamed:1")  # published, the staging area not yet removed
    assert code == -signal.SIGKILL, output
    staged = store / ".staging" / DATASET / _version(store)
    assert staged.is_dir()
    assert_consistent(store)
    assert not staged.exists(), "Store.exists should finish the interrupted clean-up"
    finish(rig, store, clean)


def torn(store: Path) -> list[Path]:
    """Temp files a killed writer left in the staging area, by name."""
    return sorted((store / ".staging").rglob(".*.tmp-*"), key=lambda p: p.name)


def _version(store: Path) -> str:
    (manifest,) = (store / DATASET).glob("*/manifest.json")
    return json.loads(manifest.read_text())["version"]


@pytest.mark.slow
def test_many_random_kills(rig, clean, tmp_path):
    """Chains of one to three kills at random points or times, each chain then finished."""
    rng = random.Random(int(os.environ.get("THINKMIX_CRASH_SEED", "0")))
    writes = SHARDS * (len(SPLITS) + 1) + 1
    points = {
        "hit": CALLS,
        "shard": SHARDS * len(SPLITS),
        "write": writes,
        "manifest": 1,
        "replace": writes,
        "commit": 1,
        "renamed": 1,
    }
    started = time.monotonic()
    code, _ = rig.run(tmp_path / "timing")
    assert code == 0
    full_run_s = time.monotonic() - started
    killed = chains = 0
    while killed < 24:
        chains += 1
        store = tmp_path / f"chain-{chains}"
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.4:  # at a random time
                process = rig.start(store)
                try:
                    process.wait(timeout=rng.uniform(0, full_run_s))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                process.communicate()
                killed += process.returncode == -signal.SIGKILL
            else:  # at a random point; a resumed build may end before it reaches it
                point = rng.choice(sorted(points))
                code, output = rig.run(store, f"{point}:{rng.randint(1, points[point])}")
                assert code in (0, -signal.SIGKILL), output
                killed += code == -signal.SIGKILL
            assert_consistent(store)
        finish(rig, store, clean)
        shutil.rmtree(store)
    print(f"{killed} kills in {chains} chains survived in {time.monotonic() - started:.0f} s")
