"""`thinkmix train rm`: a tiny reward model for the embedded default, trained with trl's
RewardTrainer on tinyworld preference pairs.

No reward model can be downloaded on these machines, and the paper's
(Llama-3.1-Nemotron-70B-Reward, arXiv 2505.00949 §6.2) would not run on a laptop anyway. This
one is a 1-layer Llama sequence classifier on the embedded teacher's character tokenizer,
trained in seconds on pairs (gold answer > corrupted answer) of tinyworld tasks from every
family: the corruption is another task's answer (wrong content, right shape), the answer cut
short, a stuck loop, or the boxed/letter answer stripped. The directory it writes is what
`filters.reward_model` (`model: DIR`) and online `thinkmix train rpo` load. Like the papers'
reward model it scores the answer after `</think>`, given the prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.tinyworld import FAMILIES, Task, generate

TRAIN_SEED = 11  # tinyworld seed of the pairs; evaluation uses another


@dataclass
class RewardModelConfig:
    """Size and training budget of the tiny reward model."""

    tasks_per_family: int = 120  # pairs = tasks x corruptions_per_task
    corruptions_per_task: int = 2
    hidden: int = 32
    layers: int = 1
    heads: int = 2
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 3e-3
    max_length: int = 384
    seed: int = 0
    threads: int = 2


def corrupt(task: Task, other: Task, rng: random.Random) -> str:
    """A worse answer than `task.answer_text`: another task's answer, cut short, a loop, unboxed."""
    good = task.answer_text
    kind = rng.choice(["other", "cut", "loop", "strip"])
    if kind == "other" and other.answer_text != good:
        return other.answer_text
    if kind == "loop" or len(good) < 4:
        return (good.split()[0] + " ") * 12 if good.split() else "..."
    if kind == "strip" and ("\\boxed{" in good or "(" in good):
        return good.replace("\\boxed{", "").replace("}", "").replace("(", "").replace(")", "")
    return good[: len(good) // 3]


def preference_pairs(per_family: int, corruptions: int, seed: int) -> list[dict[str, Any]]:
    """Conversational (chosen, rejected) pairs of tinyworld tasks for trl's RewardTrainer."""
    rng = random.Random(seed)
    pairs = []
    for family in FAMILIES:
        tasks = generate(family, per_family, TRAIN_SEED + seed)
        for i, task in enumerate(tasks):
            prompt = [{"role": "user", "content": task.prompt}]
            for _ in range(corruptions):
                other = tasks[(i + rng.randrange(1, len(tasks))) % len(tasks)]
                pairs.append({
                    "chosen": [*prompt, {"role": "assistant", "content": task.answer_text}],
                    "rejected": [*prompt, {"role": "assistant", "content": corrupt(task, other, rng)}],
                })  # fmt: skip
    return pairs


def train_reward_model(
    out_dir: Path | str, config: RewardModelConfig | None = None
) -> dict[str, Any]:
    """Train the tiny reward model into `out_dir`; returns {"pairs", "steps", "train_accuracy",
    "held_out_accuracy", "dir"} (accuracy = share of pairs where chosen scores higher)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from curation.teacher.paths import EMBEDDED_DIR

    config = config or RewardModelConfig()
    out = Path(out_dir)
    torch.set_num_threads(config.threads)
    tokenizer = AutoTokenizer.from_pretrained(EMBEDDED_DIR)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=config.hidden * 2,
        num_hidden_layers=config.layers, num_attention_heads=config.heads,
        num_key_value_heads=config.heads, max_position_embeddings=max(512, config.max_length),
        num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(config.seed)
    model = LlamaForSequenceClassification(model_config)
    pairs = preference_pairs(config.tasks_per_family, config.corruptions_per_task, config.seed)
    args = RewardConfig(
        output_dir=str(out / "_trainer"), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        max_length=config.max_length, bf16=False, activation_checkpointing=False, use_cpu=True,
        save_strategy="no", report_to=[], disable_tqdm=True, seed=config.seed, logging_steps=10,
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer
    )
    trainer.train()
    model = trainer.model
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    import shutil

    shutil.rmtree(out / "_trainer", ignore_errors=True)
    held_out = preference_pairs(20, 1, config.seed + 1000)  # other tasks than the training ones
    return {
        "pairs": len(pairs),
        "steps": trainer.state.global_step,
        "train_accuracy": round(pair_accuracy(out, pairs[:200]), 4),
        "held_out_accuracy": round(pair_accuracy(out, held_out), 4),
        "dir": str(out),
    }


def pair_accuracy(model_dir: Path | str, pairs: list[dict[str, Any]]) -> float:
    """Share of pairs whose chosen conversation the reward model scores above the rejected."""
    from filters.reward import LocalRewardModel

    scorer = LocalRewardModel(Path(model_dir))
    chosen = scorer.score_sync([p["chosen"] for p in pairs])
    rejected = scorer.score_sync([p["rejected"] for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / max(1, len(pairs))


__all__ = [
    "RewardModelConfig",
    "corrupt",
    "pair_accuracy",
    "preference_pairs",
    "train_reward_model",
]
