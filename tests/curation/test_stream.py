"""The streaming engine: no barrier between shards, bytes independent of completion order,
every source read once, and a global stage that sees every shard's rows."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq
from rich.console import Console

import curation.engine as engine
from curation.cache import RequestCache
from curation.generation import GenerationRequest, GenerationResponse
from curation.progress import BuildProgress
from curation.recipe import load_recipe
from curation.record import Record, stable_hash
from curation.registry import register_backend, register_stage
from curation.runner import Builder, shard_of
from curation.stage import Stage, StageResult
from curation.store import Store, row_group_rows, verify


@register_stage("tests.shuffled")
@dataclass
class Shuffled(Stage):
    """Passes rows on after a seeded number of event-loop turns, so batches finish in an
    order set by `Shuffled.seed` (no wall-clock time involved; not a recipe parameter, so two
    orders build the same version)."""

    seed: ClassVar[int] = 0

    async def process(self, records: list[Record], ctx: Any) -> StageResult:
        turns = int(stable_hash(Shuffled.seed, records[0].id), 16) % 40
        for _ in range(turns):
            await asyncio.sleep(0)
        return StageResult(kept=records)


@register_stage("tests.count_reads")
@dataclass
class CountReads(Stage):
    """A source-less marker stage: counts the rows it sees (one class-level tally per test)."""

    seen: ClassVar[list[str]] = []

    async def process(self, records: list[Record], ctx: Any) -> StageResult:
        CountReads.seen += [r.id for r in records]
        return StageResult(kept=records)


class Gate:
    """Holds the first prompt's call until every other call of the build has arrived."""

    total = 0
    arrived = 0
    held = ""
    event: asyncio.Event | None = None


@register_backend("tests-gated")
class GatedBackend:
    """An HTTP-like teacher (it has `max_concurrency`) whose first prompt's call cannot finish
    until every other prompt's call has been sent: a build with a barrier anywhere between
    shards never gets there."""

    name = "tests-gated"
    max_concurrency = 64
    batch_size = 64

    def __init__(self, model: str = "gated", **_: Any) -> None:
        self.model = model

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        if Gate.event is None:
            Gate.event = asyncio.Event()
        Gate.arrived += len(requests)
        if Gate.arrived >= Gate.total:
            Gate.event.set()
        prompt = requests[0].messages[-1][1]
        if not Gate.held:
            Gate.held = prompt
        if prompt == Gate.held:
            await asyncio.wait_for(Gate.event.wait(), timeout=60)  # a guard, never a measure
        return [GenerationResponse(text=f"answer to {prompt}") for _ in requests]

    def close(self) -> None:
        pass


def build(tmp_path: Path, recipe_text: str, name: str = "r.yaml", shard: int | None = None):
    recipe = tmp_path / name
    recipe.write_text(recipe_text)
    loaded = load_recipe(recipe)
    cache = RequestCache(tmp_path / "cache.sqlite")
    try:
        progress = BuildProgress(Console(quiet=True), loaded.recipe.shards)
        builder = Builder(loaded, Store(tmp_path / "store"), cache, progress, workers=1)
        return builder.build(shard)
    finally:
        cache.close()


