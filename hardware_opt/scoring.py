"""Replace-one-block scoring (arXiv 2411.19146 §3.3).

A candidate's score is the damage it does alone: the parent with only that sublayer swapped,
measured as the mean per-token KL divergence from the parent's next-token distribution on
held-out blocks (and the LM loss, reported beside it). Layers before the swapped one are
unchanged, so each evaluation resumes from the parent's cached hidden state at that layer.
"""

from __future__ import annotations

import torch

from hardware_opt.activations import Prepared, capture, kl_and_loss, logits_from
from hardware_opt.library import Candidate
from hardware_opt.modeling import DeciForCausalLM


@torch.no_grad()
def score_candidates(
    model: DeciForCausalLM, candidates: list[Candidate], held_out: torch.Tensor
) -> None:
    """Fill `metrics["kl"]` and `metrics["lm_loss"]` of every candidate."""
    acts, prep = capture(model, held_out)
    parent_logits = logits_from(model, len(acts), acts[-1].ffn_in + acts[-1].ffn_delta, prep)
    for cand in candidates:
        if cand.name == "parent":
            cand.metrics["kl"], cand.metrics["lm_loss"] = kl_and_loss(
                parent_logits, parent_logits, held_out
            )
            continue
        child_logits = _swapped_logits(model, cand, acts, prep)
        cand.metrics["kl"], cand.metrics["lm_loss"] = kl_and_loss(
            parent_logits, child_logits, held_out
        )


def _swapped_logits(model: DeciForCausalLM, cand: Candidate, acts, prep: Prepared) -> torch.Tensor:
    layer = model.model.layers[cand.layer]
    a = acts[cand.layer]
    if cand.kind == "attention":
        delta = cand.delta(a.attn_in, prep.cos, prep.sin, prep.mask)
        h = a.attn_in if delta is None else a.attn_in + delta
        ffn = layer.ffn_delta(h)
        h = h if ffn is None else h + ffn
    else:
        delta = cand.delta(a.ffn_in)
        h = a.ffn_in if delta is None else a.ffn_in + delta
    return logits_from(model, cand.layer + 1, h, prep)
