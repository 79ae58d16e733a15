"""CPU latency of k sequential FFN sublayers vs their fused form (arXiv 2503.18908).

Sequential: the unfused layers' own forward, k times `h = h + SwiGLU_i(RMSNorm_i(h))`. Fused: the
layer `hardware_opt.fusion.fuse` builds, `h + SwiGLU_fused(RMSNorm_1(h))` with gate/up stacked by
rows (gains folded in) and down by columns. Same FLOPs and weight bytes, same fp32; the fused form
issues one wide GEMM per projection instead of k narrow ones and one norm/residual instead of k.

Each cell builds both arms once, then times them interleaved (the order alternates every repeat)
and reports medians of wall time and of process CPU time: on a shared machine the wall clock also
counts time the scheduler gave to other jobs, the CPU clock does not.

    .venv/bin/python benchmarks/ffn_fusion.py                  # hidden 2048, FFN 8192, 64 tokens
    .venv/bin/python benchmarks/ffn_fusion.py --grid           # decode + prefill grid, one table
    .venv/bin/python benchmarks/ffn_fusion.py --hidden 1024 4096 --tokens 1 512 --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from hardware_opt.fusion import fused_ffn
from hardware_opt.modeling import (
    AttentionConfig,
    BlockConfig,
    DeciConfig,
    DecoderLayer,
    FFNConfig,
    swiglu_ffn,
)

GRID = {"tokens": [1, 8, 64, 512], "hidden": [1024, 2048, 4096], "k": [2, 4, 8], "threads": [1, 2]}
NO_ATTENTION = AttentionConfig(no_op=True, n_heads_in_group=None)


def arms(k: int, hidden: int, ffn: int) -> tuple[list[DecoderLayer], DecoderLayer]:
    """(k unfused attention-free layers, the one layer that replaces them after fusion)."""
    block = BlockConfig(NO_ATTENTION, swiglu_ffn(ffn, hidden))
    config = DeciConfig(
        hidden_size=hidden,
        num_attention_heads=hidden // 64,
        num_hidden_layers=k,
        block_configs=[block] * k,
    )
    layers = []
    for _ in range(k):
        layer = DecoderLayer(config, block)
        for p in layer.parameters():
            torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else torch.nn.init.uniform_(
                p, 0.5, 1.5
            )
        layers.append(layer.eval())
    fused = DecoderLayer(config, BlockConfig(NO_ATTENTION, FFNConfig(no_op=True)))
    fused.set_ffn(*fused_ffn(layers, config))
    # On the shared dev VM the weights written during init streamed 15-20% slower than the same
    # values copied afterwards, which showed up as a fusion "gain"; both arms get fresh copies.
    for p in [*(p for layer in layers for p in layer.parameters()), *fused.parameters()]:
        p.data = p.data.clone()
    return layers, fused.eval()


def interleaved(fns, x, repeats: int, seconds: float) -> list[tuple[float, float]]:
    """(median wall ms, median CPU ms) per function; stops early past `seconds` (3 rounds min)."""
    for fn in fns:
        fn(x)
    wall, cpu = [[] for _ in fns], [[] for _ in fns]
    start = time.perf_counter()
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            w, c = time.perf_counter(), time.process_time()
            fns[i](x)
            cpu[i].append((time.process_time() - c) * 1e3)
            wall[i].append((time.perf_counter() - w) * 1e3)
        if r >= 2 and time.perf_counter() - start > seconds:
            break
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)]


@torch.no_grad()
def bench_cells(k: int, hidden: int, ffn: int, tokens: list[int], args) -> None:
    layers, fused = arms(k, hidden, ffn)

    def sequential(h):
        for layer in layers:
            h = layer(h, None, None, None)
        return h

    def parallel(h):
        return fused(h, None, None, None)

    for threads in args.threads:
        torch.set_num_threads(threads)
        for t in tokens:
            x = torch.randn(1, t, hidden)
            reference = x + sum(layer.ffn_delta(x) for layer in layers)
            err = float((parallel(x) - reference).abs().max())
            (seq_ms, seq_cpu), (fused_ms, fused_cpu) = interleaved(
                [sequential, parallel], x, args.repeats, args.cell_seconds
            )
            print(
                f"{hidden:>6} {ffn:>6} {k:>2} {t:>6} {threads:>3} {seq_ms:>10.2f} "
                f"{fused_ms:>10.2f} {seq_ms / fused_ms:>6.2f}x {seq_cpu / fused_cpu:>6.2f}x "
                f"{err:>9.1e}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[2048])
    parser.add_argument("--ffn-mult", type=float, default=4.0, help="FFN width / hidden")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4, 8], help="FFNs fused")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64], help="tokens per call")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--grid", action="store_true", help=f"sweep {GRID}")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds per cell")
    parser.add_argument(
        "--cell-seconds", type=float, default=60.0, help="stop a cell's rounds after this"
    )
    parser.add_argument(
        "--max-gb",
        type=float,
        default=14.0,
        help="skip (hidden, k) whose two arms' fp32 weights exceed this",
    )
    parser.add_argument(
        "--max-gflop", type=float, default=500.0, help="skip cells above this per fused call"
    )
    args = parser.parse_args()
    if args.grid:
        vars(args).update(GRID)
    print(f"fp32, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"{'hidden':>6} {'ffn':>6} {'k':>2} {'tokens':>6} {'thr':>3} {'seq ms':>10} "
        f"{'fused ms':>10} {'wall':>7} {'cpu':>7} {'max|err|':>9}"
    )
    for hidden in args.hidden:
        for k in args.k:
            ffn = round(args.ffn_mult * hidden)
            gb = 2 * k * 3 * hidden * ffn * 4 / 1e9
            if gb > args.max_gb:
                print(f"{hidden:>6} {ffn:>6} {k:>2} skipped: {gb:.1f} GB of weights > --max-gb")
                continue
            tokens = [t for t in args.tokens if 6 * t * hidden * ffn * k / 1e9 <= args.max_gflop]
            if len(tokens) < len(args.tokens):
                skipped = sorted(set(args.tokens) - set(tokens))
                print(f"{hidden:>6} {ffn:>6} {k:>2} tokens {skipped} skipped: > --max-gflop")
            if tokens:
                bench_cells(k, hidden, ffn, tokens, args)
    print("wall, cpu: sequential / fused (medians); max|err|: fused vs the parallel form")


if __name__ == "__main__":
    main()
