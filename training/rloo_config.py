"""`thinkmix train rloo` settings: one flat dataclass, loadable from YAML (`load_config`).

arXiv 2505.00949 §6.1: after reasoning RL, a short RLOO run for instruction following with the
instruction-following verifier as the reward. Sizes and steps fit the embedded default on two
CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KNOWN_REWARDS = ("instruction", "instruction_strict", "accuracy", "format")


@dataclass
class RLOORunConfig:
    """Everything `training.rloo.train_rloo` needs besides the data, the model and the out dir."""

    reasoning: str = "off"  # prompt toggle: on, off, row or both (§6.1 does not say; off is cheap)
    max_prompts: int = 0  # > 0: use at most this many prompts (first in version order)
    # rewards (training.rloo.reward_functions): instruction = share of constraints met (§6.1)
    rewards: list[str] = field(default_factory=lambda: ["instruction", "format"])
    reward_weights: list[float] | None = None  # None = equal
    # RLOO (trl)
    num_generations: int = 4  # completions per prompt; each one's baseline is the others' mean
    prompts_per_step: int = 4  # unique prompts per optimizer step
    max_steps: int = 20  # optimizer steps (the budget)
    learning_rate: float = 5e-5
    beta: float = 0.0  # KL coefficient (0 skips the reference model; trl's default is 0.05)
    temperature: float = 1.0  # sampling temperature of the rollouts
    max_completion_length: int = 96  # tokens per completion (char-level: characters)
    normalize_advantages: bool = False  # trl's default
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
        unknown = [r for r in self.rewards if r not in KNOWN_REWARDS]
        if unknown or not self.rewards:
            raise ValueError(
                f"rewards: expected a list of {', '.join(KNOWN_REWARDS)}; got {self.rewards}"
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError("reward_weights needs one weight per reward")
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 (RLOO's baseline is the other samples)")
        if self.prompts_per_step < 1 or self.max_steps < 1:
            raise ValueError("prompts_per_step and max_steps must be >= 1")


__all__ = ["KNOWN_REWARDS", "RLOORunConfig"]
