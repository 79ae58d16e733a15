"""The `openai` backend: any OpenAI-compatible chat server (vLLM, SGLang, NIM, OpenAI, ...).

Recipe: `{backend: openai, model: deepseek-ai/DeepSeek-R1, base_url: http://127.0.0.1:8000/v1,
api_key_env: OPENAI_API_KEY, max_concurrency: 64}`; every field of `OpenAIOptions` is a key.

Design choices:
- Our retries are the only ones (the client's own are off), so every retry is counted in
  `backend.stats`. 429, 408, 409, 5xx, timeouts, dropped connections, malformed bodies and
  bodies without `choices` are retried with exponential backoff and jitter, honouring
  `Retry-After`; other 4xx fail at once. After the last try the request gets a
  `GenerationResponse(error=...)`, which the runner turns into a row of the `failed` split.
- Calls stream (`stream: true`, `stream_options: {include_usage: true}`), so a call that is
  stuck is told from one that is slow: nothing read within `first_byte_timeout_s` (a server
  that took the request and went silent) or nothing read for `idle_timeout_s` since the last
  read (a stall mid-answer) aborts the try, counted as `first_byte_timeout` / `idle_timeout`,
  and retries it. Any byte counts (an SSE keep-alive comment too), so a trace that keeps
  coming is cut only by `timeout_s`, the total per try, streamed or not (`timeout`). The
  limits are one timer per call (`ratelimit.CallTimeout`), not one per chunk.
- The stream is parsed here (`StreamParser`), not by the SDK's per-chunk pydantic models:
  deltas are joined per choice `index` (so `n` works as without streaming) into the same
  content and reasoning fields a plain body has, and go through the same code, so a streamed
  answer's text, finish reason and token shares equal the plain answer's. Usage comes from the
  stream's usage chunk; a server that reports none gets 0 tokens (no guess), counted in
  `stats.usage_missing`, and the token bucket keeps the estimate it charged.
- Servers that do not stream: a plain JSON answer to a streamed call is used as it is, and a
  4xx to a streamed call (e.g. "stream_options not supported") is sent again at once without
  streaming (`stats.stream_fallbacks`); either way later calls are plain. A 4xx both ways is
  the request's fault: it fails, and streaming stays on. A server that ignores `stream` and
  takes longer than `first_byte_timeout_s` for every answer cannot be told from a black hole:
  give it `stream: false`. Plain calls have only the total limit: their first byte is the end.
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
import httpx2 as httpx  # the openai SDK's HTTP layer: errors raised while reading a stream
import openai

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse
from generators.ratelimit import (
    Backoff,
    CallTimedOut,
    CallTimeout,
    TokenBucket,
    parse_retry_after,
)

RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx
_decode_json = json.JSONDecoder().raw_decode


@dataclass
class OpenAIOptions:
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1; None: api.openai.com
    api_key_env: str | None = None  # NAME of the env var holding the key; None: no key (local)
    max_concurrency: int = 64  # requests in flight at once
    requests_per_minute: float | None = None  # token-bucket limit on calls (retries count)
    tokens_per_minute: float | None = None  # limit on prompt + max_tokens, settled on usage
    timeout_s: float = 600.0  # total per HTTP call; a long reasoning trace takes minutes
    stream: bool = True  # stream answers (SSE); falls back on its own for servers that do not
    first_byte_timeout_s: float | None = 60.0  # streamed: nothing read yet after this: abort
    idle_timeout_s: float | None = 30.0  # streamed: nothing read for this long: abort
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
        for name in ("first_byte_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or null (no limit), got {value}")
        if not isinstance(self.stream, bool):
            raise ValueError(f"stream must be true or false, got {self.stream!r}")
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
    stream_fallbacks: int = 0  # streamed calls refused (4xx) and sent again without streaming
    usage_missing: int = 0  # answered calls whose server reported no usage (counted as 0)
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
        self._stream = opts.stream  # off for good once a server shows it does not stream
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
            answers, usage = await self._send(request, n)
        if usage is None:
            self.stats.usage_missing += 1
        elif self.token_bucket is not None:
            self.token_bucket.refund(estimate - usage)  # no usage: the estimate stays charged
        for a in answers:
            if a.error is not None:
                self.stats.failures += 1
                self.stats.failure_reasons["empty_completion"] += 1
            self.stats.prompt_tokens += a.prompt_tokens
            self.stats.completion_tokens += a.completion_tokens
        return answers

    async def _send(
        self, request: GenerationRequest, n: int
    ) -> tuple[list[GenerationResponse], int | None]:
        """One try: streamed while the server streams, else (or once refused) a plain call."""
        refused: _Fatal | None = None
        if self._stream:
            self.stats.calls += 1
            try:
                return await self._post(request, n, stream=True)
            except _Fatal as exc:  # e.g. 400 "stream_options not supported": try it plainly
                refused = exc
                self.stats.stream_fallbacks += 1
        self.stats.calls += 1
        try:
            answer = await self._post(request, n, stream=False)
        except _Fatal as exc:
            if refused is not None and exc.reason != refused.reason:
                self._stream = False  # refused only when streamed (the same refusal: the request)
            raise
        if refused is not None:
            self._stream = False  # the plain call went through: stop streaming to this server
        return answer

    async def _post(
        self, request: GenerationRequest, n: int, stream: bool
    ) -> tuple[list[GenerationResponse], int | None]:
        """One HTTP call: the answers and the total tokens the server reported (None: none)."""
        opts = self.options
        body = self._body(request, n)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            limits = CallTimeout(opts.timeout_s, opts.first_byte_timeout_s, opts.idle_timeout_s)
        else:
            limits = CallTimeout(opts.timeout_s)
        try:
            async with limits:
                # The SDK's documented `post` for raw calls: its auth, base URL and errors, but
                # not `chat.completions.create`, whose walk of ~40 typed parameters per call
                # was 40% of the client's CPU (benchmarks/generation_throughput.py)
                http = await self._client.post(  # type: ignore[union-attr]
                    "/chat/completions", cast_to=httpx.Response, body=body, stream=stream
                )
                if not stream:
                    return _parse(http.content, n)
                return await self._read_stream(http, n, limits)
        except CallTimedOut as exc:
            raise _Retryable(exc.reason, f"no answer: {exc}") from None
        except (openai.APITimeoutError, httpx.TimeoutException) as exc:
            dropped = _dropped_connection(exc)
            if dropped is not None:
                raise _Retryable("connection", f"connection failed: {dropped}") from None
            raise _Retryable("timeout", f"no answer within {opts.timeout_s} s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", f"connection failed: {exc.__cause__ or exc}") from None
        except (httpx.RequestError, aiohttp.ClientError) as exc:  # reading a stream: not mapped
            raise _Retryable("connection", f"stream broken: {exc.__cause__ or exc}") from None
        except openai.APIStatusError as exc:
            status, detail = exc.status_code, f"HTTP {exc.status_code}: {exc.message}"[:300]
            if status in RETRY_STATUS or status >= 500:
                after = parse_retry_after(exc.response.headers)
                raise _Retryable(f"http_{status}", detail, after) from None
            raise _Fatal(f"http_{status}", detail) from None

    async def _read_stream(
        self, http: httpx.Response, n: int, limits: CallTimeout
    ) -> tuple[list[GenerationResponse], int | None]:
        """The answers of a streamed call, read as they come (or whole, if it came as JSON)."""
        try:
            if not http.headers.get("content-type", "").startswith("text/event-stream"):
                limits.relax()  # a whole JSON body: the server does not stream
                answer = _parse(await http.aread(), n)
                self._stream = False  # it answered plainly: later calls do not ask to stream
                return answer
            parser = StreamParser()
            async for data in http.aiter_bytes():
                limits.progress()
                parser.feed(data)
            return parser.answers(n)
        finally:
            await http.aclose()

    def _body(self, request: GenerationRequest, n: int) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": request.message_dicts(),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": request.seed + request.sample_index,
        }
        if n > 1:
            body["n"] = n
        body.update(self._extra_body(request) or {})  # as the SDK merges `extra_body`
        return body

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


def _parse(body: bytes, n: int) -> tuple[list[GenerationResponse], int | None]:
    """Choices of a 200 JSON body as responses, and the total tokens it reports."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _Retryable("malformed_json", f"unreadable JSON body: {body[:80]!r}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _Retryable("missing_choices", f"no choices in the answer: {str(data)[:80]}")
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)[:n]
    texts, reasons = [], []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise _Retryable("missing_choices", f"a choice without a message: {str(choice)[:80]}")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        texts.append(normalize_reasoning(message.get("content"), reasoning))
        reasons.append(str(choice.get("finish_reason") or "stop"))
    return _responses(texts, reasons, data.get("usage"))


