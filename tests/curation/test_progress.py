"""Build progress reports tokens per teacher and what a priced teacher's new answers cost."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from curation.cache import RequestCache
from curation.context import CachedTeacher
from curation.generation import GenerationRequest, SamplingParams
from curation.progress import BuildProgress
from generators.fault_server import FaultPlan, FaultServer
from generators.openai_backend import OpenAIBackend

PRICES = {"prompt": 1.0, "completion": 2.0}  # USD per 1M tokens


def requests(count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest.build([{"role": "user", "content": f"q{i}"}], SamplingParams(), 0, seed=i)
        for i in range(count)
    ]


def run(teacher: CachedTeacher, reqs: list[GenerationRequest]):
    return asyncio.run(teacher.generate(reqs))


@pytest.fixture
def server():
    with FaultServer(FaultPlan(rates={})) as running:
        yield running


def test_priced_teacher_shows_its_cost_and_cached_answers_cost_nothing(server, tmp_path: Path):
    out = io.StringIO()
    progress = BuildProgress(Console(file=out, width=200), shards=1, log_every=0)
    cache = RequestCache(tmp_path / "requests.sqlite")
    priced = OpenAIBackend("fault-model", base_url=server.base_url, prices=PRICES)
    free = OpenAIBackend("fault-model", base_url=server.base_url)
    reasoner = CachedTeacher("reasoner", priced, cache, progress.requests)
    judge = CachedTeacher("judge", free, cache, progress.requests)

    answers = run(reasoner, requests(6))
    run(
        judge,
        requests(2)
        + [
            GenerationRequest.build(
                [{"role": "user", "content": "j"}], SamplingParams(), 0, seed=99
            )
        ],
    )

    usage = reasoner.usage
    spent = priced.cost(usage.prompt_tokens, usage.completion_tokens)
    assert spent is not None and spent > 0
    assert progress.teacher_cost == {"reasoner": pytest.approx(spent)}
    assert set(progress.teacher_tokens) == {"reasoner", "judge"}
    assert progress.teacher_tokens["reasoner"] == sum(a.completion_tokens for a in answers)
    assert progress.tokens == sum(progress.teacher_tokens.values())
    log = out.getvalue()
    assert f"${spent:.4f}" in log and "reasoner " in log and "judge " in log

    # The same requests again come from the cache: tokens are counted, nothing is spent.
    before = progress.teacher_cost["reasoner"]
    again = run(reasoner, requests(6))
    assert all(a.cached for a in again)
    assert progress.teacher_cost["reasoner"] == pytest.approx(before)
    cache.close()


def test_without_prices_no_cost_is_shown():
    progress = BuildProgress(Console(file=io.StringIO()), shards=1)
    progress.requests(3, 120, teacher="reasoner", cost=None)
    assert progress.teacher_cost == {}
    assert progress.usage_text() == "120 tokens"
