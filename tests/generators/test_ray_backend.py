"""The `ray` backend: ray.data.llm's HTTP processor against the fault server, vLLM on a GPU."""

from __future__ import annotations

import asyncio

import pytest

from curation.generation import GenerationRequest, SamplingParams
from generators.fault_server import FaultPlan
from generators.ray_backend import RayBackend, _http_post, _http_pre, _row

REQUESTS = [
    GenerationRequest.build([{"role": "user", "content": f"q{i}"}], SamplingParams(), 0, seed=5)
    for i in range(4)
]


def test_rows_become_openai_payloads_and_answers_become_responses():
    pre = _http_pre(_row(0, REQUESTS[1]), "m")
    assert pre["payload"]["messages"] == [{"role": "user", "content": "q1"}]
    assert pre["payload"]["seed"] == 5 and pre["payload"]["model"] == "m"
    body = {"choices": [{"message": {"content": "hi", "reasoning_content": "r"}}], "usage": {}}
    post = _http_post({"i": 0, "http_response": body})
    assert post["text"].startswith("<think>\nr\n</think>") and not post["error"]
    assert _http_post({"i": 0, "http_response": {"error": "boom"}})["error"].startswith("bad_")


def test_options_are_checked():
    with pytest.raises(ValueError, match="engine http needs base_url"):
        RayBackend("m")
    with pytest.raises(ValueError, match="unknown options"):
        RayBackend("m", base_url="http://x/v1", workers=3)


@pytest.mark.slow
def test_http_processor_retries_429_and_answers(fault_server):
    pytest.importorskip("ray.data.llm", reason="needs ray[data]")
    fault_server.plan = FaultPlan(sequence=("rate_limit",), reasoning="field")
    backend = RayBackend("fault-model", base_url=fault_server.base_url, num_cpus=2, max_retries=2)
    try:
        out = asyncio.run(backend.generate(REQUESTS))
    finally:
        backend.close()
    assert [r.error for r in out] == [None] * 4
    assert out[2].text.endswith("echo: q2 [seed=5 choice=0]") and out[2].text.startswith("<think>")
    assert fault_server.counts == {"rate_limit": 4, "ok": 4}


@pytest.mark.gpu
def test_vllm_engine_processor_on_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm")
    backend = RayBackend("Qwen/Qwen2.5-0.5B-Instruct", engine="vllm", num_cpus=4)
    try:
        out = asyncio.run(backend.generate(REQUESTS[:2]))
    finally:
        backend.close()
    assert all(r.error is None and r.text for r in out)
