"""`generators.preference_pair`: k reward-scored samples per prompt -> one (chosen, rejected) pair.

The preference data of reward-aware preference optimisation (RPO; arXiv 2505.00949 §6.2, after
Nemotron-4 340B arXiv 2406.11704 §3.2.3): prompts -> k on-policy samples -> a reward model ->
the best and the worst answer of each prompt, kept when the reward gap is at least
`min_margin`. A recipe runs `generators.multi_sample` (the policy as teacher) and
`filters.reward_model` (every sample scored, none dropped) before this stage; see
`curation/recipes/preference.yaml`.

Reads `output`, `scores["reward"]`, `meta["problem_id"]` and `reasoning`; samples are grouped by
(problem_id, reasoning), so a pair shares its prompt and system prompt (the paper's first LN-Nano
round mixes reasoning on and off prompts this way to sharpen the toggle). Writes one row per
group: `output` = the chosen answer, `meta["rejected"]` = the rejected answer,
`meta["rejected_id"]`, `scores["reward_chosen"]`, `scores["reward_rejected"]`,
`scores["reward_margin"]`. The other samples go to the rejected split with a reason:
`preference_margin_too_small` (every sample of a group whose best - worst < min_margin),
`preference_too_few_samples` (a group of one), `preference_in_pair` (the worst sample, now the
pair's `meta["rejected"]`) and `preference_not_extreme` (samples between best and worst).

Example: samples scored 0.2, 1.5, -0.3 with min_margin 1.0 -> one row, chosen the 1.5 answer,
rejected the -0.3 answer, margin 1.8.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from curation.record import Record, record_id
from curation.registry import register_stage
from curation.stage import Drop, GroupFilter

if TYPE_CHECKING:
    from curation.context import RunContext

SCORE = "reward"  # the score `filters.reward_model` writes


def pick_pair(scores: list[float], min_margin: float = 0.0) -> tuple[int, int] | None:
    """(index of the best, index of the worst) of one prompt's sample scores, or None when there
    are fewer than two samples or best - worst < min_margin. Ties go to the earlier sample.

    >>> pick_pair([0.2, 1.5, -0.3], min_margin=1.0)
    (1, 2)
    >>> pick_pair([0.2, 0.4], min_margin=1.0) is None
    True
    """
    if len(scores) < 2:
        return None
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worst = min(range(len(scores)), key=lambda i: (scores[i], i))
    if best == worst or scores[best] - scores[worst] < min_margin:
        return None
    return best, worst


@register_stage("generators.preference_pair")
@dataclass
class PreferencePair(GroupFilter):
    """Best and worst reward-model-scored sample of each prompt and toggle, as one pair row."""

    min_margin: float = 0.5  # reward gap a pair needs; smaller gaps teach mostly noise

    kind: ClassVar[str] = "transform"
    scored: ClassVar[bool] = False  # the pair row carries reward scores, not a verdict
    requires: ClassVar[tuple[str, ...]] = ("output", "meta.problem_id", f"scores.{SCORE}")
    provides: ClassVar[tuple[str, ...]] = (
        "meta.rejected",
        "meta.rejected_id",
        "scores.reward_chosen",
        "scores.reward_rejected",
        "scores.reward_margin",
    )

    def __post_init__(self) -> None:
        if self.min_margin < 0:
            raise ValueError(
                f"generators.preference_pair: min_margin must be >= 0, got {self.min_margin}"
            )

    def group_key(self, record: Record) -> Hashable:
        return (record.meta.get("problem_id") or record.id, record.reasoning)

    def keep(self, record: Record) -> bool | Drop:
        return SCORE in record.scores or Drop("preference_missing_reward")

    def arrange(self, rows: list[Record]) -> list[Record]:
        return sorted(rows, key=lambda r: r.id)  # shard order must not change which tie wins

    def judge_group(self, rows: list[Record], ctx: RunContext) -> list[bool | Drop | Record]:
        """The pair row in the best row's place; every other row is dropped."""
        picked = pick_pair([r.scores[SCORE] for r in rows], self.min_margin)
        if picked is None:
            small = "preference_too_few_samples" if len(rows) < 2 else "preference_margin_too_small"
            return [Drop(small)] * len(rows)
        best, worst = rows[picked[0]], rows[picked[1]]
        chosen_score, rejected_score = best.scores[SCORE], worst.scores[SCORE]
        pair = replace(
            best,
            id=record_id(ctx.dataset, best.source_id, best.input, "preference-pair", f"{best.id}>{worst.id}"),
            scores={**best.scores, "reward_chosen": chosen_score, "reward_rejected": rejected_score,
                    "reward_margin": chosen_score - rejected_score},
            meta={**best.meta, "rejected": worst.output, "rejected_id": worst.id,
                  "chosen_id": best.id},
        )  # fmt: skip
        in_pair, not_extreme = Drop("preference_in_pair"), Drop("preference_not_extreme")
        return [pair if r is best else in_pair if r is worst else not_extreme for r in rows]


__all__ = ["PreferencePair", "pick_pair"]
