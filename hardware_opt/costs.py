"""Block costs Puzzle budgets against: parameters, KV-cache bytes per token, measured latency.

Parameters and KV-cache bytes follow from a block's config alone (so `opt show` can print them
for any checkpoint); latency is measured here, on this machine, with the block's own module.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from hardware_opt.modeling import AttentionConfig, DeciConfig, FFNConfig

COST_NAMES = ("params", "kv_cache", "latency")


@dataclass
class CostParams:
    kv_bytes_per_value: int = 2  # bf16 KV cache when served (arXiv 2411.19146 targets bf16/fp8)
    latency_batch: int = 1  # sequences per timed call
    latency_seq: int = 128  # tokens per sequence in a timed call (prefill-style)
    latency_repeats: int = 7  # median of this many timed calls, after one warm-up


def attention_params(config: DeciConfig, cfg: AttentionConfig) -> int:
    if cfg.no_op:
        return 0
    h = config.hidden_size
    if cfg.replace_with_linear:
        return h * h + h
    q = config.num_attention_heads * config.head_dim
    kv = (config.num_attention_heads // (cfg.n_heads_in_group or 1)) * config.head_dim
    return 2 * h * q + 2 * h * kv + h  # q, o, k, v and the norm gain


def ffn_params(config: DeciConfig, cfg: FFNConfig) -> int:
    if cfg.no_op:
        return 0
    h = config.hidden_size
    if cfg.replace_with_linear:
        return h * h + h
    return 3 * h * cfg.intermediate_size + h


def kv_cache_bytes(config: DeciConfig, cfg: AttentionConfig, bytes_per_value: int = 2) -> int:
    """KV-cache bytes per token for this attention block (keys and values)."""
    if cfg.no_op or cfg.replace_with_linear:
        return 0
    kv_heads = config.num_attention_heads // (cfg.n_heads_in_group or 1)
    return 2 * kv_heads * config.head_dim * bytes_per_value


@torch.no_grad()
def measure_latency_ms(delta_fn, config: DeciConfig, params: CostParams) -> float:
    """Median wall time (ms) of `delta_fn(h, cos, sin, mask)` on a random batch."""
    from hardware_opt.modeling import attention_mask_4d, rotary

    b, t = params.latency_batch, params.latency_seq
    h = torch.randn(b, t, config.hidden_size)
    cos, sin = rotary(config, torch.arange(t).expand(b, t), h.dtype)
    mask = attention_mask_4d(None, b, t, h.device)
    delta_fn(h, cos, sin, mask)
    times = []
    for _ in range(params.latency_repeats):
        start = time.perf_counter()
        delta_fn(h, cos, sin, mask)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def model_costs(config: DeciConfig, bytes_per_value: int = 2) -> list[dict[str, float]]:
    """Per layer: attention/FFN params and KV bytes per token, from the config alone."""
    rows = []
    for i in range(config.num_hidden_layers):
        block = config.block(i)
        rows.append(
            {
                "attn_params": attention_params(config, block.attention),
                "ffn_params": ffn_params(config, block.ffn),
                "kv_cache": kv_cache_bytes(config, block.attention, bytes_per_value),
            }
        )
    return rows
