"""FFN Fusion (arXiv 2503.18908): run consecutive attention-free FFNs in parallel, as one wide FFN.

After Puzzle removes attention from some layers, runs of consecutive FFN sublayers remain. If FFN
j barely depends on FFN i before it, the sequence `h + f_i(h)`, then `+ f_j(...)` is close to the
parallel form `h + f_i(h) + f_j(h)`, and that sum is exactly one SwiGLU whose gate/up matrices are
the row-concatenation of the originals and whose down matrix is their column-concatenation. Each
FFN's RMSNorm gain g is folded into its gate/up columns (W @ diag(g)), so the fused block has a
single gain-free RMSNorm (weight = 1) — exact because all norms share eps.

Dependency (§3.2): for i < j in a run, the cosine distance between f_j's contribution in the
sequential model and f_j's contribution when FFN i is removed. Low = FFN j ignores FFN i.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch

from hardware_opt.activations import kl_and_loss
from hardware_opt.modeling import (
    AttentionConfig,
    DeciForCausalLM,
    FFNConfig,
    RMSNorm,
    SwiGLU,
    build_attention,
    swiglu_ffn,
)


@dataclass
class FusionParams:
    threshold: float = 0.3  # fuse FFNs whose pairwise dependency (cosine distance) stays below
    max_run: int = 8  # at most this many FFNs fused into one block
    drop_attention: tuple[
        int, ...
    ] = ()  # force these layers attention-free first (no Puzzle child)

    def __post_init__(self):
        if not 0 <= self.threshold <= 2 or self.max_run < 2:
            raise ValueError("threshold must lie in [0, 2] and max_run must be >= 2")


def drop_attention(model: DeciForCausalLM, layers: tuple[int, ...]) -> DeciForCausalLM:
    """A copy of `model` with the attention of `layers` replaced by no-ops."""
    model = copy.deepcopy(model)
    n = len(model.model.layers)
    for i in layers:
        if not 0 <= i < n:
            raise ValueError(f"--drop-attention layer {i} out of range 0..{n - 1}")
        cfg = AttentionConfig(no_op=True, n_heads_in_group=None)
        model.model.layers[i].set_attention(cfg, *build_attention(model.config, cfg))
    _sync_config(model)
    return model


def _sync_config(model: DeciForCausalLM) -> None:
    model.config.block_configs = [
        {"attention": vars(layer.attn_config).copy(), "ffn": vars(layer.ffn_config).copy()}
        for layer in model.model.layers
    ]


def _fusable(layer) -> bool:
    return layer.attn_config.no_op and isinstance(layer.mlp, SwiGLU)


def attention_free_runs(model: DeciForCausalLM) -> list[list[int]]:
    """Maximal runs (length >= 2) of consecutive layers with no attention and a SwiGLU FFN."""
    runs, current = [], []
    for i, layer in enumerate(model.model.layers):
        if _fusable(layer):
            current.append(i)
        else:
            current = []
        if len(current) == 2:
            runs.append(current)
    return runs


@torch.no_grad()
def dependency_matrix(model: DeciForCausalLM, run: list[int], blocks: torch.Tensor) -> torch.Tensor:
    """M[a, b] (a < b, positions in `run`): mean cosine distance of FFN b's output with/without FFN a."""
    h, cos, sin, mask = model.model.prepare(blocks)
    for layer in model.model.layers[: run[0]]:
        h = layer(h, cos, sin, mask)
    layers = [model.model.layers[i] for i in run]

    def contributions(skip: int | None) -> list[torch.Tensor]:
        x, out = h, []
        for k, layer in enumerate(layers):
            delta = layer.ffn_delta(x)
            out.append(delta)
            x = x if k == skip else x + delta
        return out

    base = contributions(None)
    m = torch.zeros(len(run), len(run))
    for a in range(len(run)):
        without = contributions(a)
        for b in range(a + 1, len(run)):
            cosine = torch.nn.functional.cosine_similarity(base[b], without[b], dim=-1)
            m[a, b] = float((1 - cosine).mean())
    return m


def choose_segments(runs, matrices, params: FusionParams) -> list[list[int]]:
    """Greedy left-to-right: extend a segment while every pair in it stays below the threshold."""
    segments = []
    for run, m in zip(runs, matrices, strict=True):
        start = 0
        while start < len(run):
            end = start + 1
            while (
                end < len(run)
                and end - start < params.max_run
                and float(m[start:end, end].max()) <= params.threshold
            ):
                end += 1
            if end - start >= 2:
                segments.append(run[start:end])
            start = end
    return segments


