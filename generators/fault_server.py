"""A small OpenAI-compatible server that fails on purpose, for testing HTTP teachers.

`FaultServer` serves `POST /v1/chat/completions` and `GET /v1/models` (plus `/health`) on
127.0.0.1 from a background thread (aiohttp), and answers at once with a short deterministic
completion (an echo of the last user turn, the seed and the choice index), as one JSON body or,
when the request says `stream: true`, as SSE chunks: a role delta, then reasoning and content a
word at a time (the deltas join back to the plain body's text exactly), the choices of `n`
interleaved by `index`, the finish reason, a usage chunk when `stream_options.include_usage`
asks, and `data: [DONE]`. A `FaultPlan` makes it misbehave per request attempt:

    rate_limit       429 with `Retry-After: plan.retry_after_s`
    server_error     500            unavailable   503
    hang             no answer for `plan.hang_s` (past the client's timeout), then the answer
    reset            the TCP connection is reset (RST) before any answer
    malformed        200 with a truncated JSON body (streamed: a truncated chunk)
    missing_choices  200 with a JSON body without `choices` (streamed: chunks without them)
    empty            200 with an empty message content
    length           200 with `finish_reason: "length"`
    slow             the answer takes `plan.slow_s`; a streamed one spreads it over its chunks
    black_hole       the request is read and nothing is ever sent back, the connection held
    stall            streamed: `plan.stall_after` chunks, then nothing for `plan.stall_s`
                     (None: ever), then the rest; plain: the answer waits as long

`black_hole` and `stall` are in `TIMEOUT_FAULTS`, not `FAULTS`: only a client's own timeouts
end them. A held connection is dropped when the server stops, so `stop()` never waits on one.
`plan.streaming` plays servers that do not stream: `json` answers a plain body whatever
`stream` asks, `reject` answers 400 to any streamed request (the hit's fault reads
`stream_rejected`); `stream_usage=False` leaves out the usage chunk (as some servers do).

`plan.sequence` scripts the first attempts of every distinct request (a request is its body, so
a retry is the same request and a fan-out with another seed is not), e.g. `("rate_limit", "ok")`;
after that `plan.rates` draws faults with a hash of (seed, request, attempt), so a run is
reproducible whatever the order requests arrive in. `ignore_n` answers one choice whatever `n`
asks; `reasoning="field"|"inline"` adds a `reasoning_content` field or an inline `<think>` block.

Everything is counted: `hits` (one `Hit` per HTTP request, with its arrival time, whether it
asked to stream, and the completion tokens its answer reported), `counts` per fault,
`max_in_flight`. Tests assert on those, e.g. that a retried request reached the server three
times but was answered once. `on_hit`, when set, is called with each `Hit` as it arrives (on
the server's thread), e.g. to kill a client process at its N-th request.

    with FaultServer(FaultPlan(sequence=("rate_limit",))) as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url)

Run alone: `python -m generators.fault_server --port 8000 --rate rate_limit=0.1`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

FAULTS = (
    "rate_limit",
    "server_error",
    "unavailable",
    "hang",
    "reset",
    "malformed",
    "missing_choices",
    "empty",
    "length",
    "slow",
)
# Faults that only the client's own timeouts end (the server holds the connection until it
# stops), kept apart from FAULTS: a build that draws every fault in FAULTS must not wait on them.
TIMEOUT_FAULTS = ("black_hole", "stall")
STREAMING = ("sse", "json", "reject")


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)  # fault -> probability per attempt
    sequence: tuple[str, ...] = ()  # faults for attempts 0, 1, ... of each request ("ok": none)
    seed: int = 0  # seeds the draws from `rates`
    retry_after_s: float | None = 1.0  # the Retry-After header on 429s (None: no header)
    hang_s: float = 30.0  # how long a `hang` waits before answering
    slow_s: float = 0.2  # how long a `slow` answer takes (spread over its chunks when streamed)
    stall_s: float | None = None  # how long a `stall` holds still (None: until the server stops)
    stall_after: int = 2  # chunks a `stall` sends before it holds still
    ignore_n: bool = False  # answer one choice whatever `n` asks (as many servers do)
    reasoning: str = "none"  # none | field (reasoning_content) | inline (<think> in content)
    streaming: str = "sse"  # sse | json (answers JSON whatever `stream` asks) | reject (400)
    stream_usage: bool = True  # a usage chunk when `stream_options.include_usage` asks for one

    def __post_init__(self) -> None:
        known = (*FAULTS, *TIMEOUT_FAULTS)
        unknown = (set(self.rates) | set(self.sequence)) - set(known) - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(known)}")
        if self.reasoning not in ("none", "field", "inline"):
            raise ValueError(f"reasoning must be none, field or inline, got {self.reasoning!r}")
        if self.streaming not in STREAMING:
            raise ValueError(
                f"streaming must be one of {', '.join(STREAMING)}, got {self.streaming!r}"
            )

    def fault(self, key: str, attempt: int) -> str:
        if attempt < len(self.sequence):
            return self.sequence[attempt]
        for name in sorted(self.rates):
            digest = hashlib.sha256(f"{self.seed}|{key}|{attempt}|{name}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 < self.rates[name]:
                return name
        return "ok"


@dataclass(frozen=True)
class Hit:
    """One HTTP request as the server saw it."""

    key: str  # the request body's hash: equal for retries of one request
    attempt: int  # 0 for the first time this body arrived
    fault: str  # what the server did ("ok" or a fault name)
    at: float  # time.monotonic() on arrival
    n: int
    seed: int | None
    completion_tokens: int = 0  # what the answer's `usage` reported (0: none reported)
    stream: bool = False  # the request asked for a streamed answer


def completion_text(messages: list[dict[str, Any]], seed: int | None, choice: int) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    content = last.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    return f"echo: {text[:48]} [seed={seed} choice={choice}]"


class FaultServer:
    """The server; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self, plan: FaultPlan | None = None, model: str = "fault-model", port: int = 0
    ) -> None:
        self.plan = plan or FaultPlan()
        self.model = model
        self.port = port
        self.hits: list[Hit] = []
        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_hit: Callable[[Hit], None] | None = None
        self._attempts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start within 10 s")
        return self

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return

        async def shutdown() -> None:
            assert self._stopping is not None and self._runner is not None
            self._stopping.set()  # wakes hanging handlers
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._runner = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget counters and attempts (the plan stays)."""
        self.hits.clear()
        self.counts.clear()
        self._attempts.clear()
        self.max_in_flight = 0

    @property
    def requests(self) -> int:
        return len(self.hits)

    # ------------------------------------------------------------------ handlers

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        key = hashlib.sha256(raw).hexdigest()[:16]
        attempt = self._attempts[key]
        self._attempts[key] += 1
        body = json.loads(raw)
        plan = self.plan
        stream = bool(body.get("stream"))
        fault = plan.fault(key, attempt)
        if stream and plan.streaming == "reject":
            fault = "stream_rejected"
        n = int(body.get("n") or 1)
        hit = Hit(key, attempt, fault, time.monotonic(), n, body.get("seed"), stream=stream)
        index = len(self.hits)
        self.hits.append(hit)
        self.counts[fault] += 1
        if self.on_hit is not None:
            self.on_hit(hit)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response, tokens = await self._answer(request, body, fault, plan)
            # `reset()` may have emptied `hits` while this answer was hanging
            if tokens and index < len(self.hits) and self.hits[index] is hit:
                self.hits[index] = replace(hit, completion_tokens=tokens)
            return response
        finally:
            self.in_flight -= 1

    async def _answer(
        self, request: web.Request, body: dict[str, Any], fault: str, plan: FaultPlan
    ) -> tuple[web.StreamResponse, int]:
        """The response, and the completion tokens it reports (0 when it carries none)."""
        if fault == "stream_rejected":
            return _error(400, "stream is not supported: send stream=false"), 0
        if fault == "rate_limit":
            headers = {} if plan.retry_after_s is None else {"Retry-After": str(plan.retry_after_s)}
            return _error(429, "rate limited", headers), 0
        if fault in ("server_error", "unavailable"):
            return _error(500 if fault == "server_error" else 503, fault), 0
        if fault == "black_hole":  # nothing, ever; when the server stops, the connection drops
            await self._held(None)
            _abort(request)
            return web.Response(status=500), 0
        if fault == "hang":
            await self._held(plan.hang_s)
        if fault == "reset":
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _abort(request)
            return web.Response(status=500), 0
        if body.get("stream") and plan.streaming == "sse":
            return await self._stream(request, body, fault, plan)
        if fault == "stall" and not await self._held(plan.stall_s):
            _abort(request)  # a plain answer has no chunks to stall between: it waits whole
            return web.Response(status=500), 0
        if fault == "malformed":
            text = '{"id": "x", "choices": [{"mess'
            return web.Response(text=text, content_type="application/json"), 0
        if fault == "slow":
            await asyncio.sleep(plan.slow_s)
        payload = self._completion(body, fault, plan)
        if fault == "missing_choices":
            del payload["choices"]
            return web.json_response(payload), 0
        return web.json_response(payload), payload["usage"]["completion_tokens"]

    def _completion(self, body: dict[str, Any], fault: str, plan: FaultPlan) -> dict[str, Any]:
        messages = body.get("messages") or []
        n = 1 if plan.ignore_n else int(body.get("n") or 1)
        seed = body.get("seed")
        choices = []
        completion_tokens = 0
        for i in range(n):
            text = "" if fault == "empty" else completion_text(messages, seed, i)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if text and plan.reasoning == "field":
                message["reasoning_content"] = f"thinking about choice {i}"
            elif text and plan.reasoning == "inline":
                message["content"] = f"<think>thinking about choice {i}</think>{text}"
            finish = "length" if fault == "length" else "stop"
            choices.append({"index": i, "message": message, "finish_reason": finish})
            completion_tokens += len(message["content"].split())
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return {
            "id": f"chatcmpl-{seed}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", self.model),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], fault: str, plan: FaultPlan
    ) -> tuple[web.StreamResponse, int]:
        """An SSE answer: chunks of all choices interleaved, as vLLM sends them."""
        payload = self._completion(body, fault, plan)
        head = {"id": payload["id"], "object": "chat.completion.chunk", "model": payload["model"]}
        events = [_sse({**head, "choices": [c]}) for c in _deltas(payload["choices"])]
        tokens = 0
        usage_asked = (body.get("stream_options") or {}).get("include_usage")
        if fault == "missing_choices":
            events = [_sse(head)] * 3
        elif fault == "malformed":
            events = [*events[:2], b'data: {"id": "x", "choices": [{"delt\n\n']
        elif usage_asked and plan.stream_usage:
            events.append(_sse({**head, "choices": [], "usage": payload["usage"]}))
            tokens = payload["usage"]["completion_tokens"]
        events.append(b"data: [DONE]\n\n")
        if fault not in ("stall", "slow"):  # all at once, one write: the server costs little
            return web.Response(body=b"".join(events), content_type="text/event-stream"), tokens
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if fault == "stall":
            for event in events[: plan.stall_after]:
                await response.write(event)
            if not await self._held(plan.stall_s):  # the server stops: drop the connection
                _abort(request)
                return response, 0
            events = events[plan.stall_after :]
        delay = plan.slow_s / len(events) if fault == "slow" else 0.0  # slow: slow_s in all
        for event in events:
            if delay:
                await asyncio.sleep(delay)
            await response.write(event)
        await response.write_eof()
        return response, tokens

    async def _held(self, seconds: float | None) -> bool:
        """Waits `seconds` (None: until the server stops); False when the server stops first."""
        assert self._stopping is not None, "the server is running"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


def _deltas(choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stream choices of one completion: a role delta, reasoning and content a word at a time,
    then the finish reason; the choices' chunks interleaved. The deltas join back exactly."""
    per_choice = []
    for choice in choices:
        i, message = choice["index"], choice["message"]
        steps = [{"index": i, "delta": {"role": "assistant", "content": ""}}]
        for name in ("reasoning_content", "content"):
            steps += [{"index": i, "delta": {name: w}} for w in _words(message.get(name) or "")]
        steps.append({"index": i, "delta": {}, "finish_reason": choice["finish_reason"]})
        per_choice.append(steps)
    longest = max((len(steps) for steps in per_choice), default=0)
    return [steps[k] for k in range(longest) for steps in per_choice if k < len(steps)]


def _words(text: str) -> list[str]:
    pieces = text.split(" ")
    return [w for w in (*(p + " " for p in pieces[:-1]), pieces[-1]) if w]


def _sse(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "fault_injection", "code": status}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--rate", action="append", default=[], help="FAULT=P, e.g. rate_limit=0.1")
    parser.add_argument("--ignore-n", action="store_true")
    parser.add_argument("--streaming", choices=STREAMING, default="sse", help="json: never streams")
    args = parser.parse_args()
    rates = {k: float(v) for k, v in (item.split("=", 1) for item in args.rate)}
    plan = FaultPlan(rates=rates, ignore_n=args.ignore_n, streaming=args.streaming)
    server = FaultServer(plan, port=args.port).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