def rows_jsonl(path: Path, texts: list[str]) -> Path:
    lines = [json.dumps({"id": f"p{i}", "problem": t, "answer": "1"}) for i, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n")
    return path


SHUFFLED = """\
name: shuffled
sources:
  - {type: jsonl, path: rows.jsonl}
stages:
  - {type: tests.shuffled}
  - {type: tests.count_reads}
  - {type: filters.math_problem}
shards: 3
"""


def test_bytes_do_not_depend_on_the_order_batches_finish_in(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_ROWS", 5)  # many batches per shard, all in flight
    texts = [f"What is {i} + {i}? Give the number." for i in range(120)]
    texts[7] = texts[19] = "Prove that there are infinitely many primes."  # rejected rows too
    hashes, orders = [], []
    for seed in (0, 1):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        rows_jsonl(folder / "rows.jsonl", texts)
        Shuffled.seed, CountReads.seen = seed, []
        result = build(folder, SHUFFLED)
        orders.append(list(CountReads.seen))
        files = Store(folder / "store").manifest(result.ref)["files"]
        hashes.append({f["path"]: f["sha256"] for f in files})
    assert orders[0] != orders[1], "the two builds must finish their batches in other orders"
    assert hashes[0] == hashes[1]
    assert result.manifest["splits"] == {"train": 118, "rejected": 2, "failed": 0}


def test_a_shards_rows_stay_in_source_order_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_ROWS", 3)
    texts = [f"What is {i} times 2?" for i in range(40)]
    rows_jsonl(tmp_path / "rows.jsonl", texts)
    Shuffled.seed = 5
    result = build(tmp_path, SHUFFLED)
    store = Store(tmp_path / "store")
    for shard in range(3):
        path = store.path(result.ref) / "train" / f"part-{shard:05d}.parquet"
        ids = pq.read_table(path).column("source_id").to_pylist()
        assert ids == sorted(ids, key=lambda s: int(s[1:])), ids  # p0, p3, p5 ... in file order
        assert all(shard_of(i, 3) == shard for i in pq.read_table(path).column("id").to_pylist())


GATED = """\
name: gated
sources:
  - {type: tinyworld.math, count: 24, seed: 0}
teachers:
  reasoner: {backend: tests-gated, model: gated}
stages:
  - {type: generators.multi_sample, teacher: reasoner, samples_on: 1}
shards: 4
"""


def test_no_shard_waits_for_another_shards_slowest_call(tmp_path):
    """The first call is held until all 24 were sent: with one shard after another (or any
    barrier), the build could never send the other shards' calls and would time out."""
    Gate.total, Gate.arrived, Gate.held, Gate.event = 24, 0, "", None
    result = build(tmp_path, GATED)
    assert result.status == "built"
    assert Gate.arrived == 24 and result.manifest["splits"]["train"] == 24
    usage = result.manifest["usage"]["reasoner"]
    assert usage["requests"] == 24 and usage["failed_requests"] == 0


COUNTED = """\
name: counted
sources:
  - {type: jsonl, path: rows.jsonl}
stages:
  - {type: tests.count_reads}
shards: 8
"""


def test_each_source_row_is_read_once_whatever_the_shard_count(tmp_path):
    reads = []
    original = engine.SourcePass.__iter__

    def counting(self):
        for batch in original(self):
            reads.extend(r.id for r in batch.rows)
            yield batch

    rows_jsonl(tmp_path / "rows.jsonl", [f"q {i}" for i in range(50)])
    CountReads.seen = []
    engine.SourcePass.__iter__ = counting
    try:
        result = build(tmp_path, COUNTED)
    finally:
        engine.SourcePass.__iter__ = original
    assert len(reads) == len(set(reads)) == 50
    assert sorted(CountReads.seen) == sorted(reads)
    assert result.manifest["splits"]["train"] == 50


DEDUP = """\
name: dedup
sources:
  - {{type: jsonl, path: rows.jsonl}}
stages:
  - {{type: decontam.minhash, benchmarks: [humaneval], fields: [input], dedup: true,
     shingle: 2}}
shards: {shards}
"""


def near_duplicates_in_two_shards(folder: Path, shards: int) -> list[str]:
    """Writes rows.jsonl: two near-duplicate prompts that land in different shards, and 20
    distinct ones; returns the two duplicates' ids."""
    base = "the quick brown fox jumps over the lazy dog near the old river bank today {}"
    others = [f"row {i}: " + " ".join(f"word{i}x{j}" for j in range(12)) for i in range(20)]
    for k in range(1, 50):
        texts = [base.format("again"), base.format("again" + "!" * k), *others]
        path = rows_jsonl(folder / "rows.jsonl", texts)
        ids = [r.id for r in _read(path, folder)][:2]
        if shard_of(ids[0], shards) != shard_of(ids[1], shards):
            return ids
    raise AssertionError("no variant lands in two shards")


def test_global_dedup_catches_a_pair_split_across_shards(tmp_path):
    pair = near_duplicates_in_two_shards(tmp_path, 4)
    result = build(tmp_path, DEDUP.format(shards=4))
    assert result.status == "built"
    store = Store(tmp_path / "store")
    rejected = store.read_records(result.ref, "rejected")
    assert [r.reason for r in rejected] == ["duplicate_minhash"]
    assert rejected[0].id in pair
    assert result.manifest["splits"] == {"train": 21, "rejected": 1, "failed": 0}
    dedup = result.manifest["stages"][1]
    assert (dedup["name"], dedup["in"], dedup["kept"]) == ("decontam.minhash", 22, 21)
    # the pre-global staging area is gone once the version is published
    assert not list((tmp_path / "store" / ".staging").rglob("*.parquet"))


def test_a_global_recipe_builds_shard_by_shard_and_rechecks(tmp_path):
    near_duplicates_in_two_shards(tmp_path, 2)
    first = build(tmp_path, DEDUP.format(shards=2), shard=0)
    assert first.status == "partial"
    second = build(tmp_path, DEDUP.format(shards=2), shard=1)
    assert second.status == "built"
    assert second.manifest["splits"]["rejected"] == 1
    again = build(tmp_path, DEDUP.format(shards=2), shard=1)
    assert again.status == "reproduced", again.mismatches


def _read(path: Path, folder: Path) -> list[Record]:
    from curation.context import RunContext
    from curation.sources import JsonlSource

    return list(JsonlSource(path=str(path)).read(RunContext("dedup", "", 0, folder)))


def test_a_streamed_shard_file_has_the_same_bytes_however_its_rows_arrive(tmp_path):
    rows = [Record(id=f"r{i}", input=[{"role": "user", "content": f"q{i}"}]) for i in range(2500)]
    digests = []
    for name, step in (("a", 1), ("b", 7), ("c", 2500)):
        staging = Store(tmp_path / name).staging("d", "v")
        writer = staging.open_shard("train", 0, row_group=1024)
        for start in range(0, len(rows), step):
            writer.write(rows[start : start + step])
        info = writer.close()
        digests.append(info["sha256"])
        meta = pq.ParquetFile(staging.data_dir / info["path"]).metadata
        assert (meta.num_rows, meta.num_row_groups, info["rows"]) == (2500, 3, 2500)
    assert len(set(digests)) == 1
    assert row_group_rows(1) > row_group_rows(16) >= row_group_rows(64) >= 1024


def test_a_global_recipe_keeps_the_quarantined_rows_of_its_streamed_part(tmp_path):
    near_duplicates_in_two_shards(tmp_path, 2)
    with (tmp_path / "rows.jsonl").open("a") as f:
        f.write('{"problem": 7}\n')  # a bad row, quarantined under on_error: skip
    result = build(tmp_path, DEDUP.format(shards=2) + "on_error: skip\n")
    store = Store(tmp_path / "store")
    manifest = store.manifest(result.ref)
    assert manifest["quarantined"]["rows"] == 1
    (bad,) = store.read_records(result.ref, "quarantine")
    assert bad.source_id == "23" and bad.reason.startswith("problem")
    assert verify(store, result.ref) == []
    again = build(tmp_path, DEDUP.format(shards=2) + "on_error: skip\n", shard=0)
    assert again.status == "reproduced", again.mismatches
