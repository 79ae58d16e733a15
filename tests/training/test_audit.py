"""Toggle audit: the leakage formula, the CLI end to end on the embedded teacher and on a store
version, the optional judge, and the audit as a callback inside a real trl trainer."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from curation.generation import GenerationRequest, GenerationResponse
from tests.training.conftest import TINY
from training.audit import (
    ToggleAudit,
    audit_prompts,
    leakage,
    reasoning_markers,
    toggle_audit,
)
from training.audit_cli import audit_app

ON = "<think>\n12+30=42\nso the total is 42\n</think>\n\n\\boxed{42}"


def audit(*args: object) -> tuple[int, str]:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")  # as curation/cli.py mounts it
    result = CliRunner().invoke(app, ["audit", *(str(a) for a in args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("\\boxed{42}", 0),
        ("First, add them. Then we get 42.", 2),
        ("1. add\n2) carry\nStep 3 done", 4),  # three numbered lines + the word "step"
        ("a = 1\nb = a + 1 = 2", 2),
        ("Firstly, thus, hence; let's wait. Let me see. Since so.", 8),
    ],
)
def test_reasoning_markers(text, count):
    assert reasoning_markers(text) == count


def test_leakage_formula():
    clean = leakage(ON, "\\boxed{42}")
    assert clean["score"] == 0.0 and clean["length_term"] == 0.0 and clean["length_ratio"] == 1.0
    # the whole "on" output without its tags: as long as reasoning + answer, 3 extra markers
    leaked = leakage(ON, "12+30=42\nso the total is 42\n\n\\boxed{42}")
    assert leaked["length_term"] == pytest.approx(1.0, abs=0.1)
    assert leaked["marker_term"] == pytest.approx(2 / 3)  # an "=" line and "so"
    assert leaked["score"] == pytest.approx((leaked["length_term"] + 2 / 3) / 2)
    assert leakage(ON, "<think>\nhm\n</think>\n\n42")["score"] == 1.0
    # "on" answer not well-formed: no length term, markers alone
    no_ref = leakage("42", "First add. Then carry. Finally 42.")
    assert no_ref["length_term"] is None and no_ref["score"] == 1.0
    # an "on" answer cut at the token limit gives no length reference
    assert leakage(ON, "12+30=42 so 42", on_complete=False)["length_term"] is None
    # markers the "on" answer itself has are not leakage
    same = leakage("<think>\nx\n</think>\n\nSo it is 4 = 2+2.", "So it is 4 = 2+2.")
    assert same["marker_term"] == 0.0


def test_cli_on_the_embedded_teacher(tmp_path):
    """The "before" picture of the embedded teacher on a handful of held-out tinyworld prompts."""
    out = tmp_path / "audit.json"
    code, text = audit("toggle", "--model", "embedded", "--data", "tinyworld", "--limit", 2,
                       "--max-tokens", 96, "--out", out, "--json")  # fmt: skip
    assert code == 0, text
    report = json.loads(text)
    assert report["prompts"] == 2 and report["data"] == "tinyworld"
    assert report["on"]["think_well_formed"] >= 0.5  # trained on the toggle; 96 tokens is short
    assert report["off"]["think_present"] == 0.0
    assert report["leakage"]["score"] <= 0.2
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 2 and {"on", "off", "score"} <= set(saved["rows"][0])
    assert saved["rows"][0]["on"].startswith("<think>")


def test_cli_on_a_store_version_with_a_table(store, prompts, tiny_model, monkeypatch):
    monkeypatch.setenv("THINKMIX_STORE", str(store.root))
    code, text = audit("toggle", "--model", tiny_model, "--data", prompts, "--limit", 3,
                       "--max-tokens", 6)  # fmt: skip
    assert code == 0, text
    assert "off: <think> present anyway" in text and "leakage score" in text
    assert "on-mode format failures" in text  # a random model writes no think block


def test_cli_errors_name_the_problem(store, tiny_model):
    code, text = audit("toggle", "--model", tiny_model, "--data", "nope/v9", "--store", store.root)
    assert code == 2 and "nope" in text
    code, text = audit("toggle", "--model", tiny_model, "--limit", 0)
    assert code == 2 and "limit must be >= 1" in text
    code, text = audit("toggle", "--model", tiny_model, "--judge", "embedded")
    assert code == 2 and "expected BACKEND:MODEL" in text


class YesIfEquation:
    """A judge behind the Backend interface: "Yes" when the judged answer holds an "="."""

    name, model = "scripted-audit-judge", "judge"

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        answers = [r.messages[-1][1].rsplit("Answer:", 1)[-1] for r in requests]
        return [GenerationResponse(text="Yes." if "=" in a else "No.") for a in answers]

    def close(self) -> None:
        pass


def test_judge_and_instruction_share(tiny_model):
    from training.student import load_model, load_tokenizer

    items = audit_prompts("ifeval", 3)
    assert all(item["constraints"] for item in items)
    report = toggle_audit(load_model(str(tiny_model)), items, max_new_tokens=4,
                          tokenizer=load_tokenizer(str(tiny_model)), judge=YesIfEquation(),
                          keep_rows=True)  # fmt: skip
    assert report["instructions"]["prompts"] == 3
    assert 0.0 <= report["instructions"]["on"] <= 1.0
    expected = [("=" in r["off"]) for r in report["rows"]]
    assert [r["judge_leak"] for r in report["rows"]] == expected
    assert report["leakage"]["judge_leak_share"] == sum(expected) / 3
    assert report["leakage"]["judge_unparsed"] == 0


def test_audit_prompts_sets():
    tiny = audit_prompts("tinyworld", 6)
    assert [p["family"] for p in tiny] == ["math", "code", "mcq", "instruct", "math", "code"]
    with pytest.raises(ValueError, match="not one of tinyworld, ifeval"):
        audit_prompts("mine/v1", 3)


def test_callback_audits_inside_a_trl_trainer(store, gold, tmp_path):
    """Before, during and after two SFT steps on the trainer's own weights."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from training.data import sft_example
    from training.student import fresh_student, load_tokenizer

    examples = Dataset.from_list([sft_example(r) for r in store.read_records(gold)])
    args = SFTConfig(output_dir=str(tmp_path / "t"), max_steps=2, per_device_train_batch_size=4,
                     report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
                     bf16=False, logging_steps=1, dataset_num_proc=None)  # fmt: skip
    model = fresh_student(TINY["student_hidden"], TINY["student_layers"], TINY["student_heads"])
    checks = ToggleAudit(["Write the word cat in uppercase."], max_new_tokens=4, every_steps=1)
    trainer = SFTTrainer(model=model, args=args, train_dataset=examples,
                         processing_class=load_tokenizer(), callbacks=[checks.callback()])  # fmt: skip
    trainer.train()
    assert [(r["when"], r["step"]) for r in checks.results] == [
        ("begin", 0), ("step", 1), ("step", 2), ("end", 2),
    ]  # fmt: skip
    assert set(checks.results[0]) >= {"on_think_well_formed", "off_think_present", "off_leakage"}
    assert checks.last["prompts"] == 1
