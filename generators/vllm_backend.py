"""The `vllm` backend: offline batch generation with `vllm.LLM` on local GPUs (extra `vllm`).

Recipe: `{backend: vllm, model: Qwen/Qwen2.5-Math-7B-Instruct, tensor_parallel_size: 1}`.
Each request is one prompt with its own `SamplingParams(seed=request.seed + sample_index)`, so
vLLM draws every sample from its own generator: a request's text does not depend on its batch.
Chat templates come from the model's tokenizer (`LLM.chat`). vLLM needs CUDA; on a machine
without it construction fails with an install hint, and the tests skip.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse
from generators.openai_backend import normalize_reasoning

_HINT = "the vllm backend needs vllm and a CUDA GPU: pip install vllm"


@register_backend("vllm")
class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,  # GPUs per model replica
        gpu_memory_utilization: float = 0.9,  # share of GPU memory vLLM may take
        max_model_len: int | None = None,  # context length; None: the model's
        dtype: str = "auto",
        batch_size: int = 1024,  # requests per LLM.chat call (and per cache commit)
        engine_kwargs: dict[str, Any] | None = None,  # any other vllm.LLM argument
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(_HINT) from exc
        self.model = model
        self.batch_size = batch_size
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            **(engine_kwargs or {}),
        )
        self._lock = threading.Lock()

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        return await asyncio.to_thread(self.generate_sync, requests)

    def generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        if not requests:
            return []
        params = [
            self._vllm.SamplingParams(
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p,
                max_tokens=r.sampling.max_tokens,
                seed=r.seed + r.sample_index,
            )
            for r in requests
        ]
        try:
            with self._lock:
                outputs = self.llm.chat(
                    [r.message_dicts() for r in requests], params, use_tqdm=False
                )
        except Exception as exc:  # an engine failure fails this batch, not the build
            error = f"vllm_failed: {type(exc).__name__}: {str(exc)[:300]}"
            return [GenerationResponse("", "error", error=error) for _ in requests]
        return [_response(o) for o in outputs]

    def close(self) -> None:
        self.llm = None


def _response(output: Any) -> GenerationResponse:
    completion = output.outputs[0]
    text = normalize_reasoning(completion.text, None)
    response = GenerationResponse(
        text=text,
        finish_reason=completion.finish_reason or "stop",
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(completion.token_ids),
    )
    if not text.strip():
        response.finish_reason, response.error = "error", "empty_completion: no text generated"
    return response
