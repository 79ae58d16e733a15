"""The `openai` backend against a real loopback server that fails on purpose."""

from __future__ import annotations

import asyncio
import logging

import pytest

from curation.generation import GenerationRequest, SamplingParams
from curation.registry import make_backend
from generators.fault_server import FaultPlan
from generators.openai_backend import OpenAIBackend, normalize_reasoning
from generators.ratelimit import Backoff, TokenBucket, parse_retry_after


def requests(prompts: int = 2, samples: int = 1, seed: int = 7) -> list[GenerationRequest]:
    return [
        GenerationRequest.build(
            [{"role": "user", "content": f"question {p}"}],
            SamplingParams(max_tokens=32),
            sample_index=k,
            seed=seed,
        )
        for p in range(prompts)
        for k in range(samples)
    ]


def backend(server, **options) -> OpenAIBackend:
    defaults = {"base_url": server.base_url, "backoff_base_s": 0.01, "timeout_s": 2.0}
    return OpenAIBackend("fault-model", **{**defaults, **options})


def run(b: OpenAIBackend, reqs: list[GenerationRequest]):
    return asyncio.run(b.generate(reqs))


def test_registered_and_answers_each_request(fault_server):
    b = make_backend("openai", model="fault-model", base_url=fault_server.base_url)
    out = run(b, requests(3))
    assert [r.text for r in out] == [f"echo: question {p} [seed=7 choice=0]" for p in range(3)]
    assert all(r.error is None and r.prompt_tokens == 2 and r.completion_tokens > 0 for r in out)
    assert fault_server.requests == 3 and b.stats.calls == 3 and b.stats.retries == 0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("rate_limit", "http_429"),
        ("server_error", "http_500"),
        ("unavailable", "http_503"),
        ("reset", "connection"),
        ("malformed", "malformed_json"),
        ("missing_choices", "missing_choices"),
        ("hang", "timeout"),
    ],
)
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_each_fault_is_retried_and_counted(fault_server, fault, reason, transport):
    fault_server.plan = FaultPlan(sequence=(fault, fault), retry_after_s=0.01, hang_s=5)
    b = backend(fault_server, timeout_s=0.3, http_client=transport)
    out = run(b, requests(2))
    assert all(r.error is None and r.text.startswith("echo:") for r in out)
    assert b.stats.retries == 4 and b.stats.retry_reasons == {reason: 4}
    assert fault_server.counts[fault] == 4 and fault_server.counts["ok"] == 2
    # each request reached the server three times and was answered once
    assert sorted(h.attempt for h in fault_server.hits) == [0, 0, 1, 1, 2, 2]


def test_failure_after_last_retry_is_a_response_not_a_crash(fault_server):
    fault_server.plan = FaultPlan(rates={"unavailable": 1.0})
    b = backend(fault_server, max_retries=2)
    out = run(b, requests(2))
    assert all(r.finish_reason == "error" for r in out)
    assert all(r.error.startswith("http_503:") and "after 3 tries" in r.error for r in out)
    assert fault_server.requests == 6 and b.stats.failures == 2


def test_client_errors_are_not_retried(fault_server):
    b = backend(fault_server, base_url=fault_server.base_url.replace("/v1", "/nowhere"))
    out = run(b, requests(1))
    assert out[0].error.startswith("http_404:") and "not retried" in out[0].error
    assert b.stats.retries == 0


def test_retry_after_is_honoured(fault_server):
    fault_server.plan = FaultPlan(sequence=("rate_limit",), retry_after_s=0.4)
    b = backend(fault_server, backoff_base_s=0.0)
    run(b, requests(1))
    first, second = fault_server.hits
    assert second.at - first.at >= 0.4
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


def test_backoff_grows_with_jitter_and_defers_to_retry_after():
    import random

    rng, backoff = random.Random(0), Backoff(base_s=1.0, max_s=8.0)
    delays = [backoff.delay(k, rng) for k in range(6)]
    for k, d in enumerate(delays):
        ceiling = min(8.0, 2.0**k)
        assert ceiling / 2 <= d <= ceiling
    assert backoff.delay(0, rng, retry_after=12.5) == 12.5


def test_flagged_answers_never_crash(fault_server):
    fault_server.plan = FaultPlan(sequence=("empty",))
    out = run(backend(fault_server), requests(1))
    assert out[0].error.startswith("empty_completion") and out[0].finish_reason == "error"
    fault_server.reset()
    fault_server.plan = FaultPlan(sequence=("length",))
    out = run(backend(fault_server), requests(1))
    assert out[0].error is None and out[0].finish_reason == "length" and out[0].text


