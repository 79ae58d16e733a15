"""The `openai` backend: any OpenAI-compatible chat server (vLLM, SGLang, NIM, OpenAI, ...).

Recipe: `{backend: openai, model: deepseek-ai/DeepSeek-R1, base_url: http://127.0.0.1:8000/v1,
api_key_env: OPENAI_API_KEY, max_concurrency: 64}`; every field of `OpenAIOptions` is a key.

Design choices:
- Our retries are the only ones (the client's own are off), so every retry is counted in
  `backend.stats`. 429, 408, 409, 5xx, timeouts, dropped connections, malformed bodies and
  bodies without `choices` are retried with exponential backoff and jitter, honouring
  `Retry-After`; other 4xx fail at once. After the last try the request gets a
  `GenerationResponse(error=...)`, which the runner turns into a row of the `failed` split.
- The key is never held by this object: `api_key_env` names an environment variable, checked at
  construction and read by the client at request time.
- Requests that differ only in `sample_index` are sent as one call with `n=k` (sorted by
  sample index, `seed = request.seed + first sample index`): choice j answers the j-th sample.
  A server that returns fewer choices than asked (it ignores `n`) gets the rest as one call
  each with `seed = request.seed + sample_index`, and later calls stop asking for `n`. A
  sample's text therefore depends on which samples were asked for together; the request cache
  (keyed per sample) fixes it once answered, so reruns are identical.
- With `n > 1` the server bills the prompt once: its tokens go on the first choice's response
  and the completion tokens are split over the choices by text length.
- Reasoning is normalised: a `reasoning_content` (or `reasoning`) field, or an inline `<think>`
  block, becomes `<think>...</think>` at the start of the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Any

import aiohttp
import openai

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse
from generators.ratelimit import Backoff, TokenBucket, parse_retry_after

RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx


@dataclass
class OpenAIOptions:
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1; None: api.openai.com
    api_key_env: str | None = None  # NAME of the env var holding the key; None: no key (local)
    max_concurrency: int = 64  # requests in flight at once
    requests_per_minute: float | None = None  # token-bucket limit on calls (retries count)
    tokens_per_minute: float | None = None  # limit on prompt + max_tokens, settled on usage
    timeout_s: float = 600.0  # per HTTP request; a long reasoning trace takes minutes
    max_retries: int = 6  # retries after the first try
    backoff_base_s: float = 1.0  # first backoff ceiling; doubles per retry
    backoff_max_s: float = 60.0  # backoff ceiling
    group_samples: bool = True  # ask for the samples of one prompt in one call with n=k
    max_n: int = 16  # most samples in one call
    batch_size: int = 0  # requests per cache commit; 0: 4 * max_concurrency
    prices: dict[str, float] | None = None  # USD per 1M tokens: {prompt: .., completion: ..}
    extra_body: dict[str, Any] | None = None  # server-specific fields, e.g. {top_k: 20}
    retry_seed: int = 0  # seeds the backoff jitter
    # HTTP transport: "aiohttp" (openai's DefaultAioHttpClient) or "httpx" (the SDK default).
    # httpx's connection pool scans every connection per request; at 512 in flight aiohttp sent
    # 2.5x the requests/s with a third of the client CPU (benchmarks/generation_throughput.py).
    http_client: str = "aiohttp"

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_n", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.http_client not in ("aiohttp", "httpx"):
            raise ValueError(f"http_client must be aiohttp or httpx, got {self.http_client!r}")
        if self.prices is not None and set(self.prices) != {"prompt", "completion"}:
            raise ValueError(
                "prices must be {prompt: USD per 1M tokens, completion: USD per 1M tokens}, "
                f"got keys {sorted(self.prices)}"
            )

    @classmethod
    def parse(cls, owner: str, options: dict[str, Any]) -> OpenAIOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"{owner}: unknown options {unknown}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)


@dataclass
class BackendStats:
    calls: int = 0  # HTTP requests sent (tries)
    retries: int = 0  # tries after a first one
    failures: int = 0  # requests answered with an error after their last try
    fanout_calls: int = 0  # extra calls for choices a server did not return
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: Counter[str] = field(default_factory=Counter)
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Counter) else value


class _Retryable(Exception):
    def __init__(self, reason: str, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.retry_after = reason, detail, retry_after


class _Fatal(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@register_backend("openai")
class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.served_model = model  # the name requests carry (a local server may want a path)
        self.options = OpenAIOptions.parse(f"{self.name} backend", options)
        opts = self.options
        if opts.api_key_env is not None and not os.environ.get(opts.api_key_env):
            raise ValueError(
                f"environment variable {opts.api_key_env} is not set: export it with the API "
                "key (api_key_env names the variable; the key never goes in a recipe)"
            )
        self.batch_size = opts.batch_size or 4 * opts.max_concurrency
        self.stats = BackendStats()
        self.backoff = Backoff(opts.backoff_base_s, opts.backoff_max_s)
        self.request_bucket = (
            TokenBucket(opts.requests_per_minute) if opts.requests_per_minute else None
        )
        self.token_bucket = TokenBucket(opts.tokens_per_minute) if opts.tokens_per_minute else None
        self.sleep = asyncio.sleep  # tests may swap it
        self._rng = random.Random(opts.retry_seed)
        self._n_supported = opts.group_samples
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._users = 0  # generate calls in flight

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.options.base_url!r}, "
            f"api_key_env={self.options.api_key_env!r})"
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for this usage at `prices`, or None when no prices are set."""
        prices = self.options.prices
        if prices is None:
            return None
        return (prompt_tokens * prices["prompt"] + completion_tokens * prices["completion"]) / 1e6

    # ------------------------------------------------------------------ generate

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        out: list[GenerationResponse | None] = [None] * len(requests)
        groups = self._groups(requests)
        async with self._connected():
            answered = await asyncio.gather(*(self._generate_group(g) for g in groups))
        for group, responses in zip(groups, answered, strict=True):
            for (i, _), response in zip(group, responses, strict=True):
                out[i] = response
        assert all(r is not None for r in out), "every request gets a response"
        return out  # type: ignore[return-value]

    def _groups(
        self, requests: list[GenerationRequest]
    ) -> list[list[tuple[int, GenerationRequest]]]:
        """Requests equal but for `sample_index`, sorted by it, at most `max_n` per group."""
        if not self._n_supported:
            return [[(i, r)] for i, r in enumerate(requests)]
        by_prompt: dict[tuple, list[tuple[int, GenerationRequest]]] = {}
        for i, r in enumerate(requests):
            by_prompt.setdefault((r.messages, r.sampling, r.seed), []).append((i, r))
        groups = []
        for members in by_prompt.values():
            members.sort(key=lambda item: item[1].sample_index)
            step = self.options.max_n
            groups += [members[k : k + step] for k in range(0, len(members), step)]
        return groups

    async def _generate_group(
        self, group: list[tuple[int, GenerationRequest]]
    ) -> list[GenerationResponse]:
        first = group[0][1]
        answers = await self._call(first, n=len(group))
        if isinstance(answers, GenerationResponse):  # failed after its retries
            return [answers] * len(group)
        if len(answers) < len(group):
            self._n_supported = False  # the server ignores n: stop asking for it
            missing = [r for _, r in group[len(answers) :]]
            self.stats.fanout_calls += len(missing)
            more = await asyncio.gather(*(self._call(r, n=1) for r in missing))
            answers += [m if isinstance(m, GenerationResponse) else m[0] for m in more]
        return answers[: len(group)]

    async def _call(
        self, request: GenerationRequest, n: int
    ) -> list[GenerationResponse] | GenerationResponse:
        """One logical call with retries: up to `n` answers, or one error response."""
        opts = self.options
        attempt = 0
        while True:
            try:
                return await self._try(request, n)
            except _Fatal as exc:
                return self._failure(exc.reason, f"{exc.detail} (not retried)")
            except _Retryable as exc:
                if attempt >= opts.max_retries:
                    tries = attempt + 1
                    return self._failure(exc.reason, f"{exc.detail} after {tries} tries")
                self.stats.retries += 1
                self.stats.retry_reasons[exc.reason] += 1
                await self.sleep(self.backoff.delay(attempt, self._rng, exc.retry_after))
                attempt += 1

    def _failure(self, reason: str, detail: str) -> GenerationResponse:
        self.stats.failures += 1
        self.stats.failure_reasons[reason] += 1
        return GenerationResponse("", finish_reason="error", error=f"{reason}: {detail}"[:500])

    async def _try(self, request: GenerationRequest, n: int) -> list[GenerationResponse]:
        estimate = _estimate_tokens(request, n)
        if self.request_bucket is not None:
            await self.request_bucket.acquire(1)
        if self.token_bucket is not None:
            await self.token_bucket.acquire(estimate)
        assert self._semaphore is not None and self._client is not None, "bound to a loop"
        async with self._semaphore:
            self.stats.calls += 1
            body = await self._post(request, n)
        answers, used = _parse(body, n)
        if self.token_bucket is not None:
            self.token_bucket.refund(estimate - used)
        for a in answers:
            if a.error is not None:
                self.stats.failures += 1
                self.stats.failure_reasons["empty_completion"] += 1
            self.stats.prompt_tokens += a.prompt_tokens
            self.stats.completion_tokens += a.completion_tokens
        return answers

    async def _post(self, request: GenerationRequest, n: int) -> bytes:
        sampling = request.sampling
        kwargs: dict[str, Any] = {
            "model": self.served_model,
            "messages": request.message_dicts(),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": request.seed + request.sample_index,
        }
        if n > 1:
            kwargs["n"] = n
        extra = self._extra_body(request)
        if extra:
            kwargs["extra_body"] = extra
        try:
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)  # type: ignore[union-attr]
            return raw.http_response.content
        except openai.APITimeoutError as exc:
            dropped = _dropped_connection(exc)
            if dropped is not None:
                raise _Retryable("connection", f"connection failed: {dropped}") from None
            raise _Retryable("timeout", f"no answer within {self.options.timeout_s} s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", f"connection failed: {exc.__cause__ or exc}") from None
        except openai.APIStatusError as exc:
            status, detail = exc.status_code, f"HTTP {exc.status_code}: {exc.message}"[:300]
            if status in RETRY_STATUS or status >= 500:
                after = parse_retry_after(exc.response.headers)
                raise _Retryable(f"http_{status}", detail, after) from None
            raise _Fatal(f"http_{status}", detail) from None

    def _extra_body(self, request: GenerationRequest) -> dict[str, Any] | None:
        """Server-specific body fields for one request (subclasses add per-request ones)."""
        return self.options.extra_body

    # ------------------------------------------------------------------ client lifecycle

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[None]:
        """A client while any `generate` call runs, closed after the last one.

        Connections belong to an event loop, and the engine may run several loops over a
        backend's life (one per build), so the client lives only as long as calls need it;
        the semaphore is per loop and bounds all concurrent `generate` calls together.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._semaphore = asyncio.Semaphore(self.options.max_concurrency)
        if self._client is None:
            transport = {}
            if self.options.http_client == "aiohttp":
                transport["http_client"] = openai.DefaultAioHttpClient(
                    timeout=self.options.timeout_s
                )
            self._client = openai.AsyncOpenAI(
                # no key to protect: a constant saves the per-request key lookup
                api_key=self._api_key if self.options.api_key_env else "no-key",
                base_url=self.options.base_url,
                timeout=self.options.timeout_s,
                max_retries=0,  # ours are the only retries, so each one is counted
                **transport,
            )
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                client, self._client = self._client, None
                await client.close()

    async def _api_key(self) -> str:
        env = self.options.api_key_env
        return os.environ.get(env, "") if env else "no-key"

    def close(self) -> None:
        """Nothing to release: the client is closed when the last `generate` call ends."""


def _dropped_connection(exc: BaseException) -> BaseException | None:
    """The aiohttp connection error behind a "timeout", if that is what it was.

    The aiohttp transport reports every `aiohttp.ClientConnectionError` (a reset, a server that
    closed the connection) as a connect timeout; the original error is still in the chain.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectionError) and not isinstance(
            seen, asyncio.TimeoutError
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _estimate_tokens(request: GenerationRequest, n: int) -> int:
    """Tokens a call may use, as providers count them: prompt (~4 chars/token) + n * max_tokens."""
    chars = sum(len(content) for _, content in request.messages)
    return chars // 4 + 1 + n * request.sampling.max_tokens


def _parse(body: bytes, n: int) -> tuple[list[GenerationResponse], int]:
    """Choices of a 200 body as responses, and the total tokens it reports."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _Retryable("malformed_json", f"unreadable JSON body: {body[:80]!r}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _Retryable("missing_choices", f"no choices in the answer: {str(data)[:80]}")
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)[:n]
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_total = int(usage.get("completion_tokens") or 0)
    texts, reasons = [], []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise _Retryable("missing_choices", f"a choice without a message: {str(choice)[:80]}")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        texts.append(normalize_reasoning(message.get("content"), reasoning))
        reasons.append(str(choice.get("finish_reason") or "stop"))
    total_chars = sum(len(t) for t in texts) or 1
    answers = []
    chars_before = given = 0
    for j, (text, reason) in enumerate(zip(texts, reasons, strict=True)):
        # Rounded cumulatively, so the shares add up to the reported total exactly (rounding
        # each share alone can count a token twice or lose one).
        chars_before += len(text)
        share = round(completion_total * chars_before / total_chars) - given
        given += share
        answer = GenerationResponse(
            text=text,
            finish_reason=reason,
            prompt_tokens=prompt_tokens if j == 0 else 0,
            completion_tokens=share,
        )
        if not text.strip():
            answer.finish_reason = "error"
            answer.error = f"empty_completion: the server answered no text (finish_reason={reason})"
        answers.append(answer)
    return answers, prompt_tokens + completion_total


def normalize_reasoning(content: str | None, reasoning: str | None) -> str:
    """`<think>reasoning</think>` first, whether the server sent it in a field or inline.

    >>> normalize_reasoning("It is 4.", "2+2")
    '<think>\\n2+2\\n</think>\\n\\nIt is 4.'
    >>> normalize_reasoning("2+2</think>It is 4.", None)  # the template opened the tag
    '<think>2+2</think>It is 4.'
    """
    text = content or ""
    if reasoning:
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{text.lstrip()}"
    stripped = text.lstrip()
    if stripped.startswith("<think>"):
        return stripped
    if "</think>" in text and "<think>" not in text:
        return "<think>" + text
    return text
