"""A small OpenAI-compatible server that fails on purpose, for testing HTTP teachers.

`FaultServer` serves `POST /v1/chat/completions` and `GET /v1/models` (plus `/health`) on
127.0.0.1 from a background thread (aiohttp), and answers at once with a short deterministic
completion (an echo of the last user turn, the seed and the choice index). A `FaultPlan` makes it
misbehave per request attempt:

    rate_limit       429 with `Retry-After: plan.retry_after_s`
    server_error     500            unavailable   503
    hang             no answer for `plan.hang_s` (past the client's timeout)
    reset            the TCP connection is reset (RST) before any answer
    malformed        200 with a truncated JSON body
    missing_choices  200 with a JSON body without `choices`
    empty            200 with an empty message content
    length           200 with `finish_reason: "length"`
    slow             the answer comes after `plan.slow_s`; a streamed one trickles its chunks

`plan.sequence` scripts the first attempts of every distinct request (a request is its body, so
a retry is the same request and a fan-out with another seed is not), e.g. `("rate_limit", "ok")`;
after that `plan.rates` draws faults with a hash of (seed, request, attempt), so a run is
reproducible whatever the order requests arrive in. `ignore_n` answers one choice whatever `n`
asks; `reasoning="field"|"inline"` adds a `reasoning_content` field or an inline `<think>` block.

Everything is counted: `hits` (one `Hit` per HTTP request, with its arrival time and the
completion tokens its answer reported), `counts` per fault, `max_in_flight`. Tests assert on those,
e.g. that a retried request reached the server three times but was answered once. `on_hit`, when
set, is called with each `Hit` as it arrives (on the server's thread), e.g. to kill a client
process at its N-th request.

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


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)  # fault -> probability per attempt
    sequence: tuple[str, ...] = ()  # faults for attempts 0, 1, ... of each request ("ok": none)
    seed: int = 0  # seeds the draws from `rates`
    retry_after_s: float | None = 1.0  # the Retry-After header on 429s (None: no header)
    hang_s: float = 30.0  # how long a `hang` waits before answering
    slow_s: float = 0.2  # delay of a `slow` answer (per chunk when streaming)
    ignore_n: bool = False  # answer one choice whatever `n` asks (as many servers do)
    reasoning: str = "none"  # none | field (reasoning_content) | inline (<think> in content)

    def __post_init__(self) -> None:
        unknown = (set(self.rates) | set(self.sequence)) - set(FAULTS) - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        if self.reasoning not in ("none", "field", "inline"):
            raise ValueError(f"reasoning must be none, field or inline, got {self.reasoning!r}")

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
    completion_tokens: int = 0  # what the answer's `usage` reported (0: no completion sent)


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
        fault = plan.fault(key, attempt)
        n = int(body.get("n") or 1)
        hit = Hit(key, attempt, fault, time.monotonic(), n, body.get("seed"))
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
        if fault == "rate_limit":
            headers = {} if plan.retry_after_s is None else {"Retry-After": str(plan.retry_after_s)}
            return _error(429, "rate limited", headers), 0
        if fault in ("server_error", "unavailable"):
            return _error(500 if fault == "server_error" else 503, fault), 0
        if fault == "hang":
            assert self._stopping is not None, "the server is running"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), plan.hang_s)
        if fault == "reset":
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500), 0
        if fault == "malformed":
            text = '{"id": "x", "choices": [{"mess'
            return web.Response(text=text, content_type="application/json"), 0
        if fault == "slow" and not body.get("stream"):
            await asyncio.sleep(plan.slow_s)
        payload = self._completion(body, fault, plan)
        if fault == "missing_choices":
            del payload["choices"]
            return web.json_response(payload), 0
        tokens = payload["usage"]["completion_tokens"]
        if body.get("stream"):
            delay = plan.slow_s if fault == "slow" else 0.0
            return await self._stream(request, payload, delay), tokens
        return web.json_response(payload), tokens

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
        self, request: web.Request, payload: dict[str, Any], delay_s: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for choice in payload.get("choices", []):
            for word in choice["message"]["content"].split(" "):
                chunk = {
                    "id": payload["id"],
                    "object": "chat.completion.chunk",
                    "model": payload["model"],
                    "choices": [{"index": choice["index"], "delta": {"content": word + " "}}],
                }
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if delay_s:
                    await asyncio.sleep(delay_s)
            end = {"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}
            chunk = {"id": payload["id"], "object": "chat.completion.chunk", "choices": [end]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "fault_injection", "code": status}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--rate", action="append", default=[], help="FAULT=P, e.g. rate_limit=0.1")
    parser.add_argument("--ignore-n", action="store_true")
    args = parser.parse_args()
    rates = {k: float(v) for k, v in (item.split("=", 1) for item in args.rate)}
    server = FaultServer(FaultPlan(rates=rates, ignore_n=args.ignore_n), port=args.port).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
