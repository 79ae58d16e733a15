"""The parent's per-layer activations on calibration blocks: what BLD mimics and scoring resumes from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hardware_opt.modeling import DeciForCausalLM


@dataclass
class LayerActivations:
    attn_in: torch.Tensor  # hidden state entering the layer (batch, seq, hidden)
    attn_delta: torch.Tensor  # the attention sublayer's residual contribution (zeros if no-op)
    ffn_in: torch.Tensor  # hidden state entering the FFN sublayer
    ffn_delta: torch.Tensor  # the FFN sublayer's residual contribution (zeros if no-op)


@dataclass
class Prepared:
    """Rotary tables and mask shared by all layers for a batch of fixed-length blocks."""

    cos: torch.Tensor
    sin: torch.Tensor
    mask: torch.Tensor


@torch.no_grad()
def capture(
    model: DeciForCausalLM, blocks: torch.Tensor
) -> tuple[list[LayerActivations], Prepared]:
    h, cos, sin, mask = model.model.prepare(blocks)
    acts = []
    for layer in model.model.layers:
        attn_in = h
        delta = layer.attention_delta(h, cos, sin, mask)
        attn_delta = torch.zeros_like(h) if delta is None else delta
        h = h + attn_delta
        ffn_in = h
        delta = layer.ffn_delta(h)
        ffn_delta = torch.zeros_like(h) if delta is None else delta
        h = h + ffn_delta
        acts.append(LayerActivations(attn_in, attn_delta, ffn_in, ffn_delta))
    return acts, Prepared(cos, sin, mask)


@torch.no_grad()
def logits_from(
    model: DeciForCausalLM, start: int, h: torch.Tensor, prep: Prepared
) -> torch.Tensor:
    """Run layers `start..` on hidden state `h`, then the final norm and head."""
    for layer in model.model.layers[start:]:
        h = layer(h, prep.cos, prep.sin, prep.mask)
    return model.lm_head(model.model.norm(h))


def kl_and_loss(parent_logits: torch.Tensor, child_logits: torch.Tensor, blocks: torch.Tensor):
    """(mean per-token KL(parent || child), child next-token cross-entropy) on `blocks`."""
    p_log = torch.log_softmax(parent_logits.float(), -1)
    c_log = torch.log_softmax(child_logits.float(), -1)
    kl = (p_log.exp() * (p_log - c_log)).sum(-1).mean()
    loss = torch.nn.functional.nll_loss(
        c_log[:, :-1].reshape(-1, c_log.shape[-1]), blocks[:, 1:].reshape(-1)
    )
    return float(kl), float(loss)
