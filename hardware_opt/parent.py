"""Load a parent model (a Llama or one of our DeciLM-style children) as a `DeciForCausalLM`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from hardware_opt.modeling import (
    MODEL_TYPE,
    AttentionConfig,
    BlockConfig,
    DeciConfig,
    DeciForCausalLM,
    register,
    swiglu_ffn,
)


def deci_config_from_llama(cfg: LlamaConfig) -> DeciConfig:
    """The homogeneous DeciLM config that is exactly this Llama (every layer full)."""
    if cfg.num_attention_heads % cfg.num_key_value_heads:
        raise ValueError("num_key_value_heads must divide num_attention_heads")
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    block = BlockConfig(
        AttentionConfig(n_heads_in_group=group), swiglu_ffn(cfg.intermediate_size, cfg.hidden_size)
    )
    rope = (cfg.rope_parameters or {}).get("rope_type", "default")
    if rope != "default":
        raise ValueError(f"rope_type {rope!r} is not supported; only the default Llama rotary")
    return DeciConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_theta=float(cfg.rope_parameters["rope_theta"]),
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        block_configs=[block.to_dict()] * cfg.num_hidden_layers,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
    )


def from_llama(llama: LlamaForCausalLM) -> DeciForCausalLM:
    """A `DeciForCausalLM` with the Llama's weights (same parameter names, same outputs)."""
    model = DeciForCausalLM(deci_config_from_llama(llama.config))
    state = {k: v for k, v in llama.state_dict().items() if "rotary_emb" not in k}
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def load_model(model_dir: Path | str) -> DeciForCausalLM:
    """Load `model_dir` (a Llama or a `thinkmix_deci` checkpoint) as a float32 eval model."""
    path = Path(model_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json (pass a local HF model directory)")
    model_type = json.loads(config_file.read_text())["model_type"]
    if model_type == MODEL_TYPE:
        register()
        return DeciForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    if model_type == "llama":
        return from_llama(LlamaForCausalLM.from_pretrained(path, dtype=torch.float32))
    raise ValueError(f"{path}: model_type {model_type!r} unsupported; give a llama or {MODEL_TYPE}")


def load_tokenizer(model_dir: Path | str):
    return AutoTokenizer.from_pretrained(Path(model_dir))
