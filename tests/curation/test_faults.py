"""A whole build against a teacher server that fails on purpose, at every fault the server knows.

The teacher is the `openai` backend pointed at a loopback `FaultServer` that draws one fault per
request attempt at the rates below (reproducibly: a hash of the request and the attempt). The
build must finish; every request that failed after its retries must be a `failed` row naming its
reason; a truncated answer must be rejected, not kept; usage must count each request once however
often it was retried; and the manifest's counts must add up for every stage.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from curation.cache import RequestCache
from curation.context import CachedTeacher
from curation.generation import GenerationRequest, SamplingParams
from curation.store import Store
from generators.fault_server import FAULTS, FaultPlan, FaultServer, Hit
from generators.openai_backend import OpenAIBackend

from .conftest import thinkmix

PROBLEMS, SAMPLES = 30, 4  # 2 reasoning on + 2 off per problem
TOTAL = PROBLEMS * SAMPLES
MAX_RETRIES = 1  # two tries per request, so a fair share of requests fail for good
# Probability of each fault per attempt (the plan tries them in name order, first hit wins).
RATES = {
    "rate_limit": 0.065,
    "server_error": 0.065,
    "unavailable": 0.065,
    "hang": 0.065,
    "reset": 0.065,
    "malformed": 0.065,
    "missing_choices": 0.065,
    "empty": 0.05,
    "length": 0.05,
    "slow": 0.1,
}
ANSWERED = {"ok", "slow", "length", "empty"}  # faults that still send a completion
# What the backend calls each fault that it retries, and so what a failed row's reason names.
RETRIED = {
    "rate_limit": "http_429",
    "server_error": "http_500",
    "unavailable": "http_503",
    "hang": "timeout",
    "reset": "connection",
    "malformed": "malformed_json",
    "missing_choices": "missing_choices",
}

RECIPE = """\
name: fault-math
sources:
  - {{type: tinyworld.math, count: {problems}, seed: 5}}
teachers:
  reasoner: {{backend: openai, model: fault-model, base_url: "{base_url}", max_retries: {retries},
             backoff_base_s: 0.01, backoff_max_s: 0.05, timeout_s: 1.0, batch_size: 8}}
stages:
  - {{type: generators.multi_sample, teacher: reasoner, samples_on: 2, samples_off: 2,
     max_tokens: 64}}
  - {{type: filters.think_format}}
shards: 3
"""


def faulty_plan() -> FaultPlan:
    # `reasoning="field"` gives every answer a think block: reasoning-on rows pass the format
    # filter and reasoning-off rows are rejected by it, so every split gets rows.
    return FaultPlan(
        rates=RATES, seed=11, retry_after_s=0.01, hang_s=3.0, slow_s=0.05, reasoning="field"
    )


@pytest.fixture
def server():
    with FaultServer(faulty_plan()) as running:
        yield running


def write_recipe(folder: Path, server: FaultServer) -> Path:
    path = folder / "fault-math.yaml"
    text = RECIPE.format(problems=PROBLEMS, base_url=server.base_url, retries=MAX_RETRIES)
    path.write_text(text)
    return path


def build(recipe: Path, store: Path, *options: str) -> tuple[str, dict[str, int]]:
    """Runs `thinkmix build`; returns the version ref and the teacher's request counts."""
    args = ("build", recipe, "--store", store, "--workers", "1", "--no-stats", *options)
    code, output = thinkmix(*args)
    assert code == 0, output
    ref = output.strip().splitlines()[-1]
    if "is already built" in output:  # nothing was asked of the teacher
        return ref, {"new": 0, "cached": 0, "failed": 0}
    found = re.search(r"teacher reasoner: (\d+) new requests, (\d+) cached, (\d+) failed", output)
    assert found, output
    new, cached, failed = map(int, found.groups())
    return ref, {"new": new, "cached": cached, "failed": failed}


def final_hits(hits: list[Hit]) -> dict[str, Hit]:
    """The last attempt of every distinct request body (a retry repeats the body)."""
    last: dict[str, Hit] = {}
    for hit in hits:
        if hit.key not in last or hit.attempt > last[hit.key].attempt:
            last[hit.key] = hit
    return last


def assert_counts_add_up(manifest: dict) -> None:
    stages = manifest["stages"]
    for stage in stages:
        assert stage["in"] + stage["created"] == stage["kept"] + stage["rejected"] + stage["failed"]
        assert sum(stage["reasons"].values()) == stage["rejected"] + stage["failed"], stage
    assert manifest["splits"] == {
        "train": stages[-1]["kept"],
        "rejected": sum(s["rejected"] for s in stages),
        "failed": sum(s["failed"] for s in stages),
    }


def cached_rows(store: Path) -> list[dict]:
    with sqlite3.connect(store / ".cache" / "requests.sqlite") as db:
        return [json.loads(r) for (r,) in db.execute("SELECT response FROM responses")]


