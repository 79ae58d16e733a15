"""A DeciLM-style heterogeneous Llama: every layer picks its own attention and FFN block.

This is the architecture Puzzle (arXiv 2411.19146 §3) searches over and Nemotron-NAS checkpoints
ship: `config.block_configs[i]` says, per layer, whether attention is a no-op, a linear map or
grouped-query attention with `n_heads_in_group` query heads per KV head, and whether the FFN is a
no-op, a linear map or a SwiGLU of `intermediate_size` channels (`ffn_mult` is kept for DeciLM
compatibility). Parameter names follow `LlamaForCausalLM`, so a Llama state dict loads as is.

Design choices:
- Our own small modeling class, registered locally with the `Auto*` classes by `register()`;
  nothing is fetched from a hub, and exported checkpoints also carry `auto_map` files.
- No KV cache in `forward`: generation recomputes the prefix (fine for the tiny models this runs
  on in tests; the KV-cache cost Puzzle optimises is computed analytically in `costs.py`).
- Each layer exposes `attention_delta` and `ffn_delta` (a sublayer's residual contribution), the
  unit that BLD trains, scoring swaps and FFN Fusion fuses.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

MODEL_TYPE = "thinkmix_deci"


@dataclass(frozen=True)
class AttentionConfig:
    no_op: bool = False  # the sublayer is skipped entirely (no norm, no residual add)
    replace_with_linear: bool = False  # x + W @ norm(x), one hidden x hidden matrix
    n_heads_in_group: int | None = 1  # query heads per KV head (GQA ratio); None when not attention


@dataclass(frozen=True)
class FFNConfig:
    no_op: bool = False  # the sublayer is skipped entirely
    replace_with_linear: bool = False  # x + W @ norm(x)
    intermediate_size: int | None = None  # SwiGLU width; None when not a SwiGLU
    ffn_mult: float | None = None  # DeciLM's width knob, 3 * intermediate / (2 * hidden)


@dataclass(frozen=True)
class BlockConfig:
    attention: AttentionConfig
    ffn: FFNConfig

    def to_dict(self) -> dict:
        return {"attention": asdict(self.attention), "ffn": asdict(self.ffn)}

    @classmethod
    def from_dict(cls, data: dict) -> BlockConfig:
        return cls(AttentionConfig(**data["attention"]), FFNConfig(**data["ffn"]))


def swiglu_ffn(intermediate_size: int, hidden_size: int) -> FFNConfig:
    mult = round(3 * intermediate_size / (2 * hidden_size), 4)
    return FFNConfig(intermediate_size=intermediate_size, ffn_mult=mult)


class DeciConfig(PreTrainedConfig):
    model_type = MODEL_TYPE

    vocab_size: int = 104
    hidden_size: int = 160
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    head_dim: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    use_cache: bool = False
    block_configs: list | None = None  # one {"attention": {...}, "ffn": {...}} per layer

    def __post_init__(self, **kwargs):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.block_configs is None:
            raise ValueError("DeciConfig needs block_configs: one {attention, ffn} dict per layer")
        if len(self.block_configs) != self.num_hidden_layers:
            raise ValueError(
                f"block_configs has {len(self.block_configs)} entries for "
                f"num_hidden_layers={self.num_hidden_layers}; give one per layer"
            )
        self.block_configs = [
            b.to_dict() if isinstance(b, BlockConfig) else b for b in self.block_configs
        ]
        super().__post_init__(**kwargs)

    def block(self, index: int) -> BlockConfig:
        return BlockConfig.from_dict(self.block_configs[index])


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The norm without its gain (FFN Fusion folds gains into the next projections)."""
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.normalize(x)


def rotary(config: DeciConfig, position_ids: torch.Tensor, dtype: torch.dtype):
    """cos, sin of shape (batch, seq, head_dim) for rotary position embeddings (Llama style)."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    freqs = position_ids[..., None].float() * inv_freq.to(position_ids.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    """Grouped-query attention: `num_attention_heads // n_heads_in_group` KV heads."""

    def __init__(self, config: DeciConfig, n_heads_in_group: int):
        super().__init__()
        if config.num_attention_heads % n_heads_in_group:
            raise ValueError(
                f"n_heads_in_group={n_heads_in_group} must divide "
                f"num_attention_heads={config.num_attention_heads}"
            )
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_attention_heads // n_heads_in_group
        self.head_dim = config.head_dim
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos, sin, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        group = self.n_heads // self.n_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_proj(x)
        if torch.is_grad_enabled():
            return self.down_proj(F.silu(gate) * self.up_proj(x))
        # Without autograd SiLU and the product reuse the gate buffer: a fused FFN's
        # tokens x (k * width) intermediates are tens of MB at prefill, and each fresh one is a
        # new mmap whose page faults cost as much as the elementwise work (docs/hardware_opt.md).
        return self.down_proj(F.silu(gate, inplace=True).mul_(self.up_proj(x)))


class LinearBlock(nn.Module):
    """Puzzle's `replace_with_linear`: one square matrix in place of a whole sublayer."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, *_args) -> torch.Tensor:
        return self.linear(x)


