"""`thinkmix train rloo`: trl RLOOTrainer with the instruction-following verifier reward.

arXiv 2505.00949 §6.1: after reasoning RL, a short RLOO run (REINFORCE with each sample's
baseline the mean reward of the other samples of its prompt) with the instruction-following
verifier as the reward. The rewards are plain batch functions: `instruction` (the share of a
row's constraints the answer meets, `filters.instructions.instruction_reward`),
`instruction_strict` (1.0 only when all are met), `accuracy` and `format`
(`training.rewards`); weights are configurable. Prompts are a version's unique prompts with
their toggle's system prompt and their `meta["constraints"]` (`training.rl_common.rl_prompt_rows`);
`write_constrained_version` makes such a version from `filters.constrained_prompts`.

The run directory holds `config.json`, `lineage.json`, `metrics.jsonl`, `checkpoint/` and
`summary.json`, as `thinkmix train grpo` writes them; the prompts' row ids go to lineage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curation.generation import GenerationRequest, SamplingParams
from curation.record import Record, record_id
from curation.store import Store
from curation.teacher.paths import resolve_model
from training.audit import audit_callbacks, trainer_audit
from training.rl_common import Run, cpu_trainer_args, rl_prompt_rows
from training.rloo_config import RLOORunConfig
from training.runlog import MetricsLog
from training.student import load_model, load_tokenizer, save_checkpoint

IFEVAL_PROMPTS = "ifeval-prompts"


def reward_functions(names: list[str]) -> list[Callable[..., list[float | None]]]:
    """The trl reward functions named in a config (see the module docstring)."""
    from filters.instructions import instruction_reward, instruction_reward_strict
    from training.rewards import REWARDS

    known = {**REWARDS, "instruction": instruction_reward,
             "instruction_strict": instruction_reward_strict}  # fmt: skip
    return [known[name] for name in names]


def _trl_config(config: RLOORunConfig, out: Path) -> Any:
    from trl import RLOOConfig

    return RLOOConfig(
        output_dir=str(out / "_trainer"),
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        beta=config.beta,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        reward_weights=config.reward_weights,
        normalize_advantages=config.normalize_advantages,
        use_vllm=config.use_vllm,
        vllm_mode="colocate",
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        **cpu_trainer_args(),
    )


def train_rloo(
    store: Store, data: str, model: str, out_dir: Path | str, config: RLOORunConfig | None = None
) -> dict[str, Any]:
    """RLOO from `model` (a dir or "embedded") on the prompts of version `data`; returns the
    run summary (reward means over the first and last third of the logged steps)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import RLOOTrainer

    config = config or RLOORunConfig()
    resolve_model(model)  # fail before any work when the dir is wrong
    run = Run.begin(store, "rloo", data, model, out_dir)
    rows = rl_prompt_rows(store.read_records(run.ref), config.reasoning)
    if config.max_prompts > 0:
        rows = rows[: config.max_prompts]
    if not rows:
        raise ValueError(f"{run.ref}: no prompt rows to train RLOO on")
    wants_constraints = any(name.startswith("instruction") for name in config.rewards)
    if wants_constraints and not any(r["constraints"] for r in rows):
        raise ValueError(
            f"{run.ref}: no row has meta.constraints for the instruction reward; build the "
            "prompts with filters.constrained_prompts (training.rloo.write_constrained_version)"
        )
    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    run.start(config, {"rloo": sorted({r["row_id"] for r in rows})})
    metrics = MetricsLog(run.out / "metrics.jsonl")
    audit = trainer_audit(config.audit_prompts)
    trainer = RLOOTrainer(
        model=load_model(model),
        reward_funcs=reward_functions(config.rewards),
        args=_trl_config(config, run.out),
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(model),
        callbacks=[metrics.callback("rloo"), *audit_callbacks(audit)],
    )
    t0 = time.monotonic()
    trainer.train()
    summary = {
        "run_id": run.run_id,
        "data": run.ref,
        "model": model,
        "prompts": len(rows),
        "steps": trainer.state.global_step,
        "train_seconds": round(time.monotonic() - t0, 1),
        "rewards": reward_trend(run.out / "metrics.jsonl", config.rewards),
    }
    if audit:
        summary["toggle_audit"] = audit.results
    summary["checkpoint"] = str(save_checkpoint(trainer.model, trainer.processing_class,
                                                run.out / "checkpoint"))  # fmt: skip
    return run.finish(summary)


