import json

import pytest
import torch

from hardware_opt.bld import BLDParams
from hardware_opt.costs import CostParams
from hardware_opt.export import load, save
from hardware_opt.mip import InfeasibleBudgetError
from hardware_opt.puzzle import PuzzleParams, run_puzzle
from tests.hardware_opt.conftest import SMALL_CALIBRATION, opt

FAST = dict(
    calibration=SMALL_CALIBRATION,
    bld=BLDParams(steps=5, workers=2),
    costs=CostParams(latency_seq=32, latency_repeats=2),
)


def test_puzzle_child_meets_budgets_and_reloads(tiny_model, tokenizer, tmp_path):
    torch.manual_seed(0)
    params = PuzzleParams(budgets={"params": 0.6, "kv_cache": 0.75}, **FAST)
    child, report = run_puzzle(tiny_model, tokenizer, params)
    for name, frac in params.budgets.items():
        assert report["child_costs"][name] <= frac * report["parent_costs"][name] + 1e-6
    n_block_params = sum(p.numel() for layer in child.model.layers for p in layer.parameters())
    assert n_block_params == report["child_costs"]["params"]  # analytic costs match the module
    assert report["child_quality"]["kl"] > 0
    assert "uniform_baseline" in report
    library = report["library"][0]
    assert {"parent", "gqa2", "gqa4", "linear", "no_op", "ffn0.50"} <= set(library)

    save(child, tokenizer, tmp_path, report)
    reloaded = load(tmp_path)
    ids = torch.randint(3, 100, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, child(ids).logits)
    assert reloaded.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == 16


def test_bld_lowers_the_local_error(tiny_model, tokenizer):
    from hardware_opt.activations import capture
    from hardware_opt.bld import evaluate, train_candidate
    from hardware_opt.calibration import load_blocks
    from hardware_opt.library import LibraryParams, ffn_candidates

    train, _ = load_blocks(tokenizer, SMALL_CALIBRATION)
    acts, prep = capture(tiny_model, train)
    layer = tiny_model.model.layers[1]
    cands = ffn_candidates(tiny_model.config, layer, 1, acts[1], LibraryParams(ffn_ratios=(0.25,)))
    pruned = next(c for c in cands if c.name == "ffn0.25")
    before = evaluate(pruned, acts[1], prep)
    after = train_candidate(pruned, acts[1], prep, BLDParams(steps=40, lr=3e-3))
    assert after < before
    parent = next(c for c in cands if c.name == "parent")
    assert evaluate(parent, acts[1], prep) == pytest.approx(0.0, abs=1e-10)


def test_infeasible_budget_is_a_clear_error(tiny_model, tokenizer):
    params = PuzzleParams(budgets={"kv_cache": 0.0001}, uniform_baseline=False, **FAST)
    params.library.no_op = params.library.linear = False  # every child keeps some KV cache
    with pytest.raises(InfeasibleBudgetError, match="kv_cache <= .* smallest reachable"):
        run_puzzle(tiny_model, tokenizer, params)


def test_bad_budget_names_are_rejected():
    with pytest.raises(ValueError, match="unknown budget"):
        PuzzleParams(budgets={"flops": 0.5})


def test_cli_puzzle_then_show(tiny_llama_dir, tmp_path):
    out = tmp_path / "child"
    code, text = opt(
        "puzzle",
        "--model",
        tiny_llama_dir,
        "--out",
        out,
        "--budget",
        "params=0.5",
        "--budget",
        "latency=0.9",
        "--seq-len",
        "32",
        "--train-blocks",
        "4",
        "--eval-blocks",
        "2",
        "--bld-steps",
        "2",
        "--latency-repeats",
        "1",
        "--no-uniform-baseline",
    )
    assert code == 0, text
    report = json.loads((out / "hardware_opt.json").read_text())
    assert report["child_costs"]["params"] <= 0.5 * report["parent_costs"]["params"]
    code, shown = opt("show", out)
    assert code == 0 and "kv B/tok" in shown and len(shown.splitlines()) >= 6
    code, text = opt("puzzle", "--model", tiny_llama_dir, "--out", out, "--budget", "params")
    assert code == 2 and "NAME=FRACTION" in text


def test_calibration_from_a_store_version(tiny_llama_dir, tokenizer, tmp_path):
    from curation.record import Record
    from curation.store import Store
    from hardware_opt.calibration import CalibrationParams, load_blocks

    store = Store(tmp_path / "store")
    staging = store.staging("tiny", "v1")
    rows = [
        Record(
            id=str(i),
            input=[{"role": "user", "content": f"what is {i}+{i}?"}],
            output=f"it is {2 * i}, because {i} and {i} make {2 * i}.",
            system_prompt="detailed thinking off",
        )
        for i in range(40)
    ]
    staging.mark_done(0, [staging.write_shard("train", 0, rows)])
    staging.commit({})
    params = CalibrationParams(
        data="tiny/v1", store=str(store.root), seq_len=16, train_blocks=4, eval_blocks=2
    )
    train, held = load_blocks(tokenizer, params)
    assert train.shape == (4, 16) and held.shape == (2, 16)
    assert "what is" in tokenizer.decode(train[0].tolist() + train[1].tolist())


@pytest.mark.slow
def test_puzzle_beats_uniform_pruning_on_the_embedded_teacher():
    from curation.teacher.paths import resolve_model
    from hardware_opt.parent import load_model, load_tokenizer

    path = resolve_model("embedded")
    torch.manual_seed(0)
    _, report = run_puzzle(
        load_model(path), load_tokenizer(path), PuzzleParams(budgets={"params": 0.6})
    )
    assert report["child_costs"]["params"] <= 0.6 * report["parent_costs"]["params"]
    assert report["child_quality"]["kl"] < report["uniform_baseline"]["kl"]
