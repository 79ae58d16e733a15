"""A tiny random Llama (4 layers, hidden 32) with the embedded teacher's char tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from curation.teacher.paths import resolve_model
from hardware_opt.calibration import CalibrationParams
from hardware_opt.cli import opt_app
from hardware_opt.parent import load_model


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matmuls are far slower with 2 intra-op threads on a busy 2-core box; restore after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # break the symmetry of ones-initialised norms, so folding is tested
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def tiny_model(tiny_llama_dir):
    return load_model(tiny_llama_dir)


@pytest.fixture
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


SMALL_CALIBRATION = CalibrationParams(seq_len=32, train_blocks=8, eval_blocks=4)


def opt(*args) -> tuple[int, str]:
    result = CliRunner().invoke(opt_app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
