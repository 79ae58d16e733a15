"""Train the embedded teacher: tinyworld data -> char tokenizer -> tiny Llama -> trl SFT -> eval.

Design choices, all for a model that trains in minutes on two CPU cores and stays imperfect:
- one token per character (see `tokenizer.py`), so arithmetic happens digit by digit;
- a 4-layer Llama (SwiGLU, RoPE, tied embeddings) of about 1.3M parameters;
- trl `SFTTrainer` with `assistant_only_loss`: the loss covers the answer and its end token;
- the learning rate follows a cosine over the wall-clock budget, and a callback stops the run
  when the budget is spent, so `minutes` bounds training on any machine (pass `max_steps` for a
  step-exact, machine-independent schedule instead).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curation.record import SYSTEM_PROMPTS
from curation.teacher.evaluate import EVAL_PER_FAMILY
from curation.teacher.paths import EMBEDDED_DIR, resolve_model
from curation.tinyworld import FAMILIES, format_output, generate

log = logging.getLogger(__name__)

TRAIN_SEED_OFFSET = 0  # training tasks use seeds `seed + 0..`; evaluate.py uses a disjoint seed
FAMILY_WEIGHTS = {"math": 0.5, "code": 0.125, "mcq": 0.25, "instruct": 0.125}
REASONING_ON_SHARE = 0.6

__all__ = ["EMBEDDED_DIR", "build_teacher", "make_conversations", "resolve_model"]


def make_conversations(total: int, seed: int) -> list[dict[str, Any]]:
    """`total` chat rows mixing every family and both reasoning toggles, shuffled by `seed`."""
    rng = random.Random(seed)
    rows = []
    for family in FAMILIES:
        for task in generate(
            family, round(total * FAMILY_WEIGHTS[family]), seed + TRAIN_SEED_OFFSET
        ):
            toggle = "on" if rng.random() < REASONING_ON_SHARE else "off"
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPTS[toggle]},
                        {"role": "user", "content": task.prompt},
                        {"role": "assistant", "content": format_output(task, toggle == "on")},
                    ]
                }
            )
    rng.shuffle(rows)
    return rows


def _model(tokenizer: Any, hidden: int, layers: int, heads: int, seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _time_budget(minutes: float, start: list[float]) -> tuple[Callable[[int], float], Any]:
    """A wall-clock cosine LR factor and a callback that stops training when time is up."""
    from transformers import TrainerCallback

    budget = minutes * 60.0

    def factor(step: int) -> float:
        if not start:
            return 0.1
        frac = min(1.0, (time.monotonic() - start[0]) / budget)
        warm = min(1.0, (step + 1) / 30)
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    class StopAtBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            start[:] = [time.monotonic()]

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() - start[0] >= budget:
                control.should_training_stop = True

    return factor, StopAtBudget()


def build_teacher(
    out_dir: str | Path = EMBEDDED_DIR,
    minutes: float = 30.0,
    seed: int = 0,
    *,
    examples: int = 30000,
    hidden: int = 160,
    layers: int = 4,
    heads: int = 4,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    max_steps: int | None = 1000,
    eval_per_family: int = EVAL_PER_FAMILY,
) -> dict[str, Any]:
    """Generate data, train, save to `out_dir`, evaluate, write `eval.json`; return the report."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from curation.teacher.tokenizer import build_tokenizer

    torch.set_num_threads(2)
    set_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    model = _model(tokenizer, hidden, layers, heads, seed)
    params = sum(p.numel() for p in model.parameters())
    log.info("teacher: %d parameters, %d examples", params, examples)
    dataset = Dataset.from_list(make_conversations(examples, seed))

    start: list[float] = []
    factor, stopper = _time_budget(minutes, start)
    steps = max_steps or 10**6
    if max_steps:  # step-exact cosine instead of the wall-clock one

        def factor(step: int) -> float:
            warm = min(1.0, (step + 1) / 30)
            return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps))))

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=0.01, betas=(0.9, 0.98)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    config = SFTConfig(
        output_dir=str(out / "_run"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        assistant_only_loss=True,
        max_length=512,
        logging_steps=25,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=True,
        activation_checkpointing=False,  # trl turns it on; at this size it only costs time
        bf16=False,  # trl defaults to bf16 autocast; float32 is faster for tiny CPU models
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        optimizers=(optimizer, scheduler),
        callbacks=[stopper],
    )
    t0 = time.monotonic()
    result = trainer.train()
    train_seconds = time.monotonic() - t0
    model.config.use_cache = True  # trl turns it off for training; serving wants it
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _remove_tree(out / "_run")

    report: dict[str, Any] = {
        "parameters": params,
        "train_seconds": round(train_seconds, 1),
        "train_steps": trainer.state.global_step,
        "train_loss": round(result.training_loss, 4),
        "examples_seen": trainer.state.global_step * batch_size,
        "seed": seed,
        "config": {"hidden": hidden, "layers": layers, "heads": heads, "batch_size": batch_size,
                   "learning_rate": learning_rate, "minutes": minutes, "max_steps": max_steps},
    }  # fmt: skip
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")  # kept if eval fails
    from curation.teacher.evaluate import evaluate_teacher

    report["eval"] = evaluate_teacher(out, per_family=eval_per_family)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)
