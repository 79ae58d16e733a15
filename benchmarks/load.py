"""Load: many requests at high concurrency with bounded client memory and no leaked fds.

Starts the fault server (faults off: it answers at once) in its own process on loopback, then
runs each client path in a fresh child process, so every path's peak RSS and file descriptors
are its own and the server's are nobody's:

- `plain`: a bare `AsyncOpenAI` client bounded by a semaphore (the baseline);
- `backend`: thinkmix's `openai` backend (`OpenAIBackend.generate`, `max_concurrency` = C),
  streamed as it is by default (the plain loop is not: it is the loop a user would write);
- `cached`: the real build path: `CachedTeacher` over that backend and a fresh sqlite request
  cache (a lookup per request, a commit per chunk of 4 x C answers).

Requests go out in batches of `--batch` (one `generate` call each, as a stage does), every
request distinct (its own prompt and seed), and nothing is kept after a batch is counted, so
memory that grows with the number of requests sent is a leak. Each path reports wall time,
requests/s, RSS after the first 10% of the requests and at the end, peak RSS
(`getrusage`), open fds before, at the peak (sampled while requests run) and after the client
is closed, and the ratio of its requests/s to the baseline's.

    python benchmarks/load.py                     # 100k requests, concurrency 512, all paths
    python benchmarks/load.py --requests 10000 --paths backend cached
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = ("plain", "backend", "cached")
TIMEOUT_S = 120.0  # a loaded 2-core box delays some answers by seconds; none should fail
BOUNDED_GROWTH = 0.10  # RSS growth from 10% to 100% of the requests that still counts as flat


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    """Resident set size now (not the peak), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def batch_of(start: int, count: int) -> list:
    from curation.generation import GenerationRequest, SamplingParams

    sampling = SamplingParams()
    return [
        GenerationRequest.build([{"role": "user", "content": f"load {i}"}], sampling, 0, seed=i)
        for i in range(start, start + count)
    ]