def build_attention(config: DeciConfig, cfg: AttentionConfig) -> tuple[nn.Module, nn.Module]:
    """(norm, module) for an attention config; (Identity, Identity) marks a no-op."""
    if cfg.no_op:
        return nn.Identity(), nn.Identity()
    norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
    if cfg.replace_with_linear:
        return norm, LinearBlock(config.hidden_size)
    return norm, Attention(config, cfg.n_heads_in_group or 1)


def build_ffn(config: DeciConfig, cfg: FFNConfig) -> tuple[nn.Module, nn.Module]:
    if cfg.no_op:
        return nn.Identity(), nn.Identity()
    norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
    if cfg.replace_with_linear:
        return norm, LinearBlock(config.hidden_size)
    return norm, SwiGLU(config.hidden_size, cfg.intermediate_size)


class DecoderLayer(nn.Module):
    def __init__(self, config: DeciConfig, block: BlockConfig):
        super().__init__()
        self.attn_config, self.ffn_config = block.attention, block.ffn
        self.input_layernorm, self.self_attn = build_attention(config, block.attention)
        self.post_attention_layernorm, self.mlp = build_ffn(config, block.ffn)

    def set_attention(self, cfg: AttentionConfig, norm: nn.Module, module: nn.Module) -> None:
        self.attn_config, self.input_layernorm, self.self_attn = cfg, norm, module

    def set_ffn(self, cfg: FFNConfig, norm: nn.Module, module: nn.Module) -> None:
        self.ffn_config, self.post_attention_layernorm, self.mlp = cfg, norm, module

    def attention_delta(self, h: torch.Tensor, cos, sin, mask) -> torch.Tensor | None:
        if self.attn_config.no_op:
            return None
        return self.self_attn(self.input_layernorm(h), cos, sin, mask)

    def ffn_delta(self, h: torch.Tensor) -> torch.Tensor | None:
        if self.ffn_config.no_op:
            return None
        return self.mlp(self.post_attention_layernorm(h))

    def forward(self, h: torch.Tensor, cos, sin, mask) -> torch.Tensor:
        delta = self.attention_delta(h, cos, sin, mask)
        h = h if delta is None else h + delta
        delta = self.ffn_delta(h)
        return h if delta is None else h + delta


def attention_mask_4d(attention_mask: torch.Tensor | None, b: int, t: int, device) -> torch.Tensor:
    """Boolean (b, 1, t, t): causal and not padding; each query always sees itself (no NaN rows)."""
    causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()
    mask = causal.expand(b, 1, t, t)
    if attention_mask is not None:
        mask = mask & attention_mask.bool()[:, None, None, :]
    return mask | torch.eye(t, dtype=torch.bool, device=device)


class DeciPreTrainedModel(PreTrainedModel):
    config_class = DeciConfig
    base_model_prefix = "model"
    _no_split_modules = ["DecoderLayer"]
    _supports_sdpa = True

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # forward keeps no KV cache; generate recomputes the prefix

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)


class DeciModel(DeciPreTrainedModel):
    def __init__(self, config: DeciConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(config, config.block(i)) for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def prepare(self, input_ids, attention_mask=None, position_ids=None):
        """Embeddings, rotary (cos, sin) and the 4-d mask: everything a layer needs."""
        b, t = input_ids.shape
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(t, device=input_ids.device).expand(b, t)
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        h = self.embed_tokens(input_ids)
        cos, sin = rotary(self.config, position_ids, h.dtype)
        return h, cos, sin, attention_mask_4d(attention_mask, b, t, input_ids.device)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_kwargs):
        h, cos, sin, mask = self.prepare(input_ids, attention_mask, position_ids)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h)


class DeciForCausalLM(DeciPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DeciConfig):
        super().__init__(config)
        self.model = DeciModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        **_kwargs,
    ) -> CausalLMOutputWithPast:
        logits = self.lm_head(self.model(input_ids, attention_mask, position_ids))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **_kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def register() -> None:
    """Make `AutoConfig` / `AutoModelForCausalLM` know `thinkmix_deci` (idempotent, local only)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with contextlib.suppress(ValueError):  # already registered in this process
        AutoConfig.register(MODEL_TYPE, DeciConfig)
    with contextlib.suppress(ValueError):
        AutoModelForCausalLM.register(DeciConfig, DeciForCausalLM)
