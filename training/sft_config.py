"""`thinkmix train sft` settings: one flat dataclass, loadable from YAML (`load_config`).

Defaults fit the embedded default (a ~0.5M-parameter char-level student on two CPU cores);
where the paper gives a value for its own models it is cited beside the field.

    # sft.yaml
    learning_rate: 0.003
    schedule: ln-nano            # or a list of stages:
    # schedule:
    #   - {name: reasoning, reasoning: "on", categories: [math, code, science], epochs: 2}
    #   - {name: mixed, epochs: 1}
"""

from __future__ import annotations

from dataclasses import dataclass, field

# arXiv 2505.00949 §4.2: LN-Nano's three SFT stages. Stage 1: reasoning-only code, math and
# science (the paper: 4 epochs at lr 1e-4); stage 2: reasoning mixed with non-reasoning samples
# (teaches the toggle); stage 3: a smaller chat / instruction-following / tool-calling blend.
LN_NANO = [
    {"name": "reasoning", "reasoning": "on", "categories": ["math", "code", "science"], "epochs": 4.0},
    {"name": "mixed", "reasoning": "any", "categories": [], "epochs": 1.0},
    {"name": "chat", "reasoning": "any", "categories": ["chat", "instruction following", "safety"], "epochs": 1.0},
]  # fmt: skip
PRESETS = {"ln-nano": LN_NANO}


@dataclass
class SFTStage:
    """One stage of a multi-stage schedule: which rows, for how long."""

    name: str  # shown in metrics and lineage ("reasoning", "mixed", ...)
    reasoning: str = "any"  # rows with this toggle: on, off or any
    categories: list[str] = field(default_factory=list)  # category or tinyworld family; [] = all
    epochs: float = 1.0  # passes over this stage's rows
    max_steps: int = 0  # > 0: stop the stage after this many optimizer steps instead

    def __post_init__(self) -> None:
        if self.reasoning not in ("on", "off", "any"):
            raise ValueError(f"stage {self.name!r}: reasoning must be on, off or any")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError(f"stage {self.name!r}: set epochs > 0 or max_steps > 0")


@dataclass
class SFTRunConfig:
    """Everything `training.sft.train_sft` needs besides the data and the output dir."""

    model: str = (
        "fresh"  # "fresh" = a new tiny student (teacher's family); else "embedded" or a dir
    )
    student_hidden: int = 128  # fresh student: hidden size (the teacher has 160)
    student_layers: int = 4  # fresh student: layers
    student_heads: int = 4  # fresh student: attention heads
    learning_rate: float = 3e-3  # tiny char-level student; the paper's LN-Nano used 1e-4 (§4.2)
    lr_scheduler: str = "cosine"  # any transformers scheduler name
    warmup_ratio: float = 0.05  # LN-Ultra warmed up over 10% (§4.2)
    weight_decay: float = 0.01
    batch_size: int = 32  # rows per optimizer step
    epochs: float = 1.0  # passes over the data when there is no schedule
    max_steps: int = 0  # > 0: optimizer steps when there is no schedule (overrides epochs)
    max_length: int = 512  # tokens per row (the embedded tokenizer's limit)
    packing: bool = False  # pack rows into max_length sequences (LN-Ultra used packing, §4.2)
    assistant_only_loss: bool = True  # loss on assistant tokens only (`{% generation %}` markers)
    schedule: list[SFTStage] | str = field(default_factory=list)  # [] = one stage; "ln-nano" preset
    seed: int = 0  # init, data order
    logging_steps: int = 5  # metrics.jsonl gets a line every this many steps
    threads: int = 2  # torch CPU threads
    # > 0: the toggle audit (training/audit.py) on this many held-out tinyworld prompts at train
    # begin and end; the results go to summary.json's `toggle_audit`
    audit_prompts: int = 0

    def __post_init__(self) -> None:
        if self.audit_prompts < 0:
            raise ValueError(f"audit_prompts must be >= 0, got {self.audit_prompts}")
        if isinstance(self.schedule, str):
            if self.schedule not in PRESETS:
                raise ValueError(
                    f"schedule: unknown preset {self.schedule!r}; known: {', '.join(PRESETS)}"
                )
            self.schedule = [SFTStage(**s) for s in PRESETS[self.schedule]]
        if self.learning_rate <= 0 or self.batch_size < 1 or self.max_length < 16:
            raise ValueError("learning_rate must be > 0, batch_size >= 1, max_length >= 16")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set epochs > 0 or max_steps > 0")

    def stages(self) -> list[SFTStage]:
        """The schedule, or one stage over every row."""
        if self.schedule:
            return list(self.schedule)  # type: ignore[arg-type]
        return [SFTStage(name="all", epochs=self.epochs, max_steps=self.max_steps)]


__all__ = ["LN_NANO", "PRESETS", "SFTRunConfig", "SFTStage"]