@torch.no_grad()
def fused_swiglu(layers) -> SwiGLU:
    """One SwiGLU equal to the sum of `layers`' FFNs on a shared, gain-free RMSNorm input."""
    mlps = [layer.mlp for layer in layers]
    like = mlps[0].gate_proj.weight
    # Built on "meta" and filled slice by slice: no random init and no concatenated temporaries,
    # so fusing k FFNs needs k FFNs' worth of new memory, not three times that.
    with torch.device("meta"):
        fused = SwiGLU(like.shape[1], sum(m.gate_proj.out_features for m in mlps)).to(like.dtype)
    fused.to_empty(device=like.device)
    start = 0
    for layer, m in zip(layers, mlps, strict=True):
        gain, end = layer.post_attention_layernorm.weight, start + m.gate_proj.out_features
        torch.mul(m.gate_proj.weight, gain, out=fused.gate_proj.weight[start:end])
        torch.mul(m.up_proj.weight, gain, out=fused.up_proj.weight[start:end])
        fused.down_proj.weight[:, start:end].copy_(m.down_proj.weight)
        start = end
    return fused


def fused_ffn(layers, config) -> tuple[FFNConfig, RMSNorm, SwiGLU]:
    """(config, norm, module) of the FFN sublayer that replaces `layers`' FFNs (for `set_ffn`)."""
    module = fused_swiglu(layers)
    norm = RMSNorm(config.hidden_size, config.rms_norm_eps)  # gain 1: folded into projections
    return swiglu_ffn(module.gate_proj.out_features, config.hidden_size), norm, module


def fuse(model: DeciForCausalLM, segments: list[list[int]]) -> DeciForCausalLM:
    """A copy of `model` where each segment's FFNs become one wide FFN in its first layer."""
    model = copy.deepcopy(model)
    for seg in segments:
        layers = [model.model.layers[i] for i in seg]
        if not all(_fusable(layer) for layer in layers):
            raise ValueError(f"layers {seg} are not all attention-free SwiGLU layers; cannot fuse")
        layers[0].set_ffn(*fused_ffn(layers, model.config))
        for layer in layers[1:]:
            layer.set_ffn(FFNConfig(no_op=True), torch.nn.Identity(), torch.nn.Identity())
    _sync_config(model)
    return model.eval()


@torch.no_grad()
def parallel_reference(model: DeciForCausalLM, segments, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of the unfused model with each segment's FFNs run in parallel (the fusion target)."""
    h, cos, sin, mask = model.model.prepare(input_ids)
    starts = {seg[0]: seg for seg in segments}
    inside = {i for seg in segments for i in seg}
    for i, layer in enumerate(model.model.layers):
        if i in starts:
            h = h + sum(model.model.layers[k].ffn_delta(h) for k in starts[i])
        elif i not in inside:
            h = layer(h, cos, sin, mask)
    return model.lm_head(model.model.norm(h))


@torch.no_grad()
def forward_latency_ms(model: DeciForCausalLM, input_ids: torch.Tensor, repeats: int = 7) -> float:
    model(input_ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(input_ids)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def run_fusion(model: DeciForCausalLM, blocks: torch.Tensor, params: FusionParams):
    """(fused model, report): dependency analysis, fusion, KL vs the unfused model, latency."""
    if params.drop_attention:
        model = drop_attention(model, params.drop_attention)
    runs = attention_free_runs(model)
    if not runs:
        raise ValueError(
            "no run of >= 2 consecutive attention-free layers; pass a Puzzle child that removed "
            "attention, or force some with --drop-attention"
        )
    matrices = [dependency_matrix(model, run, blocks) for run in runs]
    segments = choose_segments(runs, matrices, params)
    fused = fuse(model, segments)
    base_logits = model(blocks).logits
    kl, loss = kl_and_loss(base_logits, fused(blocks).logits, blocks)
    _, base_loss = kl_and_loss(base_logits, base_logits, blocks)
    report = {
        "runs": runs,
        "dependency": [m.tolist() for m in matrices],
        "segments": segments,
        "kl_vs_unfused": kl,
        "lm_loss_unfused": base_loss,
        "lm_loss_fused": loss,
        "latency_ms_unfused": forward_latency_ms(model, blocks),
        "latency_ms_fused": forward_latency_ms(fused, blocks),
        "params": {
            "threshold": params.threshold,
            "max_run": params.max_run,
            "drop_attention": list(params.drop_attention),
        },
    }
    return model, fused, report
