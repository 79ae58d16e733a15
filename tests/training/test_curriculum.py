"""The curriculum sampler: a Gaussian over difficulty bins whose centre moves easy -> hard."""

from __future__ import annotations

import pytest

from training.curriculum import CurriculumSampler

# 8 prompts in each of 4 difficulty levels
DIFFICULTY = [d for d in (0.1, 0.35, 0.6, 0.9) for _ in range(8)]


def _mean(sampler: CurriculumSampler, batches: list[list[int]]) -> float:
    values = [sampler.difficulty[i] for chunk in batches for i in chunk]
    return sum(values) / len(values)


def test_sampled_difficulty_moves_from_easy_to_hard():
    sampler = CurriculumSampler(DIFFICULTY, batch_size=4, num_batches=40, bins=4, sigma=0.12)
    batches = sampler.batches()
    first, last = _mean(sampler, batches[:10]), _mean(sampler, batches[-10:])
    assert first < 0.3 < 0.7 < last
    # the Gaussian's centre goes from the easiest to the hardest bin in use
    assert sampler.centre(0) == pytest.approx(0.125) and sampler.centre(39) == pytest.approx(0.875)
    early, late = sampler.bin_weights(0), sampler.bin_weights(39)
    assert early[0] > 0.85 and late[3] > 0.85
    assert sum(early.values()) == pytest.approx(1.0)


def test_uniform_baseline_has_no_trend_and_the_same_budget():
    curriculum = CurriculumSampler(DIFFICULTY, batch_size=4, num_batches=40, bins=4)
    uniform = CurriculumSampler(DIFFICULTY, batch_size=4, num_batches=40, bins=4, uniform=True)
    batches = uniform.batches()
    first, last = _mean(uniform, batches[:20]), _mean(uniform, batches[20:])
    assert abs(first - last) < 0.15
    assert len(uniform) == len(curriculum) == 160
    assert uniform.bin_weights(0) == uniform.bin_weights(39)


def test_iteration_matches_trl_repeat_sampler_layout_and_is_seeded():
    sampler = CurriculumSampler(
        DIFFICULTY, batch_size=2, num_batches=3, mini_repeat_count=3, repeat_count=2, seed=1
    )
    order = list(sampler)
    assert len(order) == len(sampler) == 3 * 2 * 3 * 2
    first = sampler.batches()[0]
    assert order[:12] == [first[0]] * 3 + [first[1]] * 3 + [first[0]] * 3 + [first[1]] * 3
    again = CurriculumSampler(
        DIFFICULTY, batch_size=2, num_batches=3, mini_repeat_count=3, repeat_count=2, seed=1
    )
    assert list(again) == order


def test_a_bin_is_drawn_without_replacement_until_it_runs_dry():
    sampler = CurriculumSampler([0.0] * 6, batch_size=3, num_batches=2)
    batches = sampler.batches()
    assert sorted(batches[0] + batches[1]) == list(range(6))


def test_bad_inputs_say_what_to_fix():
    with pytest.raises(ValueError, match="pre-filter drop"):
        CurriculumSampler([], batch_size=1, num_batches=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CurriculumSampler([1.5], batch_size=1, num_batches=1)
    with pytest.raises(ValueError, match="sigma"):
        CurriculumSampler([0.5], batch_size=1, num_batches=1, sigma=0)
