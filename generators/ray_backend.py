"""The `ray` backend: requests as a `ray.data` dataset through a `ray.data.llm` processor.

Recipe: `{backend: ray, model: M, engine: http, base_url: http://HOST:8000/v1}` sends each
request to any OpenAI-compatible endpoint through `HttpRequestProcessorConfig`;
`{backend: ray, model: HF_ID_OR_DIR, engine: vllm, engine_kwargs: {tensor_parallel_size: 2}}`
runs `vLLMEngineProcessorConfig` replicas on a GPU cluster (needs `vllm`). `address` joins a
running cluster (`ray start --head`); without it a local Ray starts with `num_cpus`.

What Ray's HTTP stage does (ray 2.60), and how this backend keeps our contract:
- it retries only 429/408/502/503/504 and dropped connections, with plain exponential backoff
  and no `Retry-After`; any other status comes back as its JSON body, which becomes an error
  response here;
- a request that exhausts its retries raises and stops the whole dataset; this backend then
  answers every request of that call with the error (the runner puts them in `failed`), so a
  build never crashes, but the other requests of that call are lost too. For fault-tolerant
  HTTP at scale prefer the `openai` backend (per-request retries, Retry-After, rate limits).
Samples are one row each (no `n`); `seed = request.seed + sample_index` as in `openai`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field, fields
from typing import Any

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse
from generators.openai_backend import normalize_reasoning

_HINT = "the ray backend needs ray[data]: pip install 'ray[data]'"


@dataclass
class RayOptions:
    engine: str = "http"  # http (any OpenAI-compatible server) | vllm (GPU replicas)
    base_url: str | None = None  # engine http: the server's /v1 URL
    api_key_env: str | None = None  # engine http: NAME of the env var holding the key
    concurrency: int = 1  # processor replicas (actors)
    batch_size: int = 64  # rows per processor batch
    max_retries: int = 3  # engine http: Ray's own retries (429/408/5xx-gateway/connection)
    qps: int | None = None  # engine http: requests per second per replica
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # engine vllm: vllm.LLM args
    address: str | None = None  # a running cluster ("auto" or ray://...); None: local Ray
    num_cpus: int | None = None  # for a local Ray

    def __post_init__(self) -> None:
        if self.engine not in ("http", "vllm"):
            raise ValueError(f"engine must be http or vllm, got {self.engine!r}")
        if self.engine == "http" and not self.base_url:
            raise ValueError("engine http needs base_url, e.g. http://127.0.0.1:8000/v1")


@register_backend("ray")
class RayBackend:
    name = "ray"

    def __init__(self, model: str, **options: Any) -> None:
        known = {f.name for f in fields(RayOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"ray backend: unknown options {unknown}; known: {sorted(known)}")
        self.model = model
        self.options = RayOptions(**options)
        if self.options.api_key_env and not os.environ.get(self.options.api_key_env):
            raise ValueError(f"environment variable {self.options.api_key_env} is not set")
        self.batch_size = self.options.batch_size * max(1, self.options.concurrency) * 4
        self._ray = _import_ray()
        self._started_ray = False

    def __repr__(self) -> str:
        return f"RayBackend(model={self.model!r}, engine={self.options.engine!r})"

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        return await asyncio.to_thread(self.generate_sync, requests)

    def generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        if not requests:
            return []
        ray = self._ray
        if not ray.is_initialized():  # inside a Ray executor task it already is
            ray.init(
                address=self.options.address,
                num_cpus=self.options.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
            )
            self._started_ray = True
        rows = [_row(i, r) for i, r in enumerate(requests)]
        try:
            processor = self._processor()
            done = processor(ray.data.from_items(rows)).take_all()
        except Exception as exc:  # Ray stops the whole dataset on one exhausted request
            error = f"ray_failed: {type(exc).__name__}: {str(exc)[:300]}"
            return [GenerationResponse("", "error", error=error) for _ in requests]
        out: list[GenerationResponse | None] = [None] * len(requests)
        for row in done:
            out[int(row["i"])] = _response(row)
        missing = GenerationResponse("", "error", error="ray_failed: no row came back")
        return [r if r is not None else missing for r in out]

    def _processor(self) -> Any:
        from ray.data.llm import build_processor

        opts = self.options
        if opts.engine == "vllm":
            from ray.data.llm import vLLMEngineProcessorConfig

            config = vLLMEngineProcessorConfig(
                model_source=self.model,
                engine_kwargs=opts.engine_kwargs,
                concurrency=opts.concurrency,
                batch_size=opts.batch_size,
            )
            return build_processor(config, preprocess=_vllm_pre, postprocess=_vllm_post)
        from ray.data.llm import HttpRequestProcessorConfig

        headers = {}
        if opts.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[opts.api_key_env]}"
        config = HttpRequestProcessorConfig(
            url=f"{opts.base_url.rstrip('/')}/chat/completions",
            headers=headers,
            qps=opts.qps,
            max_retries=opts.max_retries,
            batch_size=opts.batch_size,
            concurrency=opts.concurrency,
        )
        model = self.model
        return build_processor(
            config, preprocess=lambda row: _http_pre(row, model), postprocess=_http_post
        )

    def close(self) -> None:
        # Only a Ray this backend started: shutting down the executor's own Ray from inside
        # one of its tasks breaks that worker.
        if self._started_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._started_ray = False


def _import_ray() -> Any:
    try:
        import ray
        import ray.data.llm  # noqa: F401
    except ImportError as exc:
        raise ImportError(_HINT) from exc
    return ray


def _row(i: int, r: GenerationRequest) -> dict[str, Any]:
    return {
        "i": i,
        "messages": r.message_dicts(),
        "temperature": r.sampling.temperature,
        "top_p": r.sampling.top_p,
        "max_tokens": r.sampling.max_tokens,
        "seed": r.seed + r.sample_index,
    }


def _sampling(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("temperature", "top_p", "max_tokens", "seed")
    return {k: (float(row[k]) if k in ("temperature", "top_p") else int(row[k])) for k in keys}


def _http_pre(row: dict[str, Any], model: str) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return {"i": row["i"], "payload": {"model": model, "messages": messages, **_sampling(row)}}


def _http_post(row: dict[str, Any]) -> dict[str, Any]:
    body = row.get("http_response") or {}
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices:
        return {"i": row["i"], "text": "", "finish": "error", "pt": 0, "ct": 0,
                "error": f"bad_response: {str(body)[:300]}"}  # fmt: skip
    message = choices[0].get("message") or {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    usage = body.get("usage") or {}
    text = normalize_reasoning(message.get("content"), reasoning)
    return {
        "i": row["i"],
        "text": text,
        "finish": str(choices[0].get("finish_reason") or "stop"),
        "pt": int(usage.get("prompt_tokens") or 0),
        "ct": int(usage.get("completion_tokens") or 0),
        "error": "" if text.strip() else "empty_completion: the server answered no text",
    }


def _vllm_pre(row: dict[str, Any]) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return {"i": row["i"], "messages": messages, "sampling_params": _sampling(row)}


def _vllm_post(row: dict[str, Any]) -> dict[str, Any]:
    text = normalize_reasoning(row.get("generated_text"), None)
    return {
        "i": row["i"],
        "text": text,
        "finish": "stop",  # Ray's vLLM stage does not report the finish reason
        "pt": int(row.get("num_input_tokens") or 0),
        "ct": int(row.get("num_generated_tokens") or 0),
        "error": "" if text.strip() else "empty_completion: the engine produced no text",
    }


def _response(row: dict[str, Any]) -> GenerationResponse:
    error = row.get("error") or None
    return GenerationResponse(
        text=row["text"],
        finish_reason="error" if error else row["finish"],
        prompt_tokens=int(row["pt"]),
        completion_tokens=int(row["ct"]),
        error=error,
    )
