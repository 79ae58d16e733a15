"""The GRPO pass-rate pre-filter: k samples per prompt from the starting policy, drop the easy ones.

arXiv 2505.00949 §5: 8 responses per prompt, prompts with a pass rate >= 0.75 discarded (too
easy to teach anything); optionally prompts never solved (pass rate 0) too, since a group whose
rewards are all equal gives GRPO no signal. Samples come from the in-process
`generators.transformers_backend.TransformersBackend` (batched, seeded per request) and are
checked by `training.rewards.accuracy_reward`, the very reward GRPO then trains on. Rows that
already carry `scores["pass_rate"]` (from the `filters.pass_rate` stage) can reuse it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.generation import GenerationRequest, SamplingParams
from training.rewards import accuracy_reward


@dataclass
class PrefilterResult:
    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # each with a "drop_reason"

    def summary(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for row in self.dropped:
            reasons[row["drop_reason"]] = reasons.get(row["drop_reason"], 0) + 1
        rates = [r["pass_rate"] for r in self.kept]
        return {
            "kept": len(self.kept),
            "dropped": reasons,
            "mean_pass_rate_kept": round(sum(rates) / len(rates), 4) if rates else None,
        }


def sample_pass_rates(
    model: str,
    rows: list[dict[str, Any]],
    samples: int = 8,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_tokens: int = 256,
    seed: int = 0,
    batch_size: int = 64,
) -> list[float]:
    """The fraction of `samples` policy answers per prompt row that `accuracy_reward` accepts.

    Defaults: 8 samples (§5), temperature 0.6 / top-p 0.95 (§7.1 reasoning-on sampling).
    """
    from generators.transformers_backend import TransformersBackend

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    backend = TransformersBackend(model=model, batch_size=batch_size)
    sampling = SamplingParams(temperature, top_p, max_tokens)
    requests = [
        GenerationRequest.build(row["prompt"], sampling, k, seed)
        for row in rows
        for k in range(samples)
    ]
    responses = backend.generate_sync(requests)
    backend.close()
    expand = [row for row in rows for _ in range(samples)]
    rewards = accuracy_reward(
        [r.text for r in responses],
        expected_answer=[row["expected_answer"] for row in expand],
        family=[row["family"] for row in expand],
        tests=[row.get("tests", "") for row in expand],
    )
    return [
        sum(r or 0.0 for r in rewards[i * samples : (i + 1) * samples]) / samples
        for i in range(len(rows))
    ]


def apply_prefilter(
    rows: list[dict[str, Any]],
    rates: list[float],
    drop_at_or_above: float | None = 0.75,
    drop_at_or_below: float | None = None,
) -> PrefilterResult:
    """Split rows by pass rate; both bounds inclusive (the paper's filter is `>= 0.75`)."""
    if len(rows) != len(rates):
        raise ValueError(f"{len(rows)} rows but {len(rates)} pass rates")
    result = PrefilterResult()
    for row, rate in zip(rows, rates, strict=True):
        row = {**row, "pass_rate": float(rate)}
        if drop_at_or_above is not None and rate >= drop_at_or_above:
            result.dropped.append({**row, "drop_reason": "pass_rate_too_high"})
        elif drop_at_or_below is not None and rate <= drop_at_or_below:
            result.dropped.append({**row, "drop_reason": "pass_rate_too_low"})
        else:
            result.kept.append(row)
    return result


def prefilter(
    model: str,
    rows: list[dict[str, Any]],
    samples: int = 8,
    drop_at_or_above: float | None = 0.75,
    drop_at_or_below: float | None = None,
    reuse_scores: bool = False,
    **sampling: Any,
) -> PrefilterResult:
    """Pass rates (sampled, or the rows' own with `reuse_scores`) then `apply_prefilter`."""
    if reuse_scores:
        missing = [r["row_id"] for r in rows if r.get("pass_rate", -1.0) < 0]
        if missing:
            raise ValueError(
                f"reuse_pass_rate: {len(missing)} rows have no scores['pass_rate'] (e.g. "
                f"{missing[0]}); build with the filters.pass_rate stage or set reuse_pass_rate: false"
            )
        rates = [r["pass_rate"] for r in rows]
    else:
        rates = sample_pass_rates(model, rows, samples, **sampling)
    return apply_prefilter(rows, rates, drop_at_or_above, drop_at_or_below)


__all__ = ["PrefilterResult", "apply_prefilter", "prefilter", "sample_pass_rates"]