class Sampler:
    """Peak open fds while requests run (sockets show up as fds), sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak_fds = open_fds()
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak_fds = max(self.peak_fds, open_fds())
            await asyncio.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def plain_path(base_url: str, args: argparse.Namespace, marks: dict) -> int:
    import openai

    client = openai.AsyncOpenAI(
        api_key="no-key", base_url=base_url, max_retries=0, timeout=TIMEOUT_S
    )
    gate = asyncio.Semaphore(args.concurrency)

    async def one(r) -> bool:
        async with gate:
            answer = await client.chat.completions.create(
                model="fault-model",
                messages=r.message_dicts(),
                max_tokens=r.sampling.max_tokens,
                seed=r.seed,
            )
            return bool(answer.choices[0].message.content)

    ok = 0
    with Sampler() as sampler:
        for start in range(0, args.requests, args.batch):
            batch = batch_of(start, min(args.batch, args.requests - start))
            ok += sum(await asyncio.gather(*(one(r) for r in batch)))
            if start + args.batch >= args.requests // 10:
                marks.setdefault("rss_10pct", rss_mib())
    await client.close()
    marks["peak_fds"] = sampler.peak_fds
    return ok


async def backend_path(base_url: str, args: argparse.Namespace, marks: dict) -> int:
    from generators.openai_backend import OpenAIBackend

    backend = OpenAIBackend(
        "fault-model", base_url=base_url, max_concurrency=args.concurrency, timeout_s=TIMEOUT_S
    )
    generate = backend.generate
    cache = None
    if args.path == "cached":
        from curation.cache import RequestCache
        from curation.context import CachedTeacher

        cache = RequestCache(Path(args.scratch) / "requests.sqlite")
        generate = CachedTeacher("load", backend, cache).generate
    ok = 0
    with Sampler() as sampler:
        for start in range(0, args.requests, args.batch):
            batch = batch_of(start, min(args.batch, args.requests - start))
            ok += sum(r.error is None for r in await generate(batch))
            if start + args.batch >= args.requests // 10:
                marks.setdefault("rss_10pct", rss_mib())
    backend.close()
    if cache is not None:
        marks["cache_rows"] = len(cache)
        cache.close()
    marks["peak_fds"] = sampler.peak_fds
    return ok


def child(args: argparse.Namespace) -> None:
    """One path in this (fresh) process; prints one JSON line."""
    import openai  # noqa: F401  (imports first, so the fds they open count as "before")

    import generators.openai_backend  # noqa: F401

    gc.collect()
    fds_before, rss_start = open_fds(), rss_mib()
    marks: dict = {}
    run = plain_path if args.path == "plain" else backend_path
    started = time.perf_counter()
    ok = asyncio.run(run(args.base_url, args, marks))
    seconds = time.perf_counter() - started
    gc.collect()
    result = {
        "path": args.path,
        "ok": ok,
        "seconds": seconds,
        "rps": ok / seconds,
        "rss_start": rss_start,
        "rss_10pct": marks["rss_10pct"],
        "rss_end": rss_mib(),
        "rss_peak": peak_rss_mib(),
        "fds_before": fds_before,
        "fds_peak": marks["peak_fds"],
        "fds_after": open_fds(),
        "cache_rows": marks.get("cache_rows"),
    }
    print(json.dumps(result), flush=True)


def run_child(path: str, base_url: str, args: argparse.Namespace, scratch: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        path,
        "--base-url",
        base_url,
        "--requests",
        str(args.requests),
        "--concurrency",
        str(args.concurrency),
        "--batch",
        str(args.batch),
        "--scratch",
        scratch,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{path}: the client process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


HEADER = (
    f"{'path':<8} {'ok':>7} {'wall s':>7} {'req/s':>6} {'ratio':>5}  {'RSS MiB: start':>14} "
    f"{'@10%':>6} {'end':>6} {'peak':>6} {'bounded':>7}  {'fds: before':>11} {'peak':>5} "
    f"{'after':>5}"
)


def row(r: dict, baseline: float | None, requests: int) -> str:
    """One path's line, then a warning line for anything that is not as it should be."""
    growth = (r["rss_end"] - r["rss_10pct"]) / r["rss_10pct"]
    bounded = "yes" if growth <= BOUNDED_GROWTH else f"no +{growth:.0%}"
    ratio = f"{r['rps'] / baseline:.2f}" if baseline else "-"
    line = (
        f"{r['path']:<8} {r['ok']:>7} {r['seconds']:>7.1f} {r['rps']:>6.0f} {ratio:>5}  "
        f"{r['rss_start']:>14.0f} {r['rss_10pct']:>6.0f} {r['rss_end']:>6.0f} "
        f"{r['rss_peak']:>6.0f} {bounded:>7}  {r['fds_before']:>11} {r['fds_peak']:>5} "
        f"{r['fds_after']:>5}"
    )
    if r["ok"] != requests:
        line += f"\nWARNING {r['path']}: {requests - r['ok']} requests failed"
    if r["fds_after"] > r["fds_before"]:
        line += f"\nWARNING {r['path']}: {r['fds_after'] - r['fds_before']} fds leaked"
    if r["cache_rows"] is not None and r["cache_rows"] != requests:
        line += f"\nWARNING {r['path']}: the cache holds {r['cache_rows']} rows, not {requests}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument(
        "--batch", type=int, help="requests per generate call (default: a tenth of --requests)"
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch = args.batch or max(1, args.requests // 10)
    if args.child:
        args.path = args.child
        child(args)
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "generators.fault_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        print(
            f"{args.requests} requests per path, concurrency {args.concurrency}, batches of "
            f"{args.batch}, against {base_url} (fault server, no faults, its own process)"
        )
        print(HEADER, flush=True)
        baseline = None
        with tempfile.TemporaryDirectory(prefix="thinkmix-load-") as scratch:
            for path in args.paths:  # each row as soon as its path is done: a run takes minutes
                result = run_child(path, base_url, args, scratch)
                baseline = baseline or (result["rps"] if path == "plain" else None)
                print(row(result, baseline, args.requests), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
