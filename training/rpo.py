r"""`thinkmix train rpo`: reward-aware preference optimisation on trl's DPOTrainer.

RPO (Nemotron-4 340B, arXiv 2406.11704 §3.2.3; the Llama-Nemotron chat stage, arXiv 2505.00949
§6.2) does not only ask the policy to prefer the chosen answer, as DPO does: it pulls the
policy's implicit reward gap toward the reward model's gap, so a pair the reward model barely
separates moves the policy little and a clear one moves it a lot:

    L(x, y_w, y_l) = D[ r_pi(x, y_w) - r_pi(x, y_l)  ||  eta * (r*(x, y_w) - r*(x, y_l)) ]
    r_pi(x, y)     = beta * log(pi(y|x) / pi_ref(y|x))
    D[a || b]      = sig(b) log(sig(b) / sig(a)) + (1 - sig(b)) log((1 - sig(b)) / (1 - sig(a)))

D is the KL divergence from Bernoulli(sig(b)) (the reward model's preference probability) to
Bernoulli(sig(a)) (the policy's), "bwd_kl" below; it is >= 0 and 0 exactly when a == b.
`fwd_kl` (the KL the other way) and `squared` ((a - b)^2) are the alternatives NeMo-Aligner
offers; each is also 0 exactly when the gaps agree.

Modes:
- offline (`--data` a preference version built by `curation/recipes/preference.yaml`): one round
  on its pairs (`output` chosen, `meta["rejected"]`, `scores["reward_chosen"/"reward_rejected"]`);
- online (`--online`, `--data` a version of prompts): `iterations` rounds of sample k answers per
  prompt from the current policy -> score them with the reward model -> best/worst pairs with a
  minimum margin (`generators.preference_pairs.pick_pair`) -> one round of training, the
  round's starting policy as its reference. The mean reward of each round's samples is logged,
  and of the final policy's, so the run shows whether the reward went up.

The run directory holds `config.json`, `lineage.json`, `metrics.jsonl`, `rounds.jsonl` (online:
each round's pairs and mean reward), `checkpoint/` and `summary.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from curation.generation import GenerationRequest, SamplingParams
from curation.store import Store
from curation.teacher.paths import resolve_model
from filters.answers import strip_think
from generators.preference_pairs import pick_pair
from training.rl_common import Run, cpu_trainer_args, remove_tree, rl_prompt_rows
from training.rpo_config import RPORunConfig
from training.runlog import MetricsLog
from training.student import load_model, load_tokenizer, save_checkpoint


def implicit_reward_gap(
    chosen_logps: Any, rejected_logps: Any, ref_chosen_logps: Any, ref_rejected_logps: Any,
    beta: float,
) -> Any:  # fmt: skip
    """r_pi(x, y_w) - r_pi(x, y_l) with r_pi = beta * log(pi / pi_ref), from summed log-probs."""
    return beta * ((chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps))


def rpo_loss(policy_gap: Any, reward_gap: Any, eta: float = 1.0, distance: str = "bwd_kl") -> Any:
    """Per-pair RPO loss D[policy_gap || eta * reward_gap] (see the module docstring).

    `policy_gap` is `implicit_reward_gap(...)` (beta already applied), `reward_gap` the reward
    model's r*(y_w) - r*(y_l). Computed with log-sigmoids, so large gaps give no inf/nan.

        >>> import math, torch
        >>> round(rpo_loss(torch.tensor(0.0), torch.tensor(math.log(3))).item(), 6)
        0.130812
    """
    import torch.nn.functional as F

    a, b = policy_gap, eta * reward_gap
    if distance == "bwd_kl":  # KL(Bern(sig(b)) || Bern(sig(a))), arXiv 2406.11704 §3.2.3
        return (F.logsigmoid(b).exp() * (F.logsigmoid(b) - F.logsigmoid(a))
                + F.logsigmoid(-b).exp() * (F.logsigmoid(-b) - F.logsigmoid(-a)))  # fmt: skip
    if distance == "fwd_kl":  # KL(Bern(sig(a)) || Bern(sig(b)))
        return (F.logsigmoid(a).exp() * (F.logsigmoid(a) - F.logsigmoid(b))
                + F.logsigmoid(-a).exp() * (F.logsigmoid(-a) - F.logsigmoid(-b)))  # fmt: skip
    if distance == "squared":
        return (a - b) ** 2
    raise ValueError(f"distance must be bwd_kl, fwd_kl or squared, got {distance!r}")


class RewardPairCollator:
    """trl's preference collator plus the reward model's scores of each pair, as tensors."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.inner(examples)
        for key in ("chosen_reward", "rejected_reward"):
            batch[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float32)
        return batch