def reward_trend(path: Path, rewards: list[str]) -> dict[str, Any]:
    """Mean of each reward over the first and the last third of the logged steps."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    names = {f.__name__: name for f, name in zip(reward_functions(rewards), rewards, strict=True)}
    out = {}
    for func_name, name in names.items():
        values = [r[f"rewards/{func_name}/mean"] for r in rows if f"rewards/{func_name}/mean" in r]
        values = [v for v in values if v == v]  # a step whose rewards were all None logs nan
        if values:
            third = max(1, len(values) // 3)
            out[name] = {"first": round(sum(values[:third]) / third, 4),
                         "last": round(sum(values[-third:]) / third, 4)}  # fmt: skip
    return out


def constrained_records(n: int, seed: int, dataset: str = IFEVAL_PROMPTS) -> list[Record]:
    """`filters.constrained_prompts` as prompt rows: constraints in `meta["constraints"]`."""
    from filters.constrained_prompts import constrained_prompts

    records = []
    for row in constrained_prompts(n, seed):
        turns = [{"role": "user", "content": row["prompt"]}]
        records.append(Record(
            id=record_id(dataset, row["id"], turns), input=turns,
            category="instruction following", license="Apache-2.0 (generated by thinkmix)",
            source="thinkmix.constrained_prompts", source_id=row["id"],
            expected_answer=row["expected_answer"],
            meta={"family": "ifeval", "constraints": json.dumps(row["constraints"])},
        ))  # fmt: skip
    return records


def write_constrained_version(
    store: Store, version: str, n: int, seed: int = 0, dataset: str = IFEVAL_PROMPTS
) -> str:
    """Commit `n` constrained prompts (seed `seed`) as `dataset/version`; returns the ref."""
    staging = store.staging(dataset, version)
    staging.mark_done(0, [staging.write_shard("train", 0, constrained_records(n, seed, dataset))])
    staging.commit({"recipe": {"source": "filters.constrained_prompts", "n": n, "seed": seed},
                    "shards": 1})  # fmt: skip
    return f"{dataset}/{version}"


def verifier_pass_rate(
    model: str, rows: list[dict[str, Any]], samples: int = 1, temperature: float = 0.0,
    max_tokens: int = 96, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """{"strict": share of answers meeting all their constraints, "loose": mean share of
    constraints met} over `samples` answers per prompt row (greedy by default): the RLOO
    evidence metric on held-out constrained prompts."""
    from filters.instructions import instruction_reward
    from generators.transformers_backend import TransformersBackend

    backend = TransformersBackend(model=model)
    sampling = SamplingParams(temperature, 1.0, max_tokens)
    requests = [GenerationRequest.build(r["prompt"], sampling, k, seed) for r in rows
                for k in range(samples)]  # fmt: skip
    texts = [r.text for r in backend.generate_sync(requests)]
    backend.close()
    shares = instruction_reward(texts, [r["constraints"] for r in rows for _ in range(samples)])
    judged = [s for s in shares if s is not None]
    if not judged:
        raise ValueError("no row has constraints to verify")
    return {"strict": round(sum(s == 1.0 for s in judged) / len(judged), 4),
            "loose": round(sum(judged) / len(judged), 4), "answers": len(judged)}  # fmt: skip


__all__ = [
    "IFEVAL_PROMPTS",
    "constrained_records",
    "reward_functions",
    "reward_trend",
    "train_rloo",
    "verifier_pass_rate",
    "write_constrained_version",
]
