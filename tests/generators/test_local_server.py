"""Builds over real HTTP: the fault server with faults on, and `transformers serve` (local-server)."""

from __future__ import annotations

import asyncio

import pytest

from curation.generation import GenerationRequest, SamplingParams
from curation.store import Store
from generators.fault_server import FaultPlan
from tests.curation.conftest import thinkmix

RECIPE = """\
name: http-math
sources:
  - {{type: tinyworld.math, count: {count}, seed: 3}}
teachers:
  reasoner: {teacher}
stages:
  - {{type: generators.multi_sample, teacher: reasoner, samples_on: 2, samples_off: 2,
     temperature: 0.8, max_tokens: {max_tokens}}}
  - {{type: filters.boxed_answer}}
  - {{type: filters.think_format}}
shards: 2
"""


def build(folder, teacher: str, count: int, max_tokens: int = 64) -> tuple[Store, str]:
    recipe = folder / "http-math.yaml"
    recipe.write_text(RECIPE.format(teacher=teacher, count=count, max_tokens=max_tokens))
    store = folder / "store"
    code, output = thinkmix("build", recipe, "--store", store, "--workers", "1", "--no-stats")
    assert code == 0, output
    return Store(store), output.strip().splitlines()[-1]


def test_build_through_faults_completes_and_fails_rows_honestly(tmp_path, fault_server):
    fault_server.plan = FaultPlan(
        rates={"unavailable": 0.25, "rate_limit": 0.25, "malformed": 0.1},
        retry_after_s=0.01,
        seed=1,
    )
    teacher = (
        f"{{backend: openai, model: fault-model, base_url: '{fault_server.base_url}', "
        "max_retries: 1, backoff_base_s: 0.01, max_concurrency: 8}"
    )
    store, ref = build(tmp_path, teacher, count=6)
    splits = store.manifest(ref)["splits"]
    assert sum(splits.values()) == 6 * 4
    failed = store.read_records(ref, "failed")
    assert splits["failed"] == len(failed) > 0
    assert all(r.stage == "generators.multi_sample" for r in failed)
    assert all(
        r.reason.startswith("request_failed: ") and "after 2 tries" in r.reason for r in failed
    )
    assert splits["train"] + splits["rejected"] > 0
    assert store.manifest(ref)["usage"]["reasoner"]["failed_requests"] == len(failed)
    # the server saw retried requests that the build counted once
    assert any(h.attempt > 0 for h in fault_server.hits)


def test_missing_model_dir_fails_fast_with_the_fix(tmp_path):
    from generators.local_server import LocalServerBackend

    with pytest.raises(FileNotFoundError, match="pass a local HF model dir"):
        LocalServerBackend(str(tmp_path / "nothing"))


@pytest.fixture(scope="module")
def local_server():
    from generators.local_server import LocalServerBackend

    pytest.importorskip("fastapi", reason="needs transformers[serving]")
    backend = LocalServerBackend("embedded", max_concurrency=2)
    yield backend
    backend.close()


@pytest.mark.slow
def test_local_server_samples_the_embedded_teacher_over_http(local_server):
    sampling = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=48)
    reqs = [
        GenerationRequest.build(
            [
                {"role": "system", "content": "detailed thinking on"},
                {"role": "user", "content": "What is 2+3?"},
            ],
            sampling,
            sample_index=k,
            seed=1,
        )  # fmt: skip
        for k in range(2)
    ]
    out = asyncio.run(local_server.generate(reqs))
    assert all(r.error is None and r.text and r.completion_tokens > 0 for r in out)
    assert local_server.stats.calls == 2 and local_server.stats.retries == 0
    assert local_server.fingerprint and local_server.model == "embedded"


@pytest.mark.slow
def test_build_through_transformers_serve(tmp_path):
    pytest.importorskip("fastapi", reason="needs transformers[serving]")
    store, ref = build(tmp_path, "{backend: local-server, model: embedded}", count=2)
    manifest = store.manifest(ref)
    assert sum(manifest["splits"].values()) == 2 * 4
    assert manifest["splits"]["failed"] == 0
    assert manifest["usage"]["reasoner"]["requests"] == 8


def test_close_stops_the_server_process():
    from generators.local_server import LocalServerBackend

    backend = LocalServerBackend.__new__(LocalServerBackend)  # no model load: only the process
    import subprocess
    import sys

    backend._client = None
    backend._loop = None
    backend._process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    backend.close()
    assert backend._process is None
