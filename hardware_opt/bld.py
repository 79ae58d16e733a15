"""Blockwise local distillation (BLD, arXiv 2411.19146 §3.2).

Each candidate learns, alone, to reproduce its parent sublayer's residual contribution from the
parent's own input activations (decoupled BLD: no candidate depends on another's choice, so all
train independently and in parallel). The loss is the normalised MSE
`||child - parent||^2 / ||parent||^2`, which puts layers with different scales on one footing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from hardware_opt.activations import LayerActivations, Prepared
from hardware_opt.library import Candidate


@dataclass
class BLDParams:
    steps: int = 60  # optimiser steps per candidate (tiny models converge fast)
    lr: float = 1e-3  # Adam learning rate
    batch_blocks: int = 8  # calibration blocks per step
    workers: int = 2  # candidates trained concurrently (threads; torch ops release the GIL)
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.batch_blocks < 1 or self.workers < 1:
            raise ValueError("BLD needs steps >= 0, lr > 0, batch_blocks >= 1, workers >= 1")


def normalized_mse(pred: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
    pred = torch.zeros_like(target) if pred is None else pred
    return (pred - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)


def _io(cand: Candidate, acts: LayerActivations) -> tuple[torch.Tensor, torch.Tensor]:
    if cand.kind == "attention":
        return acts.attn_in, acts.attn_delta
    return acts.ffn_in, acts.ffn_delta


@torch.no_grad()
def evaluate(cand: Candidate, acts: LayerActivations, prep: Prepared) -> float:
    x, y = _io(cand, acts)
    return float(normalized_mse(cand.delta(x, prep.cos, prep.sin, prep.mask), y))


def train_candidate(
    cand: Candidate, acts: LayerActivations, prep: Prepared, params: BLDParams
) -> float:
    """Train `cand` in place; returns its final normalised MSE on all calibration blocks."""
    if cand.trainable and params.steps:
        x, y = _io(cand, acts)
        gen = torch.Generator().manual_seed(params.seed * 1000 + cand.layer)
        weights = [*cand.norm.parameters(), *cand.module.parameters()]
        opt = torch.optim.Adam(weights, lr=params.lr)
        n = x.shape[0]
        for _ in range(params.steps):
            idx = torch.randint(0, n, (min(params.batch_blocks, n),), generator=gen)
            pred = cand.delta(x[idx], prep.cos[idx], prep.sin[idx], prep.mask[idx])
            loss = normalized_mse(pred, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        for w in weights:
            w.requires_grad_(False)
    cand.metrics["bld_nmse"] = evaluate(cand, acts, prep)
    return cand.metrics["bld_nmse"]


def train_all(
    candidates: list[Candidate],
    acts: list[LayerActivations],
    prep: Prepared,
    params: BLDParams,
) -> None:
    """BLD for every candidate; independent, so `workers` of them run at once."""

    def one(cand: Candidate) -> float:
        return train_candidate(cand, acts[cand.layer], prep, params)

    if params.workers == 1:
        for cand in candidates:
            one(cand)
        return
    with ThreadPoolExecutor(params.workers) as pool:
        list(pool.map(one, candidates))
