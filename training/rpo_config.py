"""`thinkmix train rpo` settings: one flat dataclass, loadable from YAML (`load_config`).

Reward-aware preference optimisation (Nemotron-4 340B, arXiv 2406.11704 §3.2.3; used for the
Llama-Nemotron chat stage, arXiv 2505.00949 §6.2: two offline rounds with on-policy data for
LN-Nano, iterative online RPO for LN-Super). Sizes and steps fit the embedded default on two CPU
cores; the papers' values are cited beside their fields where the summaries give them.
"""

from __future__ import annotations

from dataclasses import dataclass

DISTANCES = ("bwd_kl", "fwd_kl", "squared")


@dataclass
class RPORunConfig:
    """Everything `training.rpo.train_rpo` needs besides the data, the model and the out dir."""

    # the loss (training.rpo.rpo_loss)
    beta: float = 0.1  # implicit reward scale: r_pi = beta * log(pi/pi_ref) (trl's DPO default)
    eta: float = 1.0  # reward-model gap scale: the target gap is eta * (r*(y_w) - r*(y_l))
    distance: str = "bwd_kl"  # bwd_kl (2406.11704 §3.2.3), fwd_kl or squared
    # optimisation (trl DPOTrainer)
    epochs: int = 1  # passes over each round's pairs
    max_steps: int = -1  # > 0: stop each round after this many optimizer steps
    batch_size: int = 8  # pairs per optimizer step
    learning_rate: float = 5e-5
    max_length: int = 512  # tokens of prompt + answer kept (char-level: characters)
    # online mode: sample -> score -> pair -> train, `iterations` times (§6.2: two for LN-Super)
    online: bool = False
    iterations: int = 2
    samples_per_prompt: int = 4  # k answers per prompt from the current policy
    min_margin: float = 0.5  # reward-model gap below which a prompt makes no pair
    max_prompts: int = 0  # > 0: use at most this many prompts per iteration
    reasoning: str = "both"  # prompt toggle: on, off, row or both (§6.2 round 1 mixes both)
    temperature: float = 1.0  # policy sampling
    top_p: float = 1.0
    max_completion_length: int = 192  # tokens per sampled answer
    reward_model: str = ""  # a reward model dir (`thinkmix train rm`); online mode needs it
    score_think: bool = False  # score the reasoning too, not only the answer after </think>
    seed: int = 0
    logging_steps: int = 1
    threads: int = 2  # torch CPU threads

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(
                f"distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}"
            )
        if self.beta <= 0 or self.eta <= 0:
            raise ValueError(f"beta and eta must be > 0, got beta={self.beta}, eta={self.eta}")
        if self.reasoning not in ("on", "off", "row", "both"):
            raise ValueError(f"reasoning must be on, off, row or both, got {self.reasoning!r}")
        if self.samples_per_prompt < 2:
            raise ValueError("samples_per_prompt must be >= 2 (a pair needs two answers)")
        if min(self.iterations, self.batch_size, self.epochs, self.max_length) < 1:
            raise ValueError("iterations, batch_size, epochs and max_length must be >= 1")
        if self.min_margin < 0:
            raise ValueError(f"min_margin must be >= 0, got {self.min_margin}")
        if self.online and not self.reward_model:
            raise ValueError(
                "online RPO scores fresh samples: set reward_model to a reward model dir "
                "(build one with `thinkmix train rm --out DIR`)"
            )


__all__ = ["DISTANCES", "RPORunConfig"]