def make_rpo_trainer_class() -> type:
    """A DPOTrainer whose loss is `rpo_loss`; pairs carry `chosen_reward` / `rejected_reward`."""
    from trl import DPOTrainer

    class RPOTrainer(DPOTrainer):
        def __init__(self, *args: Any, eta: float = 1.0, distance: str = "bwd_kl", **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.eta, self.distance = eta, distance
            self.data_collator = RewardPairCollator(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            self._signature_columns = [*self._signature_columns, "chosen_reward", "rejected_reward"]

        def _sequence_logps(self, model, inputs):
            """Summed log-probs of each completion (rows: chosen half, then rejected half)."""
            mask = inputs["completion_mask"]
            labels = inputs["input_ids"].masked_fill(mask == 0, -100)
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        labels=labels, use_cache=False, fused_lm_head=True)  # fmt: skip
            return out.log_probs[:, -(mask.size(1) - 1) :].sum(dim=1)  # -100 positions are 0

        def _compute_loss(self, model, inputs, return_outputs):
            mode = "train" if self.model.training else "eval"
            inputs = dict(inputs)
            reward_gap = inputs.pop("chosen_reward") - inputs.pop("rejected_reward")
            chosen, rejected = self._sequence_logps(model, inputs).chunk(2, dim=0)
            if "ref_chosen_logps" in inputs:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model, inputs)
            gap = implicit_reward_gap(chosen, rejected, ref_chosen, ref_rejected, self.beta)
            loss = rpo_loss(gap, reward_gap.to(gap.dtype), self.eta, self.distance).mean()
            metrics = self._metrics[mode]
            metrics["rpo/policy_gap"].append(gap.detach().mean().item())
            metrics["rpo/target_gap"].append((self.eta * reward_gap).mean().item())
            metrics["rewards/accuracies"].append((gap.detach() > 0).float().mean().item())
            metrics["logps/chosen"].append(chosen.detach().mean().item())
            metrics["logps/rejected"].append(rejected.detach().mean().item())
            return (loss, None) if return_outputs else loss

    return RPOTrainer


def version_pairs(store: Store, ref: str) -> list[dict[str, Any]]:
    """Trainer examples from a preference version's rows (see `generators.preference_pairs`)."""
    examples = []
    for record in store.read_records(ref):
        missing = [k for k in ("reward_chosen", "reward_rejected") if k not in record.scores]
        if "rejected" not in record.meta or missing:
            raise ValueError(
                f"{ref}: row {record.id} is no preference pair (needs meta.rejected and "
                "scores.reward_chosen/reward_rejected); build the version with "
                "curation/recipes/preference.yaml, or train with --online on a prompt version"
            )
        turns = [{"role": m["role"], "content": m["content"]} for m in record.input
                 if m.get("role") != "system"]  # fmt: skip
        system = record.system_prompt or ""
        examples.append(pair_example(turns, system, record.output, record.meta["rejected"],
                                     record.scores["reward_chosen"],
                                     record.scores["reward_rejected"], record.id))  # fmt: skip
    if not examples:
        raise ValueError(f"{ref}: no preference pairs to train on")
    return examples