def test_samples_share_one_call_with_n(fault_server):
    b = backend(fault_server)
    out = run(b, requests(prompts=2, samples=3))
    assert fault_server.requests == 2 and {h.n for h in fault_server.hits} == {3}
    assert out[1].text == "echo: question 0 [seed=7 choice=1]"
    # the server bills the prompt once per call
    assert [r.prompt_tokens for r in out[:3]] == [2, 0, 0]


def test_choices_a_server_leaves_out_are_fanned_out(fault_server):
    fault_server.plan = FaultPlan(ignore_n=True)
    b = backend(fault_server)
    out = run(b, requests(prompts=1, samples=3))
    # one call asked n=3 and got 1 choice; samples 1 and 2 went alone, seeded seed + index
    assert [h.n for h in fault_server.hits] == [3, 1, 1]
    assert [r.text for r in out] == [
        "echo: question 0 [seed=7 choice=0]",
        "echo: question 0 [seed=8 choice=0]",
        "echo: question 0 [seed=9 choice=0]",
    ]
    assert b.stats.fanout_calls == 2
    run(b, requests(prompts=1, samples=2, seed=100))  # later calls no longer ask for n
    assert [h.n for h in fault_server.hits[3:]] == [1, 1]


@pytest.mark.parametrize("mode", ["field", "inline"])
def test_reasoning_becomes_a_leading_think_block(fault_server, mode):
    fault_server.plan = FaultPlan(reasoning=mode)
    out = run(backend(fault_server), requests(1))
    assert out[0].text.startswith("<think>") and "</think>" in out[0].text
    assert out[0].text.rstrip().endswith("[seed=7 choice=0]")


def test_normalize_reasoning_cases():
    assert normalize_reasoning("  <think>a</think>b", None) == "<think>a</think>b"
    assert normalize_reasoning("a</think>b", None) == "<think>a</think>b"
    assert normalize_reasoning("plain", None) == "plain"
    assert normalize_reasoning(None, "r").startswith("<think>\nr\n</think>")


def test_concurrency_bound_is_respected(fault_server):
    fault_server.plan = FaultPlan(rates={"slow": 1.0}, slow_s=0.05)
    b = backend(fault_server, max_concurrency=3)
    run(b, requests(12))
    assert fault_server.max_in_flight == 3


def test_token_bucket_paces_with_an_injected_clock():
    now = [0.0]

    async def sleep(s: float) -> None:
        now[0] += s

    bucket = TokenBucket(120, burst_s=1.0, clock=lambda: now[0], sleep=sleep)  # 2 per second
    stamps = []

    async def go() -> None:
        for _ in range(7):
            await bucket.acquire(1)
            stamps.append(now[0])

    asyncio.run(go())
    # a burst of one second's worth (2), then one every half second
    assert stamps[:3] == [0.0, 0.0, 0.5] and stamps[-1] == pytest.approx(2.5)
    # a request bigger than the bucket waits for a full bucket, then runs into debt
    big = TokenBucket(60, clock=lambda: now[0], sleep=sleep)
    asyncio.run(big.acquire(5))
    start = now[0]
    asyncio.run(big.acquire(1))
    assert now[0] - start == pytest.approx(5.0)


def test_requests_per_minute_limits_the_server_rate(fault_server):
    b = backend(fault_server, requests_per_minute=300)  # 5 a second, a burst of 5
    run(b, requests(8))
    times = sorted(h.at for h in fault_server.hits)
    assert times[-1] - times[0] >= 0.5  # the last 3 wait 0.2 s each


def test_key_stays_out_of_repr_and_logs(fault_server, monkeypatch, caplog):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("THINKMIX_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    b = backend(fault_server, api_key_env="THINKMIX_TEST_KEY")
    out = run(b, requests(1))
    assert out[0].error is None
    assert secret not in repr(b) and secret not in str(vars(b)) and secret not in caplog.text
    assert "THINKMIX_TEST_KEY" in repr(b)


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("THINKMIX_ABSENT_KEY", raising=False)
    with pytest.raises(ValueError, match="THINKMIX_ABSENT_KEY is not set"):
        OpenAIBackend("m", api_key_env="THINKMIX_ABSENT_KEY")


def test_bad_options_name_the_fix():
    with pytest.raises(ValueError, match="unknown options \\['max_concurency'\\]"):
        OpenAIBackend("m", max_concurency=4)
    with pytest.raises(ValueError, match="prices must be"):
        OpenAIBackend("m", prices={"input": 1.0})
    with pytest.raises(ValueError, match="http_client must be aiohttp or httpx"):
        OpenAIBackend("m", http_client="requests")


def test_cost_from_prices():
    b = OpenAIBackend("m", prices={"prompt": 0.5, "completion": 2.0})
    assert b.cost(2_000_000, 1_000_000) == pytest.approx(3.0)
    assert OpenAIBackend("m").cost(10, 10) is None
