"""generators.question_variation: parsing, parent links and answers, and a small build."""

from __future__ import annotations

import asyncio

import pytest

from curation.record import Record
from curation.stage import Drop
from curation.store import Store
from generators.base import GenerationResponse
from generators.variation import QuestionVariation, Variant, parse_output
from tests.curation.conftest import thinkmix
from tests.generators.test_its import built_ref, scripted_ctx, user_text

PARENT = "Tom has 3 apples and buys 4 more. How many apples does he have?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "New problem: Ann has 5 pears and buys 2 more. How many pears does she have?\n"
            "Answer: 7",
            Variant("Ann has 5 pears and buys 2 more. How many pears does she have?", "7"),
        ),
        (
            "Sure! Here's a new problem:\n\n**New problem:** Sam has 6 cars.\nHow many wheels?\n\n"
            "**Answer:** $\\boxed{24}$.",
            Variant("Sam has 6 cars.\nHow many wheels?", "24"),
        ),
        (
            "Problem: Eve reads 9 pages a day for 3 days. How many pages?",
            Variant("Eve reads 9 pages a day for 3 days. How many pages?", None),
        ),
        (
            "New problem: What is 12*3?\nSolution: 12*3 = 36.\nFinal answer: 36",
            Variant("What is 12*3?", "36"),
        ),
        (
            "New problem: What is 2+2?\nAnswer: <the final answer of the new problem>",
            Variant("What is 2+2?", None),
        ),
        (
            "Here is a new problem: Ann has 5 pears.",
            Drop("variation_unparsed"),
        ),  # not on its own line
        ("I could not think of one.", Drop("variation_unparsed")),
        ("New problem: <the new problem>\nAnswer: 3", Drop("variation_empty")),
        ("New problem:\nAnswer: 3", Drop("variation_empty")),
        (f"New problem: {PARENT.upper()}\nAnswer: 7", Drop("variation_same_as_parent")),
    ],
)
def test_parse_output(text, expected):
    assert parse_output(text, PARENT) == expected


def test_truncated_outputs_are_rejected():
    assert parse_output("New problem: What is", PARENT, "length") == Drop("variation_truncated")


def parent(i: int) -> Record:
    return Record(
        id=f"p{i}",
        input=[{"role": "user", "content": f"{PARENT} ({i})"}],
        category="math",
        source="tinyworld",
        source_id=f"m{i}",
        expected_answer="7",
        meta={"family": "math", "tests": "", "topic": "arithmetic"},
    )


def script(request):
    k, text = request.sample_index, user_text(request)
    assert PARENT in text  # the template carries the parent problem
    number = text.split("(")[-1].split(")")[0]
    if k == 0:
        return f"New problem: Ann has {number} pears. How many pears?\nAnswer: {number}"
    if k == 1:
        return f"New problem: Ben has {number} dogs. How many legs?"
    if k == 2:
        return "Sorry, I can't."
    return GenerationResponse("", "error", error="HTTP 429")


def test_variants_link_to_parents_and_carry_answers_only_from_the_teacher(tmp_path):
    ctx = scripted_ctx(tmp_path, writer=script)
    parents = [parent(1), parent(2)]
    result = asyncio.run(QuestionVariation(teacher="writer", variants=4).process(parents, ctx))
    assert result.kept[:2] == parents
    variants = result.kept[2:]
    assert len(variants) == 4 and len({v.id for v in variants}) == 4
    for v in variants:
        assert v.meta["parent_id"] in {"p1", "p2"}
        assert v.meta["variation_generator"] == "writer-model" and v.output == ""
        assert (
            v.meta["topic"] == "arithmetic" and "tests" not in v.meta
        )  # the parent's tests do not apply
        assert v.source_id == f"m{v.meta['parent_id'][1]}~v{v.meta['variant']}"
    with_answer = [v for v in variants if v.meta["variant"] == "0"]
    assert [v.expected_answer for v in with_answer] == ["1", "2"]
    assert {v.meta["answer_source"] for v in with_answer} == {"teacher_unverified"}
    without = [v for v in variants if v.meta["variant"] == "1"]
    assert [v.expected_answer for v in without] == [None, None]
    assert {v.meta["answer_source"] for v in without} == {"none"}
    assert [r.reason for r in result.rejected] == ["variation_unparsed"] * 2
    assert result.rejected[0].output == "Sorry, I can't."
    assert [r.reason for r in result.failed] == ["request_failed: HTTP 429"] * 2


def test_untrusted_answers_and_dropped_parents(tmp_path):
    stage = QuestionVariation(
        teacher="writer", variants=1, keep_parent=False, trust_teacher_answer=False
    )
    result = asyncio.run(stage.process([parent(3)], scripted_ctx(tmp_path, writer=script)))
    (variant,) = result.kept
    assert variant.expected_answer is None and variant.meta["answer_source"] == "none"


def test_a_template_file_next_to_the_recipe(tmp_path):
    (tmp_path / "mine.txt").write_text("Vary this: $problem\nNew problem:")
    seen = []
    ctx = scripted_ctx(tmp_path, writer=lambda r: seen.append(user_text(r)) or "New problem: X?")
    stage = QuestionVariation(teacher="writer", variants=1, template="mine.txt")
    assert len(asyncio.run(stage.process([parent(1)], ctx)).kept) == 2
    assert seen == [f"Vary this: {PARENT} (1)\nNew problem:"]
    (tmp_path / "bad.txt").write_text("Vary this.")
    with pytest.raises(ValueError, match=r"missing field\(s\) \$problem"):
        asyncio.run(
            QuestionVariation(teacher="writer", template="bad.txt").process([parent(1)], ctx)
        )


RECIPE = """\
name: tiny-variants
sources:
  - {type: tinyworld.math, count: 3, seed: 2}
teachers:
  writer: {backend: transformers, model: embedded, batch_size: 16}
stages:
  - {type: generators.question_variation, teacher: writer, variants: 2, max_tokens: 120}
shards: 1
"""


def test_build_with_the_embedded_teacher_accounts_for_every_variant(tmp_path):
    recipe = tmp_path / "variants.yaml"
    recipe.write_text(RECIPE)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--no-stats")
    assert code == 0, output
    store = Store(tmp_path / "store")
    ref = built_ref(output)
    (stage,) = [
        s for s in store.manifest(ref)["stages"] if s["name"] == "generators.question_variation"
    ]
    assert stage["in"] == 3
    assert stage["kept"] + stage["rejected"] + stage["failed"] == 3 + 3 * 2
    train = store.read_records(ref, "train")
    parents = {r.id for r in train if "parent_id" not in r.meta}
    assert len(parents) == 3
    assert all(r.meta["parent_id"] in parents for r in train if "parent_id" in r.meta)
    assert all(r.reason.startswith("variation_") for r in store.read_records(ref, "rejected"))
