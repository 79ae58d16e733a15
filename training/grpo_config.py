"""`thinkmix train grpo` settings: one flat dataclass, loadable from YAML (`load_config`).

arXiv 2505.00949 §5 (LN-Ultra RL): GRPO with accuracy and format rewards, prompts pre-filtered
by pass rate (8 samples, drop >= 0.75) and fed easy -> hard. Defaults for sizes and steps fit
the embedded default on two CPU cores; the paper's values are cited beside their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GRPORunConfig:
    """Everything `training.grpo.train_grpo` needs besides the data, the model and the out dir."""

    reasoning: str = "on"  # prompt toggle: on, off, row (each row's own) or both (§5: on)
    max_prompts: int = 0  # > 0: use at most this many prompts (first in version order)
    # pass-rate pre-filter (§5)
    prefilter_samples: int = 8  # samples per prompt from the starting policy (§5: 8)
    drop_pass_rate_at_or_above: float | None = 0.75  # §5: too easy; None = keep all
    # never-solved prompts give every completion of a group reward 0, so advantage 0 and no
    # gradient (DAPO's dynamic sampling drops them too); on the embedded default they were most
    # of the batch (SFT student: 45 of 46 prompts kept, mean pass rate 0.09). None = keep all
    drop_pass_rate_at_or_below: float | None = 0.0
    reuse_pass_rate: bool = False  # use the rows' scores["pass_rate"] (filters.pass_rate)
    # the pass rate must estimate the reward of the rollouts GRPO will sample, so it samples
    # as they do (§5.1: temperature 1, top-p 1); §7.1's 0.6 / 0.95 is the evaluation setting
    prefilter_temperature: float = 1.0
    prefilter_top_p: float = 1.0
    # curriculum (§5: easy -> hard)
    curriculum: bool = True  # False = uniform sampling (the same-budget baseline)
    curriculum_bins: int = 8  # pass-rate bins
    curriculum_sigma: float = 0.15  # Gaussian width, difficulty units
    # GRPO (trl)
    rewards: list[str] = field(default_factory=lambda: ["accuracy", "format"])  # §5: both
    reward_weights: list[float] | None = None  # None = equal
    num_generations: int = 8  # completions per prompt (group size)
    prompts_per_step: int = 4  # unique prompts per optimizer step
    max_steps: int = 20  # optimizer steps (the budget)
    learning_rate: float = 5e-5
    beta: float = 0.0  # KL coefficient (trl's default; 0 skips the reference model)
    temperature: float = 1.0  # sampling temperature of the rollouts (§5.1: 1.0, top-p 1)
    max_completion_length: int = 192  # tokens per completion (char-level: characters)
    loss_type: str = "dapo"  # trl's default
    use_vllm: bool = False  # generate with vLLM (needs a GPU and the vllm extra)
    seed: int = 0
    logging_steps: int = 1
    threads: int = 2  # torch CPU threads
    # > 0: the toggle audit (training/audit.py) on this many held-out tinyworld prompts at train
    # begin and end; the results go to summary.json's `toggle_audit`
    audit_prompts: int = 0

    def __post_init__(self) -> None:
        if self.audit_prompts < 0:
            raise ValueError(f"audit_prompts must be >= 0, got {self.audit_prompts}")
        if self.reasoning not in ("on", "off", "row", "both"):
            raise ValueError(f"reasoning must be on, off, row or both, got {self.reasoning!r}")
        unknown = [r for r in self.rewards if r not in ("accuracy", "format")]
        if unknown or not self.rewards:
            raise ValueError(f"rewards: expected a list of accuracy, format; got {self.rewards}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError("reward_weights needs one weight per reward")
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 (GRPO compares completions in a group)")
        if self.prompts_per_step < 1 or self.max_steps < 1 or self.prefilter_samples < 1:
            raise ValueError("prompts_per_step, max_steps and prefilter_samples must be >= 1")
        for name in ("drop_pass_rate_at_or_above", "drop_pass_rate_at_or_below"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or null, got {value}")


__all__ = ["GRPORunConfig"]
