import pytest
import torch

from hardware_opt.calibration import load_blocks
from hardware_opt.export import load, save
from hardware_opt.fusion import (
    FusionParams,
    attention_free_runs,
    choose_segments,
    dependency_matrix,
    drop_attention,
    fuse,
    fused_swiglu,
    parallel_reference,
    run_fusion,
)
from tests.hardware_opt.conftest import SMALL_CALIBRATION, opt


def test_fused_equals_parallel_reference(tiny_model):
    model = drop_attention(tiny_model, (1, 2, 3))
    assert attention_free_runs(model) == [[1, 2, 3]]
    ids = torch.randint(3, 100, (2, 24))
    fused = fuse(model, [[1, 2, 3]])
    assert fused.config.block(1).ffn.intermediate_size == 3 * 64
    assert fused.config.block(2).ffn.no_op and fused.config.block(3).ffn.no_op
    with torch.no_grad():
        torch.testing.assert_close(
            fused(ids).logits, parallel_reference(model, [[1, 2, 3]], ids), atol=1e-5, rtol=1e-5
        )
        # and the parallel form is not the sequential one (the test would be vacuous otherwise)
        assert (model(ids).logits - fused(ids).logits).abs().max() > 1e-4


def test_dependency_matrix_and_segments(tiny_model, tokenizer):
    model = drop_attention(tiny_model, (0, 1, 2, 3))
    blocks = load_blocks(tokenizer, SMALL_CALIBRATION)[1]
    m = dependency_matrix(model, [0, 1, 2, 3], blocks)
    assert m.shape == (4, 4)
    assert torch.all(m.tril() == 0) and torch.all(m.triu(1) >= 0)
    assert choose_segments([[0, 1, 2, 3]], [m], FusionParams(threshold=2.0, max_run=8)) == [
        [0, 1, 2, 3]
    ]
    assert choose_segments([[0, 1, 2, 3]], [m], FusionParams(threshold=2.0, max_run=2)) == [
        [0, 1],
        [2, 3],
    ]
    assert choose_segments([[0, 1, 2, 3]], [m], FusionParams(threshold=0.0)) == []


def test_run_fusion_reports_and_exports(tiny_model, tokenizer, tmp_path):
    blocks = load_blocks(tokenizer, SMALL_CALIBRATION)[1]
    base, fused, report = run_fusion(
        tiny_model, blocks, FusionParams(threshold=2.0, drop_attention=(2, 3))
    )
    assert report["segments"] == [[2, 3]]
    assert report["kl_vs_unfused"] >= 0 and report["latency_ms_fused"] > 0
    save(fused, tokenizer, tmp_path, report)
    reloaded = load(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(blocks).logits, fused(blocks).logits)


def test_no_attention_free_run_is_a_clear_error(tiny_model, tokenizer):
    blocks = torch.randint(3, 100, (1, 16))
    with pytest.raises(ValueError, match="--drop-attention"):
        run_fusion(tiny_model, blocks, FusionParams())


def test_cli_ffn_fuse(tiny_llama_dir, tmp_path):
    code, out = opt(
        "ffn-fuse",
        "--model",
        tiny_llama_dir,
        "--out",
        tmp_path / "fused",
        "--drop-attention",
        "1,2",
        "--threshold",
        "2",
        "--seq-len",
        "32",
        "--blocks",
        "2",
    )
    assert code == 0, out
    assert "fused [[1, 2]]" in out and "swiglu 128" in out
    code, out = opt(
        "ffn-fuse", "--model", tiny_llama_dir, "--out", tmp_path / "x", "--drop-attention", "9"
    )
    assert code == 2 and "out of range" in out


def test_fused_swiglu_keeps_dtype_and_inference_forward_is_exact(tiny_model):
    layers = drop_attention(tiny_model, (1, 2)).model.layers[1:3]
    fused = fused_swiglu(layers)
    x = torch.randn(2, 7, fused.gate_proj.in_features)
    with torch.no_grad():
        in_place = fused(x)  # SiLU and product reuse the gate buffer without autograd
    torch.testing.assert_close(in_place, fused(x).detach(), atol=0, rtol=0)
    assert fused_swiglu([layer.to(torch.bfloat16) for layer in layers]).up_proj.weight.dtype == (
        torch.bfloat16
    )
