"""The pass-rate pre-filter: >= 0.75 dropped (inclusive), optional never-solved drop, real samples."""

from __future__ import annotations

import pytest

from training.data import prompt_rows, tinyworld_records
from training.prefilter import apply_prefilter, prefilter


def _rows(n: int) -> list[dict]:
    return [{"row_id": str(i), "prompt": [], "pass_rate": -1.0} for i in range(n)]


def test_paper_threshold_is_inclusive_and_zero_is_optional():
    rates = [0.0, 0.125, 0.5, 0.625, 0.75, 1.0]
    result = apply_prefilter(_rows(6), rates)  # arXiv 2505.00949 §5: drop >= 0.75
    assert [r["row_id"] for r in result.kept] == ["0", "1", "2", "3"]
    assert [(r["row_id"], r["drop_reason"]) for r in result.dropped] == [
        ("4", "pass_rate_too_high"),
        ("5", "pass_rate_too_high"),
    ]
    both = apply_prefilter(_rows(6), rates, 0.75, drop_at_or_below=0.0)
    assert [r["row_id"] for r in both.kept] == ["1", "2", "3"]
    assert both.summary()["dropped"] == {"pass_rate_too_high": 2, "pass_rate_too_low": 1}
    assert apply_prefilter(_rows(6), rates, None).summary()["kept"] == 6


def test_reusing_scores_needs_them_on_every_row():
    rows = _rows(2)
    with pytest.raises(ValueError, match="filters.pass_rate"):
        prefilter("unused", rows, reuse_scores=True)
    rows[0]["pass_rate"], rows[1]["pass_rate"] = 0.25, 0.875
    result = prefilter("unused", rows, reuse_scores=True)
    assert [r["row_id"] for r in result.kept] == ["0"]


def test_sampled_pass_rates_drop_what_the_embedded_teacher_already_solves():
    """The embedded teacher answers tinyworld code prompts (reasoning off) ~90% right and math
    ~0% (curation/teacher_model/eval.json): code prompts go, math prompts stay."""
    records = [r for r in tinyworld_records(3, seed=21, outputs=False)
               if r.meta["family"] in ("code", "math")]  # fmt: skip
    rows = prompt_rows(records, reasoning="off")
    result = prefilter("embedded", rows, samples=4, max_tokens=96, temperature=0.6)
    kept = {r["family"] for r in result.kept}
    dropped = {r["family"] for r in result.dropped}
    assert "math" in kept and "math" not in dropped
    assert "code" in dropped
    assert all(r["pass_rate"] >= 0.75 for r in result.dropped)
    assert all(r["pass_rate"] < 0.75 for r in result.kept)