def pair_example(
    turns: list[dict[str, str]], system: str, chosen: str, rejected: str,
    chosen_reward: float, rejected_reward: float, row_id: str,
) -> dict[str, Any]:  # fmt: skip
    """One conversational DPOTrainer example with its reward-model scores."""
    prompt = ([{"role": "system", "content": system}] if system else []) + turns
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "chosen_reward": float(chosen_reward),
        "rejected_reward": float(rejected_reward),
        "row_id": row_id,
    }


def sample_and_score(
    model: str, rows: list[dict[str, Any]], scorer: Any, config: RPORunConfig, seed: int
) -> list[list[tuple[str, float]]]:
    """k policy answers per prompt row, each with its reward-model score (answer after
    `</think>` unless `score_think`, as `filters.reward_model` scores)."""
    from generators.transformers_backend import TransformersBackend

    backend = TransformersBackend(model=model)
    sampling = SamplingParams(config.temperature, config.top_p, config.max_completion_length)
    k = config.samples_per_prompt
    requests = [GenerationRequest.build(row["prompt"], sampling, i, seed) for row in rows
                for i in range(k)]  # fmt: skip
    texts = [r.text for r in backend.generate_sync(requests)]
    backend.close()
    conversations = []
    for n, text in enumerate(texts):
        turns = [m for m in rows[n // k]["prompt"] if m["role"] != "system"]
        answer = text if config.score_think else strip_think(text)
        conversations.append([*turns, {"role": "assistant", "content": answer}])
    scores = scorer.score_sync(conversations)
    return [list(zip(texts[i * k : (i + 1) * k], scores[i * k : (i + 1) * k], strict=True))
            for i in range(len(rows))]  # fmt: skip


def mean_policy_reward(
    model: str, rows: list[dict[str, Any]], reward_model: str, config: RPORunConfig, seed: int = 0
) -> float:
    """Mean reward-model score of k sampled answers per prompt: the RPO evidence metric."""
    from filters.reward import LocalRewardModel

    scored = sample_and_score(model, rows, LocalRewardModel(Path(reward_model)), config, seed)
    values = [s for group in scored for _, s in group]
    return sum(values) / len(values)


def online_pairs(
    scored: list[list[tuple[str, float]]], rows: list[dict[str, Any]], min_margin: float
) -> list[dict[str, Any]]:
    """Best/worst pair of each prompt's scored samples, when their gap >= min_margin."""
    examples = []
    for row, group in zip(rows, scored, strict=True):
        picked = pick_pair([s for _, s in group], min_margin)
        if picked is None:
            continue
        (chosen, r_w), (rejected, r_l) = group[picked[0]], group[picked[1]]
        turns = [m for m in row["prompt"] if m["role"] != "system"]
        system = next((m["content"] for m in row["prompt"] if m["role"] == "system"), "")
        examples.append(pair_example(turns, system, chosen, rejected, r_w, r_l, row["row_id"]))
    return examples


def _trl_config(config: RPORunConfig, out: Path) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(out / "_trainer"),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        beta=config.beta,
        max_length=config.max_length,
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        **cpu_trainer_args(),
    )


def train_round(
    model: str, examples: list[dict[str, Any]], config: RPORunConfig, out: Path,
    metrics: MetricsLog, part: str, checkpoint: Path,
) -> int:  # fmt: skip
    """One round of RPO from `model` (also the reference) on `examples`; saves `checkpoint`.
    Returns the optimizer steps taken."""
    from datasets import Dataset

    trainer = make_rpo_trainer_class()(
        model=load_model(model),
        ref_model=load_model(model),
        args=_trl_config(config, out),
        train_dataset=Dataset.from_list(examples),
        processing_class=load_tokenizer(model),
        callbacks=[metrics.callback(part)],
        eta=config.eta,
        distance=config.distance,
    )
    if len(trainer.train_dataset) == 0:
        raise ValueError(
            f"max_length {config.max_length}: every prompt fills it, so no answer token is left "
            f"to train on; raise max_length"
        )
    trainer.train()
    save_checkpoint(trainer.model, trainer.processing_class, checkpoint)
    return trainer.state.global_step


def train_rpo(
    store: Store, data: str, model: str, out_dir: Path | str, config: RPORunConfig | None = None
) -> dict[str, Any]:
    """RPO from `model` (a dir or "embedded") on version `data`: its preference pairs (offline)
    or its prompts (`config.online`); returns the run summary."""
    import torch
    from transformers import set_seed

    config = config or RPORunConfig()
    resolve_model(model)  # fail before any work when the dir is wrong
    run = Run.begin(store, "rpo", data, model, out_dir)
    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    metrics = MetricsLog(run.out / "metrics.jsonl")
    checkpoint = run.out / "checkpoint"
    t0 = time.monotonic()
    if not config.online:
        examples = version_pairs(store, run.ref)
        run.start(config, {"rpo": sorted({e["row_id"] for e in examples})})
        steps = train_round(model, examples, config, run.out, metrics, "rpo", checkpoint)
        rounds = [{"round": 0, "part": "rpo", "pairs": len(examples), "steps": steps}]
    else:
        rounds = _online(store, run, model, config, metrics, checkpoint)
    summary = {
        "run_id": run.run_id,
        "data": run.ref,
        "model": model,
        "mode": "online" if config.online else "offline",
        "rounds": rounds,
        "steps": sum(r["steps"] for r in rounds),
        "losses": {"first": _mean(metrics.losses(rounds[0]["part"])[:3]),
                   "last": _mean(metrics.losses(rounds[-1]["part"])[-3:])},
        "train_seconds": round(time.monotonic() - t0, 1),
        "checkpoint": str(checkpoint),
    }  # fmt: skip
    if config.online:
        summary["mean_reward"] = [r["mean_reward"] for r in rounds] + [rounds[-1]["final_reward"]]
    return run.finish(summary)


def _online(
    store: Store, run: Run, model: str, config: RPORunConfig, metrics: MetricsLog, checkpoint: Path
) -> list[dict[str, Any]]:
    from filters.reward import LocalRewardModel

    rows = rl_prompt_rows(store.read_records(run.ref), config.reasoning)
    if config.max_prompts > 0:
        rows = rows[: config.max_prompts]
    if not rows:
        raise ValueError(f"{run.ref}: no prompts to sample answers for")
    scorer = LocalRewardModel(Path(resolve_model(config.reward_model)))
    run.start(config, {"rpo": sorted({r["row_id"] for r in rows})})
    policy, rounds = model, []
    for it in range(config.iterations):
        scored = sample_and_score(policy, rows, scorer, config, config.seed + it)
        examples = online_pairs(scored, rows, config.min_margin)
        record = {"round": it, "part": f"rpo-{it}", "prompts": len(rows), "pairs": len(examples),
                  "mean_reward": round(_mean([s for g in scored for _, s in g]), 4)}  # fmt: skip
        if not examples:
            raise ValueError(
                f"round {it}: no prompt had two answers {config.min_margin} reward apart; lower "
                "min_margin, raise samples_per_prompt or temperature"
            )
        target = checkpoint if it == config.iterations - 1 else run.out / f"round-{it}"
        record["steps"] = train_round(
            policy, examples, config, run.out, metrics, record["part"], target
        )
        policy = str(target)
        rounds.append(record)
        with (run.out / "rounds.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    final = sample_and_score(policy, rows, scorer, config, config.seed + config.iterations)
    rounds[-1]["final_reward"] = round(_mean([s for g in final for _, s in g]), 4)
    for it in range(config.iterations - 1):
        remove_tree(run.out / f"round-{it}")
    return rounds


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


__all__ = [
    "RewardPairCollator",
    "implicit_reward_gap",
    "make_rpo_trainer_class",
    "mean_policy_reward",
    "online_pairs",
    "pair_example",
    "rpo_loss",
    "sample_and_score",
    "train_rpo",
    "version_pairs",
]
