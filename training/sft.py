"""`thinkmix train sft`: trl SFTTrainer on a store version, with the reasoning toggle and stages.

Each row becomes system prompt (its toggle's "detailed thinking on/off") + prompt turns +
its `output` as the assistant turn (`training.data.sft_example`); the loss covers assistant
tokens only, through the `{% generation %}` markers of the embedded chat template, as
`curation/teacher/build.py` trains the teacher. A schedule runs its stages one after another on
the same weights (arXiv 2505.00949 §4.2, LN-Nano: reasoning-only -> mixed -> chat).

The run directory:

    RUN_DIR/config.json     the SFTRunConfig, the version, the run id
    RUN_DIR/metrics.jsonl   one line per logging step: stage, step, loss, learning rate
    RUN_DIR/checkpoint/     model + tokenizer (loads with transformers, trl, thinkmix train eval)
    RUN_DIR/lineage.json    the version and, per stage, the row ids trained on
    RUN_DIR/summary.json    first/last loss per stage, rows, steps, seconds

and the run's rows go to the store's lineage database (`training.lineage`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from curation.store import Store
from training.audit import audit_callbacks, trainer_audit
from training.config_io import config_dict
from training.data import select, sft_example
from training.lineage import Lineage, RunInfo, new_run_id
from training.runlog import MetricsLog
from training.sft_config import SFTRunConfig, SFTStage
from training.student import FRESH, fresh_student, load_model, load_tokenizer, save_checkpoint

log = logging.getLogger(__name__)


def _plan(records: list, config: SFTRunConfig) -> list[tuple[SFTStage, list]]:
    """Each stage with its rows; stages that select nothing are left out (and logged)."""
    plan = []
    for stage in config.stages():
        rows = [r for r in select(records, stage.reasoning, stage.categories) if r.output.strip()]
        if rows:
            plan.append((stage, rows))
        else:
            log.warning("sft stage %s: no rows match; skipped", stage.name)
    if not plan:
        raise ValueError(
            "no rows to train on: the version has no rows with an output matching any stage "
            "(check the schedule's reasoning/categories, or the version's train split)"
        )
    return plan


def _trl_config(config: SFTRunConfig, stage: SFTStage, out: Path) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out / "_trainer"),
        num_train_epochs=stage.epochs if stage.epochs > 0 else 1.0,
        max_steps=stage.max_steps if stage.max_steps > 0 else -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the steps
        weight_decay=config.weight_decay,
        assistant_only_loss=config.assistant_only_loss,
        packing=config.packing,
        max_length=config.max_length,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=True,
        activation_checkpointing=False,  # trl turns it on; at this size it only costs time
        bf16=False,  # trl defaults to bf16 autocast; float32 is faster for tiny CPU models
    )


def train_sft(
    store: Store, data: str, out_dir: Path | str, config: SFTRunConfig | None = None
) -> dict[str, Any]:
    """Train on version `data` (a ref `store.resolve` accepts); returns the run summary."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    config = config or SFTRunConfig()
    out = Path(out_dir)
    dataset, version = store.resolve(data)
    ref = f"{dataset}/{version}"
    records = store.read_records(ref)
    plan = _plan(records, config)
    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    tokenizer = load_tokenizer(config.model)
    if config.model == FRESH:
        model = fresh_student(
            config.student_hidden, config.student_layers, config.student_heads, config.seed
        )
    else:
        model = load_model(config.model)
    run_id = new_run_id("sft", ref, out.resolve())
    rows = {stage.name: [r.id for r in stage_rows] for stage, stage_rows in plan}
    run = RunInfo(run_id, "sft", dataset, version, config.model, str(out.resolve()),
                  config_dict(config), rows=rows)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {"run_id": run_id, "data": ref, "config": config_dict(config)})
    _write_json(out / "lineage.json", {"run_id": run_id, "version": ref, "rows": rows})
    with Lineage.open(store) as lineage:
        lineage.start(run)
    metrics = MetricsLog(out / "metrics.jsonl")
    audit = trainer_audit(config.audit_prompts)
    summary: dict[str, Any] = {"run_id": run_id, "data": ref, "stages": [],
                               "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
    started = time.monotonic()
    for stage, stage_rows in plan:
        examples = Dataset.from_list([sft_example(r) for r in stage_rows])
        trainer = SFTTrainer(
            model=model,
            args=_trl_config(config, stage, out),
            train_dataset=examples,
            processing_class=tokenizer,
            callbacks=[metrics.callback(stage.name), *audit_callbacks(audit)],
        )
        result = trainer.train()
        losses = metrics.losses(stage.name)
        summary["stages"].append(
            {"name": stage.name, "rows": len(stage_rows), "steps": trainer.state.global_step,
             "train_loss": round(result.training_loss, 4),
             "first_loss": losses[0] if losses else None,
             "last_loss": losses[-1] if losses else None}
        )  # fmt: skip
        model = trainer.model
    if audit:
        summary["toggle_audit"] = audit.results
    summary["train_seconds"] = round(time.monotonic() - started, 1)
    summary["checkpoint"] = str(save_checkpoint(model, tokenizer, out / "checkpoint"))
    _remove_tree(out / "_trainer")
    _write_json(out / "summary.json", summary)
    with Lineage.open(store) as lineage:
        lineage.finish(run_id, summary)
    return summary


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


__all__ = ["train_sft"]
