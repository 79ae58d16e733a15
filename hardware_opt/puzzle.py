"""Puzzle end to end (arXiv 2411.19146): library -> BLD -> scoring -> costs -> MIP -> child.

`run_puzzle(parent, tokenizer, params)` returns the assembled child and a JSON-able report. The
search space per layer is every (attention, FFN) pair of candidates; a pair's score and costs
are the sums of its two halves' (the paper's additive approximation, §4).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field

import torch

from hardware_opt import mip
from hardware_opt.activations import capture, kl_and_loss
from hardware_opt.bld import BLDParams, train_all
from hardware_opt.calibration import CalibrationParams, load_blocks
from hardware_opt.costs import (
    COST_NAMES,
    CostParams,
    attention_params,
    ffn_params,
    kv_cache_bytes,
    measure_latency_ms,
)
from hardware_opt.export import assemble
from hardware_opt.library import Candidate, LibraryParams, attention_candidates, ffn_candidates
from hardware_opt.modeling import DeciForCausalLM
from hardware_opt.scoring import score_candidates


@dataclass
class PuzzleParams:
    budgets: dict[str, float] = field(default_factory=lambda: {"params": 0.6})  # fraction of parent
    score: str = "kl"  # "kl" (KL to the parent, §3.3) or "lm_loss"
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    library: LibraryParams = field(default_factory=LibraryParams)
    bld: BLDParams = field(default_factory=BLDParams)
    costs: CostParams = field(default_factory=CostParams)
    uniform_baseline: bool = True  # also report the best uniform (same block every layer) child
    kd_steps: int = 0  # optional recovery: steps of logit distillation of the child from the parent
    kd_lr: float = 3e-4

    def __post_init__(self):
        unknown = set(self.budgets) - set(COST_NAMES)
        if unknown:
            raise ValueError(f"unknown budget {sorted(unknown)}; use {', '.join(COST_NAMES)}")
        if any(not v > 0 for v in self.budgets.values()):
            raise ValueError(f"budgets are fractions of the parent and must be > 0: {self.budgets}")
        if self.score not in ("kl", "lm_loss"):
            raise ValueError(f"score must be 'kl' or 'lm_loss', got {self.score!r}")


def candidate_costs(
    parent: DeciForCausalLM, cand: Candidate, params: CostParams
) -> dict[str, float]:
    config = parent.config
    if cand.kind == "attention":
        n = attention_params(config, cand.config)
        kv = kv_cache_bytes(config, cand.config, params.kv_bytes_per_value)
    else:
        n, kv = ffn_params(config, cand.config), 0
    latency = 0.0 if cand.config.no_op else measure_latency_ms(cand.delta, config, params)
    return {"params": float(n), "kv_cache": float(kv), "latency": latency}


def build_library(parent: DeciForCausalLM, train: torch.Tensor, params: PuzzleParams):
    """Per layer (attention candidates, FFN candidates), BLD-trained, not yet scored."""
    acts, prep = capture(parent, train)
    layers = []
    for i, layer in enumerate(parent.model.layers):
        attn = attention_candidates(parent.config, layer, i, acts[i], params.library)
        ffn = ffn_candidates(parent.config, layer, i, acts[i], params.library)
        layers.append((attn, ffn))
    train_all([c for a, f in layers for c in a + f], acts, prep, params.bld)
    return layers


def _pairs(layer_cands):
    attn, ffn = layer_cands
    return list(itertools.product(attn, ffn))


def _pair_value(pair, key: str) -> float:
    return pair[0].metrics[key] + pair[1].metrics[key]


@torch.no_grad()
def child_quality(parent_logits, child: DeciForCausalLM, held: torch.Tensor) -> dict[str, float]:
    kl, loss = kl_and_loss(parent_logits, child(held).logits, held)
    return {"kl": kl, "lm_loss": loss}


def uniform_baseline(parent, layers, limits, parent_logits, held) -> dict | None:
    """The best child that uses the same (attention, FFN) pair in every layer within budget."""
    by_name = [{(a.name, f.name): (a, f) for a, f in _pairs(lc)} for lc in layers]
    common = set.intersection(*(set(d) for d in by_name))
    best = None
    for key in sorted(common):
        pairs = [d[key] for d in by_name]
        if any(sum(_pair_value(p, n) for p in pairs) > limits[n] + 1e-9 for n in limits):
            continue
        quality = child_quality(parent_logits, assemble(parent, pairs), held)
        if best is None or quality["kl"] < best["kl"]:
            best = {"blocks": list(key), **quality}
    return best


def distill(
    child: DeciForCausalLM, parent: DeciForCausalLM, train: torch.Tensor, steps: int, lr: float
):
    """A few steps of logit distillation (KL to the parent) to recover quality (§5)."""
    child.train()
    opt = torch.optim.AdamW([p for p in child.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, train.shape[0], (min(8, train.shape[0]),), generator=gen)
        with torch.no_grad():
            target = torch.log_softmax(parent(train[idx]).logits, -1)
        log_q = torch.log_softmax(child(train[idx]).logits, -1)
        loss = (target.exp() * (target - log_q)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    child.eval()


def run_puzzle(parent: DeciForCausalLM, tokenizer, params: PuzzleParams):
    """Search a child of `parent` under `params.budgets`; returns (child, report)."""
    timings = {}
    start = time.perf_counter()
    train, held = load_blocks(tokenizer, params.calibration)
    layers = build_library(parent, train, params)
    timings["library_and_bld_s"] = time.perf_counter() - start

    start = time.perf_counter()
    score_candidates(parent, [c for a, f in layers for c in a + f], held)
    for a, f in layers:
        for cand in a + f:
            cand.metrics.update(candidate_costs(parent, cand, params.costs))
    timings["scoring_and_costs_s"] = time.perf_counter() - start

    pairs = [_pairs(lc) for lc in layers]
    parent_pairs = [next(p for p in ps if p[0].name == p[1].name == "parent") for ps in pairs]
    parent_totals = {n: sum(_pair_value(p, n) for p in parent_pairs) for n in COST_NAMES}
    limits = {n: frac * parent_totals[n] for n, frac in params.budgets.items()}
    score_key = params.score
    scores = [[_pair_value(p, score_key) for p in ps] for ps in pairs]
    costs = {n: [[_pair_value(p, n) for p in ps] for ps in pairs] for n in params.budgets}
    solution = mip.solve(scores, costs, limits)
    chosen = [ps[c] for ps, c in zip(pairs, solution.choice, strict=True)]
    child = assemble(parent, chosen)

    with torch.no_grad():
        parent_logits = parent(held).logits
    report = {
        "budgets": params.budgets,
        "limits": limits,
        "parent_costs": parent_totals,
        "child_costs": {n: sum(_pair_value(p, n) for p in chosen) for n in COST_NAMES},
        "mip": {"objective": solution.objective, "solve_seconds": solution.solve_seconds},
        "layers": [_layer_report(i, a, f) for i, (a, f) in enumerate(chosen)],
        "library": [[c.name for c in a] + [c.name for c in f] for a, f in layers],
        "parent_quality": child_quality(parent_logits, parent, held),
        "child_quality": child_quality(parent_logits, child, held),
        "params": _params_dict(params),
    }
    if params.kd_steps:
        distill(child, parent, train, params.kd_steps, params.kd_lr)
        report["child_quality_after_kd"] = child_quality(parent_logits, child, held)
    if params.uniform_baseline:
        report["uniform_baseline"] = uniform_baseline(parent, layers, limits, parent_logits, held)
    report["timings"] = timings
    return child, report


def _layer_report(index: int, attn: Candidate, ffn: Candidate) -> dict:
    keep = ("kl", "lm_loss", "bld_nmse", *COST_NAMES)
    return {
        "layer": index,
        "attention": {"block": attn.name, **{k: attn.metrics.get(k) for k in keep}},
        "ffn": {"block": ffn.name, **{k: ffn.metrics.get(k) for k in keep}},
    }


def _params_dict(params: PuzzleParams) -> dict:
    data = asdict(params)
    data["library"] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in data["library"].items()
    }
    return data
