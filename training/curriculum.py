"""The GRPO curriculum: prompts drawn from a Gaussian over difficulty whose centre moves easy -> hard.

arXiv 2505.00949 §5 (LN-Ultra RL): prompts are pre-filtered by pass rate and then fed in a
curriculum, easy first. Difficulty is `1 - pass_rate`; prompts fall into `bins` equal-width
difficulty bins. For generation batch `b` of `num_batches`, the centre is
`start + (end - start) * b / (num_batches - 1)` (in [0, 1] difficulty), each non-empty bin gets
weight `exp(-(centre_of_bin - centre)^2 / (2 sigma^2))`, and each prompt of the batch is drawn by
picking a bin by weight, then a prompt of that bin, without replacement until the bin runs dry
(then the bin is refilled and reshuffled). `uniform=True` gives the same-budget baseline: every
prompt equally likely, no schedule.

`__iter__` yields indices in trl's `RepeatSampler` layout (each prompt `mini_repeat_count` times
in a row, each batch `repeat_count` times), so `GRPOTrainer` groups completions as it expects.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch.utils.data import Sampler


@dataclass
class CurriculumSampler(Sampler[int]):
    """Batches of prompt indices, easy to hard; see the module docstring."""

    difficulty: Sequence[float]  # per prompt, in [0, 1] (1 - pass rate)
    batch_size: int  # unique prompts per generation batch
    num_batches: int  # generation batches in the whole run
    mini_repeat_count: int = 1  # completions per prompt (trl: num_generations)
    repeat_count: int = 1  # reuse of a batch (trl: num_iterations * steps_per_generation)
    bins: int = 8  # difficulty bins (8 samples per prompt give 9 pass-rate levels; §5)
    sigma: float = 0.15  # width of the Gaussian, in difficulty units
    start: float | None = None  # centre at the first batch; None = the easiest bin in use
    end: float | None = None  # centre at the last batch; None = the hardest bin in use
    uniform: bool = False  # baseline: uniform draws, no schedule
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.difficulty:
            raise ValueError("curriculum: no prompts to sample (did the pre-filter drop them all?)")
        if any(not 0.0 <= d <= 1.0 for d in self.difficulty):
            raise ValueError("curriculum: difficulty values must lie in [0, 1] (1 - pass rate)")
        if self.batch_size < 1 or self.num_batches < 1 or self.bins < 1:
            raise ValueError("curriculum: batch_size, num_batches and bins must be >= 1")
        if self.sigma <= 0:
            raise ValueError(f"curriculum: sigma must be > 0, got {self.sigma}")
        self.members: dict[int, list[int]] = {}
        for index, d in enumerate(self.difficulty):
            self.members.setdefault(self.bin_of(d), []).append(index)
        used = sorted(self.members)
        lo = self.start if self.start is not None else self.bin_centre(used[0])
        hi = self.end if self.end is not None else self.bin_centre(used[-1])
        self._span = (lo, hi)

    def bin_of(self, d: float) -> int:
        return min(int(d * self.bins), self.bins - 1)

    def bin_centre(self, b: int) -> float:
        return (b + 0.5) / self.bins

    def centre(self, batch: int) -> float:
        """The Gaussian's centre at generation batch `batch`."""
        lo, hi = self._span
        frac = batch / (self.num_batches - 1) if self.num_batches > 1 else 0.0
        return lo + (hi - lo) * frac

    def bin_weights(self, batch: int) -> dict[int, float]:
        """Probability of each non-empty bin at `batch` (sums to 1)."""
        if self.uniform:
            total = len(self.difficulty)
            return {b: len(ids) / total for b, ids in self.members.items()}
        mu = self.centre(batch)
        raw = {
            b: math.exp(-((self.bin_centre(b) - mu) ** 2) / (2 * self.sigma**2))
            for b in self.members
        }
        total = sum(raw.values())
        if total <= 0:  # every bin is many sigmas away: fall back to the nearest one
            nearest = min(self.members, key=lambda b: abs(self.bin_centre(b) - mu))
            return {b: float(b == nearest) for b in self.members}
        return {b: w / total for b, w in raw.items()}

    def batches(self) -> list[list[int]]:
        """The whole run's batches of unique prompt indices; the same for the same seed."""
        rng = random.Random(f"curriculum-{self.seed}")
        pools: dict[int, list[int]] = {}
        out = []
        for batch in range(self.num_batches):
            weights = self.bin_weights(batch)
            names = sorted(weights)
            chosen: list[int] = []
            for _ in range(self.batch_size):
                b = rng.choices(names, weights=[weights[n] for n in names])[0]
                if not pools.get(b):
                    pools[b] = list(self.members[b])
                    rng.shuffle(pools[b])
                chosen.append(pools[b].pop())
            out.append(chosen)
        return out

    def __iter__(self) -> Iterator[int]:
        for chunk in self.batches():
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return self.num_batches * self.batch_size * self.mini_repeat_count * self.repeat_count


__all__ = ["CurriculumSampler"]
