r"""A loopback OpenAI-compatible server with a fixed capacity and seeded service times.

Models an inference server that can work on at most `capacity` calls at once (further calls
wait in its queue) and takes a lognormal time per call (`median * exp(sigma * Z)`, drawn in
the order calls get a slot, from a `random.Random(seed)` reset by `POST /bench/reset`), so two
clients that send the same number of calls get the same service times. Each call's service
interval (slot taken -> response written) is logged; `GET /bench/log` returns them with the
request bodies, so a baseline client can replay exactly the calls a build made.

`POST /v1/chat/completions` answers `n` choices (default 1), each a short answer with a
`\boxed{N}` (inside a `<think>` block when the system prompt says "detailed thinking on"), as
one JSON body or, with `stream: true`, as SSE chunks (role, content words, finish_reason per
choice; a final usage chunk when `stream_options.include_usage` is set; `data: [DONE]`). When
streaming, a fifth of the service time passes before the first chunk and the rest is spread
over the content chunks.

    python benchmarks/_capacity_server.py --capacity 64 --median 0.2 --sigma 1.0 --seed 0

prints its base URL (`http://127.0.0.1:PORT/v1`) on the first line of stdout and serves until
killed. Used by `teacher_utilization.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import time
from typing import Any

from aiohttp import web

ON_PROMPT = "detailed thinking on"


class CapacityServer:
    def __init__(self, capacity: int, median: float, sigma: float, seed: int) -> None:
        if capacity < 1 or median <= 0 or sigma < 0:
            raise ValueError("capacity >= 1, median > 0 and sigma >= 0 are required")
        self.capacity, self.median, self.sigma, self.seed = capacity, median, sigma, seed
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.slots = asyncio.Semaphore(self.capacity)
        self.calls: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0

    def service_time(self) -> float:
        return self.median * math.exp(self.sigma * self.rng.gauss(0.0, 1.0))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        async with self.slots:
            start = time.monotonic()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                seconds = self.service_time()
                payload = completion(body)
                if body.get("stream"):
                    response = await stream(request, payload, body, seconds)
                else:
                    await asyncio.sleep(seconds)
                    response = web.json_response(payload)
                    await response.prepare(request)
                    await response.write_eof()
            finally:
                self.in_flight -= 1
            self.calls.append(
                {"start": start, "end": time.monotonic(), "service": seconds, "body": body}
            )
        return response

    async def log(self, _: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls, "max_in_flight": self.max_in_flight})

    async def reset_handler(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "bench-model", "object": "model"}]}
        )


def completion(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    on = any(m.get("role") == "system" and ON_PROMPT in str(m.get("content")) for m in messages)
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    choices = []
    for i in range(int(body.get("n") or 1)):
        answer = f"The answer is \\boxed{{{(digest[0] + i + (body.get('seed') or 0)) % 100}}}."
        text = f"<think>\nWork it out step by step.\n</think>\n\n{answer}" if on else answer
        message = {"role": "assistant", "content": text}
        choices.append({"index": i, "message": message, "finish_reason": "stop"})
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = sum(len(c["message"]["content"].split()) for c in choices)
    return {
        "id": f"chatcmpl-{digest.hex()[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "bench-model"),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def stream(
    request: web.Request, payload: dict[str, Any], body: dict[str, Any], seconds: float
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    head = {"id": payload["id"], "object": "chat.completion.chunk", "created": 0}
    head["model"] = payload["model"]

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {**head, "choices": choices, **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    words = [
        (c["index"], word + " ")
        for c in payload["choices"]
        for word in c["message"]["content"].split(" ")
    ]
    await asyncio.sleep(seconds / 5)
    await send([{"index": c["index"], "delta": {"role": "assistant"}} for c in payload["choices"]])
    gap = seconds * 4 / 5 / max(len(words), 1)
    for index, word in words:
        await asyncio.sleep(gap)
        await send([{"index": index, "delta": {"content": word}, "finish_reason": None}])
    await send(
        [{"index": c["index"], "delta": {}, "finish_reason": "stop"} for c in payload["choices"]]
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        await send([], usage=payload["usage"])
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def serve(server: CapacityServer, port: int) -> None:
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/bench/log", server.log)
    app.router.add_post("/bench/reset", server.reset_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=64, help="calls served at once")
    parser.add_argument("--median", type=float, default=0.2, help="median service time, s")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()

    async def run() -> None:
        await serve(CapacityServer(args.capacity, args.median, args.sigma, args.seed), args.port)

    asyncio.run(run())


if __name__ == "__main__":
    main()
