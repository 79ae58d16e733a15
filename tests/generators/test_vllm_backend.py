"""The `vllm` backend: a clear error without vllm; real generation where a GPU is present."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from curation.generation import GenerationRequest, SamplingParams
from curation.registry import backend_class


def test_registered_and_missing_vllm_names_the_install():
    cls = backend_class("vllm")
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(ImportError, match="pip install vllm"):
        cls("any-model")


@pytest.mark.gpu
def test_vllm_generates_on_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm")
    from curation.teacher.paths import resolve_model

    backend = backend_class("vllm")(str(resolve_model("embedded")), gpu_memory_utilization=0.3)
    reqs = [
        GenerationRequest.build(
            [{"role": "user", "content": "What is 2+3?"}], SamplingParams(max_tokens=32), k, 1
        )
        for k in range(2)
    ]
    out = asyncio.run(backend.generate(reqs))
    again = asyncio.run(backend.generate(reqs))
    assert all(r.error is None or r.error.startswith("empty_completion") for r in out)
    assert [r.text for r in out] == [r.text for r in again]  # per-request seeds
    backend.close()
