"""Requests/s of other data-generation tools against the same loopback server (a peer venv).

Run by `generation_throughput.py --peer-python VENV/bin/python` with the interpreter of a
throw-away venv holding `distilabel` and/or `bespokelabs-curator` (they pin their own openai,
pydantic and litellm versions, so they do not go into the thinkmix venv). Prints one line per
tool: `TOOL REQ_PER_S` or `TOOL skipped: REASON`.

distilabel runs the way its pipelines run a task: `OpenAILLM.generate_outputs` over batches of
`concurrency` prompts, each batch gathered at once. curator runs `curator.LLM` with the openai
backend, its rate limits opened wide and its cache off.

    VENV/bin/python benchmarks/peer_throughput.py BASE_URL --requests 2000 --concurrency 64
"""

from __future__ import annotations

import argparse
import os
import time


def prompts(count: int) -> list[str]:
    return [f"benchmark prompt {i}" for i in range(count)]


def distilabel_rate(base_url: str, count: int, concurrency: int) -> float:
    from distilabel.models import OpenAILLM

    llm = OpenAILLM(model="fault-model", base_url=base_url, api_key="no-key", timeout=60)
    llm.load()
    inputs = [[{"role": "user", "content": p}] for p in prompts(count)]
    llm.generate_outputs(inputs=inputs[:concurrency], num_generations=1)  # warm up
    start = time.perf_counter()
    done = 0
    for i in range(0, count, concurrency):
        out = llm.generate_outputs(inputs=inputs[i : i + concurrency], num_generations=1)
        done += sum(bool(o["generations"][0]) for o in out)
    elapsed = time.perf_counter() - start
    assert done == count, f"distilabel: {count - done} requests failed"
    return count / elapsed


def curator_rate(base_url: str, count: int, concurrency: int) -> float:
    os.environ.setdefault("CURATOR_DISABLE_CACHE", "1")
    os.environ.setdefault("CURATOR_VIEWER", "0")
    from bespokelabs import curator

    llm = curator.LLM(
        model_name="gpt-4o-mini",
        backend="openai",
        backend_params={
            "base_url": base_url,
            "api_key": "no-key",
            "max_requests_per_minute": 10**9,
            "max_tokens_per_minute": 10**12,
            "max_concurrent_requests": concurrency,
        },
    )
    start = time.perf_counter()
    out = llm(prompts(count))
    elapsed = time.perf_counter() - start
    assert len(out) == count, f"curator: {count - len(out)} requests failed"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    for name, run in (("distilabel", distilabel_rate), ("curator", curator_rate)):
        try:
            rate = run(args.base_url, args.requests, args.concurrency)
        except ImportError:
            print(f"{name} skipped: not installed in this venv", flush=True)
        except Exception as exc:  # a peer tool's failure is reported, not fatal
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
            print(f"{name} skipped: {reason}", flush=True)
        else:
            print(f"{name} {rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
