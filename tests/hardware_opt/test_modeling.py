import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from hardware_opt.export import load, save
from hardware_opt.modeling import AttentionConfig, BlockConfig, DeciConfig, FFNConfig, register
from hardware_opt.parent import deci_config_from_llama, from_llama


def test_llama_converts_exactly(tiny_llama_dir, tokenizer):
    llama = LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    model = from_llama(llama)
    ids = torch.randint(3, len(tokenizer), (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    with torch.no_grad():
        ref, got = llama(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits
    torch.testing.assert_close(got[0], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1, 5:], ref[1, 5:], atol=1e-5, rtol=1e-5)


def _heterogeneous(tiny_llama_dir):
    llama = LlamaForCausalLM.from_pretrained(tiny_llama_dir)
    config = deci_config_from_llama(llama.config)
    blocks = [
        BlockConfig(
            AttentionConfig(n_heads_in_group=2), FFNConfig(intermediate_size=16, ffn_mult=0.75)
        ),
        BlockConfig(
            AttentionConfig(no_op=True, n_heads_in_group=None), FFNConfig(replace_with_linear=True)
        ),
        BlockConfig(
            AttentionConfig(replace_with_linear=True, n_heads_in_group=None), FFNConfig(no_op=True)
        ),
        BlockConfig(
            AttentionConfig(n_heads_in_group=4), FFNConfig(intermediate_size=64, ffn_mult=3.0)
        ),
    ]
    data = config.to_dict()
    for key in ("block_configs", "model_type", "transformers_version"):
        data.pop(key, None)
    return DeciConfig(**data, block_configs=blocks)


def test_heterogeneous_checkpoint_reloads_and_generates(tiny_llama_dir, tokenizer, tmp_path):
    from hardware_opt.modeling import DeciForCausalLM

    torch.manual_seed(0)
    model = DeciForCausalLM(_heterogeneous(tiny_llama_dir)).eval()
    save(model, tokenizer, tmp_path, {"kind": "test"})
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "thinkmix_deci"
    assert written["block_configs"][1]["attention"]["no_op"] is True
    assert written["block_configs"][0]["attention"]["n_heads_in_group"] == 2
    assert written["block_configs"][0]["ffn"]["ffn_mult"] == 0.75

    register()
    auto = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = tokenizer("<|user|>hi<|end|><|assistant|>", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(auto(**ids).logits, model(**ids).logits)
    out = auto.generate(**ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 6
    # generation without a cache must match a manual greedy loop
    seq = ids["input_ids"]
    for _ in range(6):
        with torch.no_grad():
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)
    assert load(tmp_path).config.block(2).ffn.no_op


def test_auto_map_loads_with_trust_remote_code(tiny_llama_dir, tokenizer, tmp_path):
    from hardware_opt.modeling import DeciForCausalLM

    model = DeciForCausalLM(_heterogeneous(tiny_llama_dir)).eval()
    save(model, tokenizer, tmp_path, {})
    remote = AutoModelForCausalLM.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert type(remote).__name__ == "DeciForCausalLM"
    ids = torch.randint(3, len(tokenizer), (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(remote(ids).logits, model(ids).logits)


def test_block_configs_must_match_layers():
    with pytest.raises(ValueError, match="one per layer"):
        DeciConfig(num_hidden_layers=2, block_configs=[])
