"""CPU latency of k sequential FFN sublayers vs their fused form (arXiv 2503.18908), k = 2, 4, 8.

Sequential: k times `h = h + SwiGLU_i(RMSNorm_i(h))`. Fused: `h + SwiGLU_fused(norm(h))` with the
gate/up/down matrices concatenated (built by `hardware_opt.fusion.fused_swiglu`). Same FLOPs and
weights; the fused form issues one wide GEMM per projection instead of k narrow ones, and one
norm/residual instead of k. Shapes default to a Llama-3.2-1B-like layer (hidden 2048, FFN 8192).

    .venv/bin/python benchmarks/ffn_fusion.py [--hidden 2048 --ffn 8192 --tokens 64 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hardware_opt.fusion import fused_swiglu
from hardware_opt.modeling import AttentionConfig, BlockConfig, DeciConfig, DecoderLayer, swiglu_ffn


def layers_for(k: int, hidden: int, ffn: int) -> list[DecoderLayer]:
    block = BlockConfig(AttentionConfig(no_op=True, n_heads_in_group=None), swiglu_ffn(ffn, hidden))
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
    return layers


def median_ms(fn, x, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def bench(k: int, args) -> tuple[float, float, float]:
    layers = layers_for(k, args.hidden, args.ffn)
    fused = fused_swiglu(layers).eval()
    norm = layers[0].post_attention_layernorm

    def sequential(h):
        for layer in layers:
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return h

    def parallel(h):
        return h + fused(norm.normalize(h))

    x = torch.randn(1, args.tokens, args.hidden)
    err = float((parallel(x) - (x + sum(layer.ffn_delta(x) for layer in layers))).abs().max())
    return median_ms(sequential, x, args.repeats), median_ms(parallel, x, args.repeats), err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--ffn", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per call (batch x seq)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"hidden={args.hidden} ffn={args.ffn} tokens={args.tokens} threads={torch.get_num_threads()}"
    )
    print(
        f"{'k':>3} {'sequential ms':>14} {'fused ms':>10} {'speedup':>8} {'max|fused-parallel|':>20}"
    )
    for k in (2, 4, 8):
        seq_ms, fused_ms, err = bench(k, args)
        print(f"{k:>3} {seq_ms:>14.2f} {fused_ms:>10.2f} {seq_ms / fused_ms:>7.2f}x {err:>20.2e}")


if __name__ == "__main__":
    main()