class StreamParser:
    """Chat-completion chunks of an SSE body, fed as the bytes come, joined per choice `index`.

    One JSON object per `data:` line, as OpenAI-compatible servers send; comments (`: ping`),
    `event:`/`id:` lines and `data: [DONE]` carry nothing used here. The deltas of a choice are
    joined into the same `content` and `reasoning_content` (or `reasoning`) the server would
    have answered in one body, so `normalize_reasoning` gives the same text as without
    streaming. Usage comes from whichever chunk carries it (the final one, with
    `stream_options.include_usage`).
    """

    __slots__ = ("_tail", "_content", "_reasoning", "_finish", "_usage", "_chunks")

    def __init__(self) -> None:
        self._tail = b""  # an incomplete last line
        self._content: dict[int, list[str]] = {}
        self._reasoning: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._usage: dict[str, Any] | None = None
        self._chunks = 0

    def feed(self, data: bytes) -> None:
        if b"\n" not in data:
            self._tail += data
            return
        lines, _, self._tail = (self._tail + data).rpartition(b"\n")
        try:
            text = lines.decode()  # whole lines only: a character is never cut in two
        except UnicodeDecodeError:
            raise _Retryable(
                "malformed_json", f"a stream that is not UTF-8: {lines[:80]!r}"
            ) from None
        for line in text.split("\n"):
            if line.startswith("data:"):
                start = 6 if line.startswith(" ", 5) else 5
                if not line.startswith("[DONE]", start):
                    self._chunk(line, start)

    def _chunk(self, line: str, start: int) -> None:
        try:
            # raw_decode, not json.loads: no bytes to sniff, no regex for the surrounding blanks
            # (a third of the cost of a small chunk)
            chunk, _ = _decode_json(line, start)
        except ValueError:
            raise _Retryable("malformed_json", f"unreadable stream chunk: {line[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise _Retryable(
                "malformed_json", f"a stream chunk that is not an object: {line[:80]!r}"
            )
        if "error" in chunk or chunk.get("object") == "error":  # vLLM, transformers serve
            raise _Retryable("stream_error", f"the server broke off: {str(chunk)[:200]}")
        self._chunks += 1
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        try:
            for choice in chunk.get("choices") or ():
                i = choice.get("index", 0)
                delta = choice.get("delta") or {}
                if text := delta.get("content"):
                    self._content.setdefault(i, []).append(text)
                if text := delta.get("reasoning_content") or delta.get("reasoning"):
                    self._reasoning.setdefault(i, []).append(text)
                if reason := choice.get("finish_reason"):
                    self._finish[i] = reason
        except (AttributeError, TypeError):  # a choice or delta that is not an object
            raise _Retryable(
                "malformed_json", f"a stream chunk of the wrong shape: {line[:80]!r}"
            ) from None

    def answers(self, n: int) -> tuple[list[GenerationResponse], int | None]:
        """The first `n` choices once the stream has ended, as `_parse` gives them."""
        if self._tail.strip():
            self.feed(b"\n")  # a last line without its newline
        indices = sorted(self._content.keys() | self._reasoning.keys() | self._finish.keys())
        if not indices:
            raise _Retryable("missing_choices", f"no choices in {self._chunks} stream chunks")
        unfinished = [i for i in indices[:n] if i not in self._finish]
        if unfinished:  # the body ended cleanly but early (a proxy or server gave up)
            raise _Retryable("truncated_stream", f"choices {unfinished} never finished")
        texts = [
            normalize_reasoning(
                "".join(self._content.get(i, ())), "".join(self._reasoning.get(i, ())) or None
            )
            for i in indices[:n]
        ]
        return _responses(texts, [self._finish[i] for i in indices[:n]], self._usage)


def _responses(
    texts: list[str], reasons: list[str], usage: dict[str, Any] | None
) -> tuple[list[GenerationResponse], int | None]:
    """One response per choice, the reported tokens shared out; and the total (None: no usage).

    The prompt was billed once, so its tokens go on the first choice; the completion tokens
    are split by text length. A server that reports no usage gets 0 for both, not a guess.
    """
    usage = usage if isinstance(usage, dict) else {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_total = int(usage.get("completion_tokens") or 0)
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
    return answers, (prompt_tokens + completion_total if usage else None)


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
