"""The default SFT starting point: a fresh tiny student in the embedded teacher's family.

Same architecture as `curation/teacher_model` (Llama: SwiGLU, RoPE, tied embeddings) and the
teacher's own character tokenizer with its `{% generation %}` chat template, randomly
initialised at a size of your choosing. A model dir (or "embedded") loads as it is instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.teacher.paths import EMBEDDED_DIR, resolve_model

FRESH = "fresh"


def load_tokenizer(model: str = FRESH) -> Any:
    """The model dir's tokenizer; a fresh student uses the embedded teacher's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(EMBEDDED_DIR if model == FRESH else resolve_model(model))


def fresh_student(hidden: int = 128, layers: int = 4, heads: int = 4, seed: int = 0) -> Any:
    """A randomly initialised Llama with the teacher's vocabulary and special tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if hidden % heads:
        raise ValueError(f"student_hidden ({hidden}) must be a multiple of student_heads ({heads})")
    config = AutoConfig.from_pretrained(EMBEDDED_DIR)
    config.hidden_size = hidden
    config.intermediate_size = hidden * 8 // 3 // 16 * 16  # as curation/teacher/build.py
    config.num_hidden_layers = layers
    config.num_attention_heads = heads
    config.num_key_value_heads = heads
    config.head_dim = hidden // heads
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def load_model(model: str) -> Any:
    """A model dir or "embedded", loaded in float32 for CPU training."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model(model), dtype=torch.float32)


def save_checkpoint(model: Any, tokenizer: Any, out: Path) -> Path:
    """Save model + tokenizer so `TransformersBackend`, trl and `thinkmix train eval` load it."""
    model.config.use_cache = True  # trl turns it off for training; generation wants it
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


__all__ = ["FRESH", "fresh_student", "load_model", "load_tokenizer", "save_checkpoint"]
