"""Puzzle's block library: per layer, alternative attention and FFN blocks initialised from the parent.

arXiv 2411.19146 §3.1: attention is full, grouped-query with fewer KV heads, a linear map or a
no-op; the FFN is SwiGLU at reduced widths, a linear map or a no-op. Initialisation (§3.2):
- fewer KV heads: the parent's K/V heads of a group are mean-pooled into one;
- narrower FFN: channels ranked by mean |silu(gate) * up| on calibration activations, the top
  ones kept (gate/up rows and down columns);
- linear: the least-squares map from the normed input to the parent sublayer's output on
  calibration activations (this is already the BLD optimum for a linear block).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from hardware_opt.activations import LayerActivations
from hardware_opt.modeling import (
    Attention,
    AttentionConfig,
    DeciConfig,
    DecoderLayer,
    FFNConfig,
    LinearBlock,
    SwiGLU,
    build_attention,
    build_ffn,
    swiglu_ffn,
)


@dataclass
class LibraryParams:
    kv_groups: tuple[int, ...] = (
        2,
        4,
        8,
    )  # n_heads_in_group values tried (those dividing the heads)
    ffn_ratios: tuple[float, ...] = (0.75, 0.5, 0.25, 0.1)  # FFN widths relative to the parent
    linear: bool = True  # offer replace_with_linear for attention and FFN
    no_op: bool = True  # offer skipping the sublayer

    def __post_init__(self):
        if any(not 0 < r < 1 for r in self.ffn_ratios):
            raise ValueError(f"ffn_ratios must lie in (0, 1), got {self.ffn_ratios}")


@dataclass
class Candidate:
    """One alternative for one sublayer; `norm` + `module` compute its residual contribution."""

    layer: int
    kind: str  # "attention" or "ffn"
    name: str  # full, gqa4, ffn0.50, linear, no_op
    config: AttentionConfig | FFNConfig
    norm: nn.Module
    module: nn.Module
    trainable: bool = False  # needs BLD (the parent block and closed-form ones do not)
    metrics: dict[str, float] = field(default_factory=dict)  # bld_nmse, kl, lm_loss, costs

    def delta(self, h: torch.Tensor, cos=None, sin=None, mask=None) -> torch.Tensor | None:
        if self.config.no_op:
            return None
        normed = self.norm(h)
        return (
            self.module(normed, cos, sin, mask) if self.kind == "attention" else self.module(normed)
        )


def pooled_attention(config: DeciConfig, parent: Attention, group: int) -> Attention:
    """GQA with `group` query heads per KV head; K/V heads of each parent group are averaged."""
    child = Attention(config, group)
    parent_group = parent.n_heads // parent.n_kv
    if group % parent_group:
        raise ValueError(
            f"n_heads_in_group {group} is not a multiple of the parent's {parent_group}"
        )
    pool = group // parent_group
    with torch.no_grad():
        child.q_proj.weight.copy_(parent.q_proj.weight)
        child.o_proj.weight.copy_(parent.o_proj.weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(parent, name).weight.view(child.n_kv, pool, child.head_dim, -1)
            getattr(child, name).weight.copy_(w.mean(1).reshape(child.n_kv * child.head_dim, -1))
    return child


def channel_importance(mlp: SwiGLU, normed: torch.Tensor) -> torch.Tensor:
    """Mean |silu(gate) * up| per intermediate channel over calibration tokens."""
    with torch.no_grad():
        act = nn.functional.silu(mlp.gate_proj(normed)) * mlp.up_proj(normed)
        return act.abs().flatten(0, -2).mean(0)


def pruned_ffn(mlp: SwiGLU, keep: torch.Tensor) -> SwiGLU:
    keep = keep.sort().values
    child = SwiGLU(mlp.down_proj.out_features, len(keep))
    with torch.no_grad():
        child.gate_proj.weight.copy_(mlp.gate_proj.weight[keep])
        child.up_proj.weight.copy_(mlp.up_proj.weight[keep])
        child.down_proj.weight.copy_(mlp.down_proj.weight[:, keep])
    return child


def least_squares_linear(normed: torch.Tensor, target: torch.Tensor, ridge: float = 1e-4):
    """LinearBlock W minimising ||normed @ W.T - target||^2 (+ a small ridge for stability)."""
    x = normed.flatten(0, -2).double()
    y = target.flatten(0, -2).double()
    gram = x.T @ x + ridge * x.shape[0] * torch.eye(x.shape[1], dtype=x.dtype)
    w = torch.linalg.solve(gram, x.T @ y).T
    block = LinearBlock(x.shape[1])
    with torch.no_grad():
        block.linear.weight.copy_(w.float())
    return block


def _copy_norm(norm: nn.Module) -> nn.Module:
    return copy.deepcopy(norm)


def attention_candidates(
    config: DeciConfig,
    layer: DecoderLayer,
    index: int,
    acts: LayerActivations,
    params: LibraryParams,
) -> list[Candidate]:
    parent_cfg = layer.attn_config
    out = [
        Candidate(index, "attention", "parent", parent_cfg, layer.input_layernorm, layer.self_attn)
    ]
    if isinstance(layer.self_attn, Attention):
        base = parent_cfg.n_heads_in_group or 1
        for group in sorted(g for g in params.kv_groups if g > base):
            if config.num_attention_heads % group or group % base:
                continue
            module = pooled_attention(config, layer.self_attn, group)
            cfg = AttentionConfig(n_heads_in_group=group)
            out.append(
                Candidate(
                    index,
                    "attention",
                    f"gqa{group}",
                    cfg,
                    _copy_norm(layer.input_layernorm),
                    module,
                    True,
                )
            )
    if params.linear and not parent_cfg.replace_with_linear and not parent_cfg.no_op:
        norm = _copy_norm(layer.input_layernorm)
        with torch.no_grad():
            module = least_squares_linear(norm(acts.attn_in), acts.attn_delta)
        cfg = AttentionConfig(replace_with_linear=True, n_heads_in_group=None)
        out.append(Candidate(index, "attention", "linear", cfg, norm, module))
    if params.no_op and not parent_cfg.no_op:
        norm, module = build_attention(config, AttentionConfig(no_op=True, n_heads_in_group=None))
        out.append(
            Candidate(
                index,
                "attention",
                "no_op",
                AttentionConfig(no_op=True, n_heads_in_group=None),
                norm,
                module,
            )
        )
    return out


def ffn_candidates(
    config: DeciConfig,
    layer: DecoderLayer,
    index: int,
    acts: LayerActivations,
    params: LibraryParams,
) -> list[Candidate]:
    parent_cfg = layer.ffn_config
    out = [Candidate(index, "ffn", "parent", parent_cfg, layer.post_attention_layernorm, layer.mlp)]
    if isinstance(layer.mlp, SwiGLU):
        with torch.no_grad():
            normed = layer.post_attention_layernorm(acts.ffn_in)
        order = channel_importance(layer.mlp, normed).argsort(descending=True)
        width = parent_cfg.intermediate_size
        for ratio in sorted(set(params.ffn_ratios), reverse=True):
            keep = max(1, round(ratio * width))
            module = pruned_ffn(layer.mlp, order[:keep])
            cfg = swiglu_ffn(keep, config.hidden_size)
            norm = _copy_norm(layer.post_attention_layernorm)
            out.append(Candidate(index, "ffn", f"ffn{ratio:.2f}", cfg, norm, module, True))
    if params.linear and not parent_cfg.replace_with_linear and not parent_cfg.no_op:
        norm = _copy_norm(layer.post_attention_layernorm)
        with torch.no_grad():
            module = least_squares_linear(norm(acts.ffn_in), acts.ffn_delta)
        cfg = FFNConfig(replace_with_linear=True)
        out.append(Candidate(index, "ffn", "linear", cfg, norm, module))
    if params.no_op and not parent_cfg.no_op:
        norm, module = build_ffn(config, FFNConfig(no_op=True))
        out.append(Candidate(index, "ffn", "no_op", FFNConfig(no_op=True), norm, module))
    return out
