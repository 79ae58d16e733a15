"""Puzzle's architecture search as a mixed-integer program, solved with HiGHS (arXiv 2411.19146 §4).

One binary x[l, c] per (layer, candidate); exactly one candidate per layer; for every budget b,
sum cost_b[l, c] * x[l, c] <= budget_b; minimise sum score[l, c] * x[l, c]. Candidate lists may
differ in length per layer. Infeasible budgets raise `InfeasibleBudgetError` naming, per budget,
the least that any architecture can reach, so the user knows how far to loosen it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import highspy
import numpy as np


class InfeasibleBudgetError(ValueError):
    """No architecture meets every budget at once."""


@dataclass
class Solution:
    choice: list[int]  # candidate index per layer
    objective: float  # summed score of the chosen candidates
    costs: dict[str, float]  # summed cost per budget name
    solve_seconds: float


def _check(scores, costs, budgets) -> None:
    for name in budgets:
        if name not in costs:
            raise ValueError(f"budget {name!r} has no costs; known: {', '.join(sorted(costs))}")
        if len(costs[name]) != len(scores) or any(
            len(c) != len(s) for c, s in zip(costs[name], scores, strict=True)
        ):
            raise ValueError(f"costs[{name!r}] must have the same shape as scores")
    if any(len(s) == 0 for s in scores):
        raise ValueError("every layer needs at least one candidate")


def _infeasible(costs, budgets) -> InfeasibleBudgetError:
    parts = [
        f"{name} <= {limit:.6g} (the smallest reachable is {sum(min(c) for c in costs[name]):.6g})"
        for name, limit in budgets.items()
    ]
    return InfeasibleBudgetError(
        "no architecture meets the budgets " + "; ".join(parts) + ": loosen at least one budget"
    )


def solve(
    scores: list[list[float]],
    costs: dict[str, list[list[float]]],
    budgets: dict[str, float],
    time_limit: float = 60.0,
    rel_gap: float = 1e-4,
) -> Solution:
    """Choose one candidate per layer minimising the summed score under every budget.

    `rel_gap` is HiGHS's relative optimality gap (its default, 1e-4): the returned objective is
    within that fraction of the optimum; 0 demands a proof of optimality (slower on big instances).
    """
    _check(scores, costs, budgets)
    sizes = [len(s) for s in scores]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n, layers = int(offsets[-1]), len(scores)
    names = list(budgets)

    # Column-wise sparse matrix: column j sits in its layer's "choose one" row and every budget row.
    rows_per_col = 1 + len(names)
    layer_of = np.repeat(np.arange(layers), sizes)
    index = np.empty((n, rows_per_col), dtype=np.int32)
    value = np.empty((n, rows_per_col), dtype=np.float64)
    index[:, 0], value[:, 0] = layer_of, 1.0
    for k, name in enumerate(names):
        index[:, 1 + k] = layers + k
        value[:, 1 + k] = np.concatenate([np.asarray(c, dtype=np.float64) for c in costs[name]])

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, layers + len(names)
    lp.col_cost_ = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_ = np.concatenate([np.ones(layers), np.full(len(names), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([np.ones(layers), [float(budgets[m]) for m in names]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, n * rows_per_col + 1, rows_per_col, dtype=np.int32)
    lp.a_matrix_.index_ = index.ravel()
    lp.a_matrix_.value_ = value.ravel()
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", float(rel_gap))
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        raise _infeasible(costs, budgets)
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS stopped with {h.modelStatusToString(status)}; raise time_limit")
    x = np.asarray(h.getSolution().col_value)
    choice = [int(np.argmax(x[offsets[i] : offsets[i + 1]])) for i in range(layers)]
    return _solution(choice, scores, costs, h.getRunTime())


def _solution(choice, scores, costs, seconds: float) -> Solution:
    objective = float(sum(scores[i][c] for i, c in enumerate(choice)))
    totals = {
        name: float(sum(cost[i][c] for i, c in enumerate(choice))) for name, cost in costs.items()
    }
    return Solution(choice, objective, totals, seconds)


def brute_force(scores, costs, budgets) -> Solution:
    """Exhaustive reference for small instances (tests); same contract as `solve`."""
    _check(scores, costs, budgets)
    best = None
    for choice in itertools.product(*(range(len(s)) for s in scores)):
        if any(
            sum(costs[name][i][c] for i, c in enumerate(choice)) > limit + 1e-9
            for name, limit in budgets.items()
        ):
            continue
        value = sum(scores[i][c] for i, c in enumerate(choice))
        if best is None or value < best[0]:
            best = (value, list(choice))
    if best is None:
        raise _infeasible(costs, budgets)
    return _solution(best[1], scores, costs, 0.0)