def test_build_survives_every_fault_and_accounts_for_every_request(server, tmp_path):
    recipe, store_dir = write_recipe(tmp_path, server), tmp_path / "store"
    ref, counts = build(recipe, store_dir)
    store = Store(store_dir)
    manifest = store.manifest(ref)
    assert set(FAULTS) <= set(server.counts), f"some fault never happened: {server.counts}"

    last = final_hits(server.hits)
    # Each request was asked for once, however often it was retried: a call for the samples of
    # one prompt carries `n` of them, and every retry repeats the same body.
    assert sum(h.n for h in last.values()) == TOTAL
    assert len(server.hits) > len(last), "the plan should have forced retries"
    assert all(h.attempt <= MAX_RETRIES for h in server.hits)
    given_up = [h for h in last.values() if h.fault not in ANSWERED]
    assert all(h.attempt == MAX_RETRIES for h in given_up), "a request was abandoned early"

    # Every failure is a failed row with its reason; nothing else failed.
    expected = Counter()
    for hit in given_up:
        expected[RETRIED[hit.fault]] += hit.n
    expected["empty_completion"] += sum(h.n for h in last.values() if h.fault == "empty")
    failed = store.read_records(ref, "failed")
    got = Counter(r.reason.split(": ")[1] for r in failed)
    assert got == expected and sum(expected.values()) > 0
    for row in failed:
        assert row.stage == "generators.multi_sample" and row.meta["finish_reason"] == "error"
        assert row.reason.startswith("request_failed: ")
        if not row.reason.startswith("request_failed: empty_completion"):
            assert row.reason.endswith(f"after {MAX_RETRIES + 1} tries"), row.reason
    http = [r.reason for r in failed if r.reason.startswith("request_failed: http_")]
    assert http and all(re.match(r"request_failed: http_(\d{3}): HTTP \1", r) for r in http)

    # A truncated answer is not a full answer: rejected with its reason and its raw text.
    truncated = [r for r in store.read_records(ref, "rejected") if r.reason == "sample_truncated"]
    assert len(truncated) == sum(h.n for h in last.values() if h.fault == "length") > 0
    assert all(r.meta["finish_reason"] == "length" and r.output for r in truncated)
    assert all(r.meta["finish_reason"] == "stop" for r in store.read_records(ref, "train"))

    # Usage: every request once; tokens only from the answers the build received.
    usage = manifest["usage"]["reasoner"]
    assert usage["requests"] == TOTAL == counts["new"] + counts["failed"]
    assert usage["failed_requests"] == counts["failed"] == len(failed)
    answered_tokens = sum(h.completion_tokens for h in last.values() if h.fault in ANSWERED)
    assert usage["completion_tokens"] == answered_tokens > 0

    assert_counts_add_up(manifest)
    assert manifest["splits"]["train"] > 0 and manifest["splits"]["rejected"] > 0
    # Failures are never cached as answers: the cache holds exactly the answered requests.
    rows = cached_rows(store_dir)
    assert len(rows) == TOTAL - len(failed) and all(r["error"] is None for r in rows)


def test_rebuild_after_the_outage_retries_only_failed_requests(server, tmp_path):
    recipe, store_dir = write_recipe(tmp_path, server), tmp_path / "store"
    first_ref, first = build(recipe, store_dir)
    assert first["failed"] > 0
    server.plan = FaultPlan(reasoning="field")  # healthy again
    server.reset()

    # A version is immutable: the same recipe is already built, failures and all.
    again_ref, again = build(recipe, store_dir)
    assert again_ref == first_ref and again["new"] == 0 and server.requests == 0

    # Any change to the recipe makes a new version; the cache answers everything that succeeded,
    # so only the failed requests reach the server again.
    retry_ref, retry = build(recipe, store_dir, "--set", "description=after the outage")
    assert retry_ref != first_ref
    assert retry == {"new": first["failed"], "cached": TOTAL - first["failed"], "failed": 0}
    assert sum(h.n for h in server.hits) == first["failed"]
    store = Store(store_dir)
    assert store.manifest(retry_ref)["splits"]["failed"] == 0
    assert_counts_add_up(store.manifest(retry_ref))

    # Rows that were answered the first time are the same rows now (served from the cache).
    def outputs(ref: str) -> dict[str, str]:
        rows = store.read_records(ref, "train") + store.read_records(ref, "rejected")
        return {r.id: r.output for r in rows}

    before, after = outputs(first_ref), outputs(retry_ref)
    assert before.items() <= after.items()
    assert len(after) == len(before) + first["failed"]


def test_a_request_asked_twice_in_one_batch_is_sent_once(server, tmp_path):
    server.plan = FaultPlan()
    cache = RequestCache(tmp_path / "requests.sqlite")
    backend = OpenAIBackend("fault-model", base_url=server.base_url, group_samples=False)
    teacher = CachedTeacher("reasoner", backend, cache)
    ask = GenerationRequest.build([{"role": "user", "content": "2+2?"}], SamplingParams())
    other = GenerationRequest.build([{"role": "user", "content": "3+3?"}], SamplingParams())
    out = asyncio.run(teacher.generate([ask, other, ask]))
    assert server.requests == 2 and len(cache) == 2
    assert out[0].text == out[2].text != out[1].text and out[2].cached
    assert (teacher.usage.new_requests, teacher.usage.cached_requests) == (2, 1)
    cache.close()
