"""Rows -> chat examples with the toggle's system prompt; config files and their errors."""

from __future__ import annotations

import pytest

from curation.record import Record
from training.config_io import ConfigError, load_config, parse_overrides
from training.data import prompt_rows, select, sft_example
from training.grpo_config import GRPORunConfig
from training.sft_config import SFTRunConfig
from training.student import load_tokenizer


def _row(reasoning: str, system: str = "", category: str = "math") -> Record:
    return Record(id=f"r-{reasoning}-{category}", input=[{"role": "user", "content": "2+2?"}],
                  output="<think>\nx\n</think>\n\n4" if reasoning == "on" else "4",
                  reasoning=reasoning, system_prompt=system, category=category,
                  expected_answer="4")  # fmt: skip


def test_system_prompt_comes_from_the_toggle():
    on, off = sft_example(_row("on")), sft_example(_row("off"))
    assert on["messages"][0] == {"role": "system", "content": "detailed thinking on"}
    assert off["messages"][0] == {"role": "system", "content": "detailed thinking off"}
    assert [m["role"] for m in on["messages"]] == ["system", "user", "assistant"]
    # a row with only a system prompt still has a toggle
    assert select([_row("", system="detailed thinking off")], reasoning="off")
    with pytest.raises(ValueError, match="empty output"):
        sft_example(Record(id="x", input=[{"role": "user", "content": "q"}]))


def test_assistant_only_loss_masks_everything_but_the_answer():
    tokenizer = load_tokenizer()
    example = sft_example(_row("on"))
    encoded = tokenizer.apply_chat_template(
        example["messages"], return_dict=True, return_assistant_tokens_mask=True
    )
    mask, ids = encoded["assistant_masks"], encoded["input_ids"]
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert trained == "<think>\nx\n</think>\n\n4<|eos|>"


def test_selection_and_prompt_rows():
    rows = [_row("on"), _row("off"), _row("on", category="code")]
    assert [r.id for r in select(rows, "on", ["math"])] == ["r-on-math"]
    assert len(select(rows, "any")) == 3
    prompts = prompt_rows(rows, reasoning="both")  # the same prompt twice in math: deduped
    assert [(p["reasoning"], p["family"]) for p in prompts] == [("on", "math"), ("off", "math")]
    assert prompts[1]["prompt"][0]["content"] == "detailed thinking off"
    assert len(prompt_rows(rows, reasoning="on")) == 1


def test_config_files_load_with_errors_that_name_the_field(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text("learning_rate: 0.001\nschedule: ln-nano\n")
    cfg = load_config(SFTRunConfig, path, **parse_overrides(["packing=true"]))
    assert cfg.packing is True and cfg.learning_rate == 0.001
    assert [s.name for s in cfg.stages()] == ["reasoning", "mixed", "chat"]
    assert cfg.stages()[0].reasoning == "on" and cfg.stages()[0].epochs == 4.0
    path.write_text("learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: unknown field\(s\) learning_rat; known:"):
        load_config(SFTRunConfig, path)
    path.write_text("batch_size: many\n")
    with pytest.raises(ConfigError, match="sft.yaml: batch_size: .*integer"):
        load_config(SFTRunConfig, path)
    path.write_text("schedule: ln-giga\n")
    with pytest.raises(ConfigError, match="unknown preset 'ln-giga'"):
        load_config(SFTRunConfig, path)
    with pytest.raises(ConfigError, match="num_generations must be >= 2"):
        load_config(GRPORunConfig, None, num_generations=1)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["packing"])
