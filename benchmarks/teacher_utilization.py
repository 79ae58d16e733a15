r"""How busy `thinkmix build` keeps a teacher server, against a plain `AsyncOpenAI` loop.

A loopback OpenAI-compatible server (`_capacity_server.py`, its own process) serves at most
`--capacity` C calls at once (the rest queue) with seeded lognormal service times (median
`--median` s, `--sigma`), and logs each call's service interval. The math blend
(`curation/recipes/math.yaml`, `--problems` tinyworld problems, 4 + 4 samples each) is built
with `teachers.reasoner` pointed at it (backend openai, `max_concurrency` C) at each of
`--shards` shard counts, each in a fresh store and request cache, through the public CLI
(`python -m curation.cli build`), so the script measures whatever engine the tree holds.

The baseline replays the exact calls the build made (same bodies: prompts, `n`, seeds, stream
flag), as read back from the server's log, through one `AsyncOpenAI` client (aiohttp transport,
the backend's default) gated by one `asyncio.Semaphore(C)`, all calls gathered at once.

Utilization = sum of service time / (C x makespan), with the makespan measured at the server
from the first call's start to the last call's end; the build's decontamination and filters
before the first call and after the last do not count. Target: >= 0.95x the plain loop at every
shard count. The service times are drawn in the order calls get a slot from a generator
reseeded before each run, so every run sees the same set of times. Columns: `wall` is the whole
build process (start-up, filters, writing); `idle` is the time within the makespan when the
server had no call at all (e.g. between one shard's last answer and the next shard's first
call). The server's answers carry a `\boxed{N}` that math-verify mostly rejects (N is not the
gold answer); only the calls matter here.

    .venv/bin/python benchmarks/teacher_utilization.py [--capacity 64] [--problems 480]
        [--shards 1,4,16,64] [--seed 0] [--sigma 1.0] [--median 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "curation" / "recipes" / "math.yaml"
SERVER = Path(__file__).with_name("_capacity_server.py")
MODEL = "bench-model"
# Body keys the SDK's `create` takes by name; anything else goes in `extra_body`.
NAMED = ("model", "messages", "n", "seed", "temperature", "top_p", "max_tokens", "stream")


def control(base_url: str, path: str, post: bool = False) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    request = urllib.request.Request(root + path, data=b"" if post else None)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def summary(calls: list[dict[str, Any]], capacity: int) -> tuple[float, float, float]:
    """(makespan s, utilization, idle s) of the logged service intervals.

    Idle is the time within the makespan when no call was in service at all (the client had
    nothing in flight), e.g. between one shard's last answer and the next shard's first call.
    """
    intervals = sorted((c["start"], c["end"]) for c in calls)
    makespan = max(end for _, end in intervals) - intervals[0][0]
    busy = sum(end - start for start, end in intervals)
    idle, reach = 0.0, intervals[0][0]
    for start, end in intervals:
        idle += max(0.0, start - reach)
        reach = max(reach, end)
    return makespan, busy / (capacity * makespan), idle


def build(base_url: str, args: argparse.Namespace, shards: int, work: Path) -> float:
    """Runs one build in a fresh store and cache; returns its wall time."""
    sets = {
        "teachers.reasoner.backend": "openai",
        "teachers.reasoner.base_url": base_url,
        "teachers.reasoner.model": MODEL,
        "teachers.reasoner.max_concurrency": args.capacity,
        "sources.0.count": args.problems,
        "stages.multi_sample.samples_on": args.samples_on,
        "stages.multi_sample.samples_off": args.samples_off,
    }
    command = [sys.executable, "-m", "curation.cli", "build", str(RECIPE), "--shards", str(shards)]
    command += ["--store", str(work / f"store-{shards}"), "--cache", str(work / f"cache-{shards}")]
    command += ["--no-stats"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"build --shards {shards} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


async def plain_loop(base_url: str, bodies: list[dict[str, Any]], capacity: int) -> int:
    client = openai.AsyncOpenAI(
        api_key="no-key",
        base_url=base_url,
        max_retries=0,
        timeout=600.0,
        http_client=openai.DefaultAioHttpClient(timeout=600.0),
    )
    gate = asyncio.Semaphore(capacity)

    async def one(body: dict[str, Any]) -> int:
        named = {k: body[k] for k in NAMED if k in body}
        extra = {k: v for k, v in body.items() if k not in NAMED and k != "stream_options"}
        if "stream_options" in body:
            named["stream_options"] = body["stream_options"]
        async with gate:
            answer = await client.chat.completions.create(**named, extra_body=extra or None)
            if not body.get("stream"):
                return len(answer.choices)
            seen = set()
            async for chunk in answer:
                seen.update(c.index for c in chunk.choices if c.finish_reason)
            return len(seen)

    choices = await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
    return sum(choices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=64, help="calls the server serves at once")
    parser.add_argument("--problems", type=int, default=480, help="sources.0.count")
    parser.add_argument("--shards", default="1,4,16,64", help="comma-separated shard counts")
    parser.add_argument("--samples-on", type=int, default=4, help="reasoning-on samples/problem")
    parser.add_argument("--samples-off", type=int, default=4, help="reasoning-off samples/problem")
    parser.add_argument("--seed", type=int, default=0, help="seeds the service times")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma")
    parser.add_argument("--median", type=float, default=0.2, help="median service time, s")
    args = parser.parse_args()
    shard_counts = [int(s) for s in args.shards.split(",")]
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--capacity", str(args.capacity), "--median",
         str(args.median), "--sigma", str(args.sigma), "--seed", str(args.seed)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        print(
            f"capacity {args.capacity}, service lognormal(median {args.median} s, sigma "
            f"{args.sigma}), seed {args.seed}; math.yaml, {args.problems} problems, "
            f"{args.samples_on}+{args.samples_off} samples"
        )
        print(
            f"{'shards':>6}  {'calls':>6}  {'wall':>7}  {'makespan':>8}  {'idle':>7}  {'util':>5}  "
            f"{'plain makespan':>14}  {'plain util':>10}  {'ratio':>5}"
        )
        plain_by_calls: dict[str, tuple[float, float, float]] = {}
        ratios = []
        with tempfile.TemporaryDirectory(prefix="thinkmix-util-") as tmp:
            for shards in shard_counts:
                control(base_url, "/bench/reset", post=True)
                wall = build(base_url, args, shards, Path(tmp))
                calls = control(base_url, "/bench/log")["calls"]
                makespan, util, idle = summary(calls, args.capacity)
                bodies = [c["body"] for c in calls]
                key = json.dumps(sorted(json.dumps(b, sort_keys=True) for b in bodies))
                if key not in plain_by_calls:  # the same calls as an earlier build: reuse
                    control(base_url, "/bench/reset", post=True)
                    answered = asyncio.run(plain_loop(base_url, bodies, args.capacity))
                    wanted = sum(int(b.get("n") or 1) for b in bodies)
                    assert answered == wanted, f"plain loop: {answered} of {wanted} choices"
                    plain_by_calls[key] = summary(
                        control(base_url, "/bench/log")["calls"], args.capacity
                    )
                plain_makespan, plain_util, _ = plain_by_calls[key]
                ratios.append(util / plain_util)
                print(
                    f"{shards:>6}  {len(calls):>6}  {wall:>6.1f}s  {makespan:>7.2f}s  {idle:>6.2f}s  "
                    f"{util:>5.2f}  {plain_makespan:>13.2f}s  {plain_util:>10.2f}  "
                    f"{ratios[-1]:>5.2f}"
                )
        print("target: >= 0.95x the plain loop at every shard count", end="")
        print(f" (worst here {min(ratios):.2f}x)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
