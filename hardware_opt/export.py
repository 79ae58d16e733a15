"""Assemble a child from chosen candidates and write it as a DeciLM-style checkpoint.

The directory holds `config.json` (model_type `thinkmix_deci`, `block_configs`, and `auto_map`
pointing at two one-line shim files that import our modeling class, so
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` works offline wherever
thinkmix is installed), the weights, the parent's tokenizer, and a report JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hardware_opt.library import Candidate
from hardware_opt.modeling import (
    BlockConfig,
    DeciConfig,
    DeciForCausalLM,
    register,
)

_SHIMS = {
    "configuration_thinkmix_deci.py": "from hardware_opt.modeling import DeciConfig  # noqa: F401\n",
    "modeling_thinkmix_deci.py": (
        "from hardware_opt.modeling import DeciConfig, DeciForCausalLM  # noqa: F401\n"
    ),
}
AUTO_MAP = {
    "AutoConfig": "configuration_thinkmix_deci.DeciConfig",
    "AutoModelForCausalLM": "modeling_thinkmix_deci.DeciForCausalLM",
}


def child_config(parent: DeciForCausalLM, blocks: list[BlockConfig]) -> DeciConfig:
    data = parent.config.to_dict()
    for key in ("block_configs", "architectures", "auto_map", "transformers_version", "model_type"):
        data.pop(key, None)
    return DeciConfig(**data, block_configs=[b.to_dict() for b in blocks])


@torch.no_grad()
def assemble(parent: DeciForCausalLM, choice: list[tuple[Candidate, Candidate]]) -> DeciForCausalLM:
    """A new model: the parent's embeddings/head/final norm, and per layer the chosen blocks."""
    blocks = [BlockConfig(attn.config, ffn.config) for attn, ffn in choice]
    child = DeciForCausalLM(child_config(parent, blocks))
    child.model.embed_tokens.load_state_dict(parent.model.embed_tokens.state_dict())
    child.model.norm.load_state_dict(parent.model.norm.state_dict())
    child.lm_head.load_state_dict(parent.lm_head.state_dict())
    for layer, (attn, ffn) in zip(child.model.layers, choice, strict=True):
        layer.input_layernorm.load_state_dict(attn.norm.state_dict())
        layer.self_attn.load_state_dict(attn.module.state_dict())
        layer.post_attention_layernorm.load_state_dict(ffn.norm.state_dict())
        layer.mlp.load_state_dict(ffn.module.state_dict())
    if child.config.tie_word_embeddings:
        child.tie_weights()
    return child.float().eval()


def save(model: DeciForCausalLM, tokenizer, out: Path | str, report: dict) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.auto_map = dict(AUTO_MAP)
    model.generation_config.use_cache = False
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    for name, text in _SHIMS.items():
        (out / name).write_text(text)
    (out / "hardware_opt.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return out


def load(path: Path | str) -> DeciForCausalLM:
    register()
    return DeciForCausalLM.from_pretrained(Path(path), dtype=torch.float32).eval()
