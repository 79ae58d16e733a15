"""generators.mcq_grid + generators.mcq_synth: parsing, the grid, the flow, and a small build."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from curation.recipe import RecipeError, load_recipe
from curation.record import Record
from curation.sources import SourceError
from curation.stage import Drop
from curation.store import Store
from generators.base import GenerationResponse
from generators.mcq_synth import Mcq, McqGrid, McqSynth, parse_output, shuffled
from tests.curation.conftest import thinkmix
from tests.generators.test_its import built_ref, scripted_ctx, user_text

GOOD = "Question: What is the SI unit of force?\nA) Joule\nB) Newton\nC) Watt\nD) Pascal\nAnswer: B"
FORCE = Mcq("What is the SI unit of force?", ["Joule", "Newton", "Watt", "Pascal"], "B")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, FORCE),
        (  # chatty: a preamble, (A) labels, "the correct answer is (C)."
            "Sure! Here is one for you:\n\nWhich particle has no charge?\n(A) proton\n(B) electron\n"
            "(C) neutron\n(D) positron\n\nThe correct answer is (C).",
            Mcq(
                "Which particle has no charge?", ["proton", "electron", "neutron", "positron"], "C"
            ),
        ),
        (  # markdown bold
            "**Question:** What?\n**A)** x\n**B)** y\n**C)** z\n**D)** w\n\n**Answer:** D",
            Mcq("What?", ["x", "y", "z", "w"], "D"),
        ),
        (  # options inline, as tinyworld writes them
            "Which number is largest? A) 37 B) 81 C) 12 D) 55\nAnswer: B",
            Mcq("Which number is largest?", ["37", "81", "12", "55"], "B"),
        ),
        ("Question: Q?\nA. x\nB. y\nC. z\nD. w\nAnswer: a", Drop("mcq_missing_answer")),
        (
            "Question: Q?\nA) x\nB) X.\nC) z\nD) w\nAnswer: A",
            Drop("mcq_bad_options: options A and B are the same"),
        ),
        (
            "Question: Q?\nA) x\nB) y\nC) z\nAnswer: A",
            Drop("mcq_bad_options: expected 4 options, got 3"),
        ),
        (
            "Question: Q?\nA) x\nB)\nC) z\nD) w\nAnswer: A",
            Drop("mcq_bad_options: option B is empty"),
        ),
        ("Question: Q?\nA) x\nB) y\nC) z\nD) w\nAnswer: E", Drop("mcq_answer_not_in_options: E")),
        ("Question: Q?\nA) x\nB) y\nC) z\nD) w", Drop("mcq_missing_answer")),
        ("A) x\nB) y\nC) z\nD) w\nAnswer: A", Drop("mcq_unparsed")),  # no question
        ("What is the SI unit of force? It is the newton.", Drop("mcq_unparsed")),
        ("", Drop("mcq_unparsed")),
    ],
)
def test_parse_output(text, expected):
    assert parse_output(text, options=4) == expected


def test_five_options_and_the_prompt_layout():
    text = GOOD.replace("Answer: B", "E) Erg\nAnswer: E")
    mcq = parse_output(text, options=5)
    assert mcq == Mcq(FORCE.question, [*FORCE.options, "Erg"], "E")
    assert mcq.prompt().endswith("D) Pascal\nE) Erg")
    assert parse_output(text, options=4) == Drop("mcq_bad_options: expected 4 options, got 5")


def test_shuffle_keeps_the_answer_on_the_same_option():
    moved = [shuffled(FORCE, f"row{i}") for i in range(20)]
    assert all(m.options[ord(m.answer) - 65] == "Newton" for m in moved)
    assert len({m.answer for m in moved}) > 1
    assert shuffled(FORCE, "row3") == moved[3]


def test_grid_from_params_and_from_files(tmp_path):
    ctx = scripted_ctx(tmp_path)
    grid = McqGrid(topics={"physics": ["optics", "waves"]}, difficulties=["easy", "hard"])
    rows = list(grid.read(ctx))
    assert [r.source_id for r in rows] == [
        "physics/optics/easy",
        "physics/optics/hard",
        "physics/waves/easy",
        "physics/waves/hard",
    ]
    assert rows[0].meta == {"topic": "physics", "subtopic": "optics", "difficulty": "easy"}
    assert rows[0].category == "science" and len({r.id for r in rows}) == 4
    assert len(list(McqGrid().read(ctx))) == 27  # the default 3 x 3 x 3 grid
    (tmp_path / "g.json").write_text(
        json.dumps({"topics": {"biology": ["genetics"]}, "difficulties": ["x"]})
    )
    assert [r.source_id for r in McqGrid(grid_file="g.json").read(ctx)] == ["biology/genetics/x"]
    (tmp_path / "g.yaml").write_text("topics: {chemistry: [bonds, acids]}\n")
    assert len(list(McqGrid(grid_file="g.yaml").read(ctx))) == 6  # default difficulties
    (tmp_path / "bad.yaml").write_text("topics: {chemistry: []}\n")
    with pytest.raises(SourceError, match="topics.chemistry: expected a non-empty list"):
        list(McqGrid(grid_file="bad.yaml").read(ctx))
    with pytest.raises(SourceError, match="grid file not found"):
        list(McqGrid(grid_file="none.yaml").read(ctx))
    with pytest.raises(ValueError, match="difficulties"):
        McqGrid(difficulties=[])


def cell(topic="physics", subtopic="optics", difficulty="hard") -> Record:
    return Record(
        id=f"cell-{subtopic}",
        input=[{"role": "user", "content": "MCQ grid cell"}],
        source="mcq_grid",
        source_id=f"{topic}/{subtopic}/{difficulty}",
        meta={"topic": topic, "subtopic": subtopic, "difficulty": difficulty},
    )


def writer(request):
    text = user_text(request)
    assert "physics" in text and "hard" in text and "A) to D)" in text
    return {
        0: GOOD,
        1: GOOD.replace("Answer: B", "Answer: Z"),
        2: "I'd rather not.",
        3: GenerationResponse("", "error", error="HTTP 503"),
    }[request.sample_index]


def test_questions_become_rows_and_bad_ones_are_rejected_with_reasons(tmp_path):
    ctx = scripted_ctx(tmp_path, writer=writer)
    cells = [cell(subtopic="optics"), cell(subtopic="waves")]
    result = asyncio.run(McqSynth(teacher="writer", samples=4).process(cells, ctx))
    assert len(result.kept) + len(result.rejected) + len(result.failed) == 8
    assert len(result.kept) == 2
    for row in result.kept:
        assert row.input == [{"role": "user", "content": FORCE.prompt()}]
        assert row.expected_answer == "B" and row.category == "science" and row.output == ""
        assert row.meta["difficulty"] == "hard" and row.meta["question_generator"] == "writer-model"
        assert row.meta["cell_id"] in {"physics/optics/hard", "physics/waves/hard"}
    assert Counter(r.reason for r in result.rejected) == {
        "mcq_unparsed": 2,
        "mcq_missing_answer": 2,  # "Answer: Z" is no letter of A-J
    }
    assert all(r.output for r in result.rejected)  # the raw text is kept
    assert [r.reason for r in result.failed] == ["request_failed: HTTP 503"] * 2
    assert len({r.id for r in result.kept + result.rejected + result.failed}) == 8


def test_shuffle_option(tmp_path):
    ctx = scripted_ctx(tmp_path, writer=lambda r: GOOD)
    stage = McqSynth(teacher="writer", samples=6, shuffle_options=True)
    rows = asyncio.run(stage.process([cell()], ctx)).kept
    assert len({r.expected_answer for r in rows}) > 1
    for r in rows:
        assert f"{r.expected_answer}) Newton" in r.input[0]["content"]


def test_recipe_checks_columns_and_params(tmp_path):
    recipe = tmp_path / "r.yaml"
    base = "name: mcq\nteachers: {w: {backend: transformers, model: embedded}}\n"
    recipe.write_text(
        base
        + "sources: [{type: tinyworld.math}]\nstages: [{type: generators.mcq_synth, teacher: w}]\n"
    )
    with pytest.raises(RecipeError, match="needs column"):
        load_recipe(recipe)
    recipe.write_text(
        base + "sources: [{type: generators.mcq_grid}]\n"
        "stages: [{type: generators.mcq_synth, teacher: w, options: 1}]\n"
    )
    with pytest.raises(RecipeError, match="options must be in"):
        load_recipe(recipe)


RECIPE = """\
name: tiny-mcq
sources:
  - {type: generators.mcq_grid, topics: {physics: [optics, waves]}, difficulties: [easy]}
teachers:
  writer: {backend: transformers, model: embedded, batch_size: 16}
stages:
  - {type: generators.mcq_synth, teacher: writer, samples: 2, max_tokens: 80}
shards: 1
"""


def test_build_with_the_embedded_teacher_accounts_for_every_question(tmp_path):
    recipe = tmp_path / "mcq.yaml"
    recipe.write_text(RECIPE)
    code, output = thinkmix("build", recipe, "--store", tmp_path / "store", "--no-stats")
    assert code == 0, output
    store = Store(tmp_path / "store")
    ref = built_ref(output)
    manifest = store.manifest(ref)
    (stage,) = [s for s in manifest["stages"] if s["name"] == "generators.mcq_synth"]
    assert stage["in"] == 2
    assert stage["kept"] + stage["rejected"] + stage["failed"] == 2 * 2
    assert sum(manifest["splits"].values()) == 4
    for row in store.read_records(ref, "rejected"):
        assert row.reason.startswith("mcq_") and row.stage == "generators.mcq_synth"
    for row in store.read_records(ref, "train"):  # whatever the tiny teacher got right is valid
        assert row.expected_answer in "ABCD" and "A) " in row.input[0]["content"]
