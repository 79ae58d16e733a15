"""Held-out accuracy of one family x toggle with per-task verdicts, and the paired comparison."""

from __future__ import annotations

import pytest

from training.evaluate import family_accuracy, paired_difference


def _report(correct: list[int], seed: int = 1) -> dict:
    n = len(correct)
    return {"family": "math", "toggle": "on", "n": n, "seed": seed, "correct": correct}


def test_family_accuracy_keeps_each_tasks_verdict(tiny_model):
    report = family_accuracy(str(tiny_model), "math", "on", n=3, seed=1, max_tokens=8)
    assert (report["family"], report["toggle"], report["n"], report["seed"]) == ("math", "on", 3, 1)
    assert len(report["correct"]) == len(report["formatted"]) == 3
    assert report["accuracy"] == sum(report["correct"]) / 3
    assert report["stderr"] == 0.0  # a random model solves nothing: p = 0


def test_paired_difference_counts_tasks_gained_and_lost():
    before, after = _report([1, 0, 0, 1]), _report([1, 1, 1, 0])
    paired = paired_difference(before, after)
    assert paired["diff"] == 0.25 and (paired["gained"], paired["lost"]) == (2, 1)
    # differences 0, 1, 1, -1: sample variance 11/12, se = sqrt(11/12 / 4)
    assert paired["stderr"] == pytest.approx((11 / 12 / 4) ** 0.5, abs=1e-4)


def test_paired_difference_refuses_different_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        paired_difference(_report([1, 0]), _report([1, 0], seed=2))
