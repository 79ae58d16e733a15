"""Throughput of the thinkmix `openai` backend against a plain `AsyncOpenAI` loop.

Starts the fault server (faults off: it answers at once) in a subprocess on loopback, then, for
each concurrency, sends the same requests through (a) a bare `AsyncOpenAI` client bounded by a
semaphore, with the SDK's default httpx transport and with its aiohttp one, and (b)
`OpenAIBackend.generate` with `max_concurrency` equal (aiohttp transport, its default), as it
runs by default (streamed: SSE, with its first-byte and idle timeouts) and with `stream: false`,
and prints completed requests per second and the ratios. All see the same server and the same
machine. The plain loops do not stream (the loop a user would write: `create()` and read
`choices`). thinkmix / plain-aiohttp is the backend's own overhead (grouping, limits, retries
bookkeeping, stream parsing), target >= 0.95; thinkmix / plain-httpx is what a user gains over
the loop they would write with the SDK's defaults.

    python benchmarks/generation_throughput.py --requests 2000 --concurrency 64 256

`--peer-python VENV/bin/python` also times distilabel and curator from a throw-away venv (see
`peer_throughput.py`) against the same server and prints their ratios to the plain loop:

    python -m venv /tmp/peers && /tmp/peers/bin/pip install distilabel bespokelabs-curator
    python benchmarks/generation_throughput.py --peer-python /tmp/peers/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import openai

from curation.generation import GenerationRequest, SamplingParams
from generators.openai_backend import OpenAIBackend

TIMEOUT_S = 60.0  # both clients; the client's default 5 s connect timeout trips on a busy box


def make_requests(count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest.build(
            [{"role": "user", "content": f"benchmark prompt {i}"}], SamplingParams(), 0, seed=i
        )
        for i in range(count)
    ]


async def plain_loop(
    base_url: str, reqs: list[GenerationRequest], concurrency: int, aiohttp: bool = False
) -> int:
    transport = {"http_client": openai.DefaultAioHttpClient(timeout=TIMEOUT_S)} if aiohttp else {}
    client = openai.AsyncOpenAI(
        api_key="no-key", base_url=base_url, max_retries=0, timeout=TIMEOUT_S, **transport
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(r: GenerationRequest) -> bool:
        async with gate:
            answer = await client.chat.completions.create(
                model="fault-model",
                messages=r.message_dicts(),
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p,
                max_tokens=r.sampling.max_tokens,
                seed=r.seed + r.sample_index,
            )
            return bool(answer.choices[0].message.content)

    done = await asyncio.gather(*(one(r) for r in reqs))
    await client.close()
    return sum(done)


async def plain_loop_aiohttp(base_url: str, reqs: list[GenerationRequest], concurrency: int) -> int:
    return await plain_loop(base_url, reqs, concurrency, aiohttp=True)


async def thinkmix_backend(
    base_url: str, reqs: list[GenerationRequest], concurrency: int, stream: bool = True
) -> int:
    backend = OpenAIBackend(
        "fault-model",
        base_url=base_url,
        max_concurrency=concurrency,
        timeout_s=TIMEOUT_S,
        stream=stream,
    )
    out = await backend.generate(reqs)
    return sum(r.error is None for r in out)


async def thinkmix_unstreamed(
    base_url: str, reqs: list[GenerationRequest], concurrency: int
) -> int:
    return await thinkmix_backend(base_url, reqs, concurrency, stream=False)


def timed(fn, base_url: str, reqs: list[GenerationRequest], concurrency: int) -> float:
    start = time.perf_counter()
    ok = asyncio.run(fn(base_url, reqs, concurrency))
    elapsed = time.perf_counter() - start
    assert ok == len(reqs), f"{fn.__name__}: {len(reqs) - ok} requests failed"
    return ok / elapsed


def peers(python: str, base_url: str, requests: int, concurrency: int) -> list[str]:
    """The lines `peer_throughput.py` prints when run by another venv's interpreter."""
    script = Path(__file__).with_name("peer_throughput.py")
    command = [python, str(script), base_url, "--requests", str(requests)]
    done = subprocess.run(
        [*command, "--concurrency", str(concurrency)], capture_output=True, text=True, timeout=1800
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith(("distilabel", "curator"))]
    return lines or [f"peers failed: {done.stderr.strip().splitlines()[-1:]}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; best of each")
    parser.add_argument("--peer-python", help="a venv's python with distilabel / curator")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "generators.fault_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        reqs = make_requests(args.requests)
        timed(plain_loop, base_url, reqs[:200], 16)  # warm up every path
        timed(plain_loop_aiohttp, base_url, reqs[:200], 16)
        timed(thinkmix_backend, base_url, reqs[:200], 16)
        timed(thinkmix_unstreamed, base_url, reqs[:200], 16)
        print(f"{args.requests} requests against {base_url} (fault server, no faults)")
        print(
            f"{'concurrency':>11}  {'plain httpx':>11}  {'plain aiohttp':>13}  {'thinkmix':>8}"
            f"  {'unstreamed':>10}  (req/s)  thinkmix/aiohttp  thinkmix/httpx  unstreamed/aiohttp"
        )
        for concurrency in args.concurrency:
            plain = aio = ours = flat = 0.0
            for _ in range(args.rounds):
                plain = max(plain, timed(plain_loop, base_url, reqs, concurrency))
                aio = max(aio, timed(plain_loop_aiohttp, base_url, reqs, concurrency))
                ours = max(ours, timed(thinkmix_backend, base_url, reqs, concurrency))
                flat = max(flat, timed(thinkmix_unstreamed, base_url, reqs, concurrency))
            print(
                f"{concurrency:>11}  {plain:>11.0f}  {aio:>13.0f}  {ours:>8.0f}  {flat:>10.0f}"
                f"  {'':>7}  {ours / aio:>16.2f}  {ours / plain:>14.2f}  {flat / aio:>18.2f}"
            )
            if args.peer_python:
                for line in peers(args.peer_python, base_url, args.requests, concurrency):
                    tool, _, value = line.partition(" ")
                    try:
                        rate = float(value)
                    except ValueError:
                        print(f"{'':>11}  {tool} {value}")
                        continue
                    print(
                        f"{'':>11}  {tool}: {rate:.0f} req/s, ratio to AsyncOpenAI {rate / plain:.2f}"
                    )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
