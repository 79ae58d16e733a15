"""`thinkmix train grpo`: trl GRPOTrainer with verifier rewards, a pass-rate pre-filter and a
curriculum, on the prompts of a store version.

arXiv 2505.00949 §5. Steps: (1) unique prompts of the version with their toggle's system prompt
(`training.data.prompt_rows`); (2) pass rate of each under the starting policy, prompts with
pass rate >= 0.75 dropped (`training.prefilter`); (3) GRPO with `accuracy_reward` and
`format_reward` (`training.rewards`), drawing prompts easy -> hard through
`training.curriculum.CurriculumSampler` (or uniformly, `curriculum: false`).

The run directory holds `config.json`, `prefilter.jsonl` (every prompt's pass rate and fate),
`curriculum.json` (each generation batch's centre and mean difficulty), `metrics.jsonl`,
`checkpoint/`, `lineage.json` and `summary.json`; the kept prompts' row ids go to lineage.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from curation.store import Store
from curation.teacher.paths import resolve_model
from training.audit import audit_callbacks, trainer_audit
from training.config_io import config_dict
from training.curriculum import CurriculumSampler
from training.data import prompt_rows
from training.grpo_config import GRPORunConfig
from training.lineage import Lineage, RunInfo, new_run_id
from training.prefilter import prefilter
from training.rewards import REWARDS
from training.runlog import MetricsLog
from training.student import load_model, load_tokenizer, save_checkpoint


def _trl_config(config: GRPORunConfig, out: Path) -> Any:
    import torch
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out / "_trainer"),
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        beta=config.beta,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        loss_type=config.loss_type,
        reward_weights=config.reward_weights,
        use_vllm=config.use_vllm,
        vllm_mode="colocate",
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        activation_checkpointing=False,  # trl turns it on; at this size it only costs time
        bf16=False,  # float32 on CPU; bf16 autocast only slows tiny models down
    )


def make_trainer_class(config: GRPORunConfig, difficulty: list[float], schedule: list) -> type:
    """GRPOTrainer whose train sampler is the curriculum (or its uniform baseline)."""
    from trl import GRPOTrainer

    class CurriculumGRPOTrainer(GRPOTrainer):
        def _get_train_sampler(self, dataset=None):
            args = self.args
            per_batch = args.generation_batch_size // self.num_generations
            batches = math.ceil(args.max_steps * args.gradient_accumulation_steps
                                / args.steps_per_generation)  # fmt: skip
            sampler = CurriculumSampler(
                difficulty,
                batch_size=per_batch,
                num_batches=batches,
                mini_repeat_count=self.num_generations,
                repeat_count=self.num_iterations * args.steps_per_generation,
                bins=config.curriculum_bins,
                sigma=config.curriculum_sigma,
                uniform=not config.curriculum,
                seed=config.seed,
            )
            schedule[:] = [
                {"batch": b, "centre": round(sampler.centre(b), 4),
                 "mean_difficulty": round(sum(difficulty[i] for i in chunk) / len(chunk), 4),
                 "rows": chunk}
                for b, chunk in enumerate(sampler.batches())
            ]  # fmt: skip
            return sampler

    return CurriculumGRPOTrainer


def _prefiltered(store: Store, ref: str, model: str, config: GRPORunConfig, out: Path):
    rows = prompt_rows(store.read_records(ref), config.reasoning)
    if config.max_prompts > 0:
        rows = rows[: config.max_prompts]
    if not rows:
        raise ValueError(f"{ref}: no prompt rows with an expected_answer to train GRPO on")
    result = prefilter(
        model,
        rows,
        samples=config.prefilter_samples,
        drop_at_or_above=config.drop_pass_rate_at_or_above,
        drop_at_or_below=config.drop_pass_rate_at_or_below,
        reuse_scores=config.reuse_pass_rate,
        temperature=config.prefilter_temperature,
        top_p=config.prefilter_top_p,
        max_tokens=config.max_completion_length,
        seed=config.seed,
    )
    with (out / "prefilter.jsonl").open("w", encoding="utf-8") as handle:
        for row in result.kept + result.dropped:
            handle.write(json.dumps({"row_id": row["row_id"], "reasoning": row["reasoning"],
                                     "pass_rate": row["pass_rate"],
                                     "dropped": row.get("drop_reason")}) + "\n")  # fmt: skip
    if not result.kept:
        raise ValueError(
            f"the pass-rate pre-filter dropped every prompt ({result.summary()['dropped']}); "
            "raise drop_pass_rate_at_or_above, or use harder prompts"
        )
    return result


def train_grpo(
    store: Store, data: str, model: str, out_dir: Path | str, config: GRPORunConfig | None = None
) -> dict[str, Any]:
    """GRPO from `model` (a dir or "embedded") on version `data`; returns the run summary."""
    import torch
    from datasets import Dataset
    from transformers import set_seed

    config = config or GRPORunConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset, version = store.resolve(data)
    ref = f"{dataset}/{version}"
    resolve_model(model)  # fail before any work when the dir is wrong
    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    started = time.monotonic()
    filtered = _prefiltered(store, ref, model, config, out)
    prefilter_seconds = time.monotonic() - started
    kept = filtered.kept
    run_id = new_run_id("grpo", ref, out.resolve())
    rows = {"grpo": sorted({r["row_id"] for r in kept})}
    _write(out / "config.json", {"run_id": run_id, "data": ref, "model": model,
                                 "config": config_dict(config)})  # fmt: skip
    _write(out / "lineage.json", {"run_id": run_id, "version": ref, "rows": rows})
    with Lineage.open(store) as lineage:
        lineage.start(RunInfo(run_id, "grpo", dataset, version, model, str(out.resolve()),
                              config_dict(config), rows=rows))  # fmt: skip
    difficulty = [1.0 - r["pass_rate"] for r in kept]
    schedule: list = []
    trainer_cls = make_trainer_class(config, difficulty, schedule)
    metrics = MetricsLog(out / "metrics.jsonl")
    audit = trainer_audit(config.audit_prompts)
    trainer = trainer_cls(
        model=load_model(model),
        reward_funcs=[REWARDS[name] for name in config.rewards],
        args=_trl_config(config, out),
        train_dataset=Dataset.from_list(kept),
        processing_class=load_tokenizer(model),
        callbacks=[metrics.callback("grpo"), *audit_callbacks(audit)],
    )
    t0 = time.monotonic()
    trainer.train()
    summary = {
        "run_id": run_id,
        "data": ref,
        "model": model,
        "prefilter": {**filtered.summary(), "prompts": len(kept) + len(filtered.dropped),
                      "seconds": round(prefilter_seconds, 1)},
        "steps": trainer.state.global_step,
        "train_seconds": round(time.monotonic() - t0, 1),
        "rewards": _reward_trend(out / "metrics.jsonl", config.rewards, schedule),
        "curriculum": config.curriculum,
    }  # fmt: skip
    if audit:
        summary["toggle_audit"] = audit.results
    _write(out / "curriculum.json", schedule)
    summary["checkpoint"] = str(save_checkpoint(trainer.model, trainer.processing_class,
                                                out / "checkpoint"))  # fmt: skip
    _remove_tree(out / "_trainer")
    _write(out / "summary.json", summary)
    with Lineage.open(store) as lineage:
        lineage.finish(run_id, summary)
    return summary


def _reward_trend(path: Path, rewards: list[str], schedule: list[dict]) -> dict[str, Any]:
    """Mean of each reward over the first and the last third of the logged steps.

    With the curriculum the prompts get harder step by step, so a falling accuracy mean says
    nothing about the policy. `accuracy_over_pass_rate` compares each step's accuracy with the
    pre-filter pass rate of that step's prompts (the starting policy, sampled as the rollouts
    are): above 0 the policy solves its training prompts more often than it did at the start.
    It is biased a little upwards, since prompts whose estimate came out >= the cut were dropped.
    """
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: dict[str, Any] = {}
    for name in rewards:
        key = f"rewards/{name}_reward/mean"
        values = [r[key] for r in rows if key in r]
        if values:
            out[name] = _thirds(values)
        if name == "accuracy" and values and len(values) == len(schedule):
            # one generation batch per optimizer step (steps_per_generation = 1)
            starts = [1.0 - batch["mean_difficulty"] for batch in schedule]
            out["accuracy_over_pass_rate"] = _thirds(
                [v - s for v, s in zip(values, starts, strict=True)]
            )
    return out


def _thirds(values: list[float]) -> dict[str, float]:
    third = max(1, len(values) // 3)
    return {"first": round(sum(values[:third]) / third, 4),
            "last": round(sum(values[-third:]) / third, 4)}  # fmt: skip


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


__all__ = ["make_trainer_class", "train_grpo"]
