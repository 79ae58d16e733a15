"""Recipe validation: every error names the file, the line and the field."""

from pathlib import Path

import pytest

from curation.recipe import RecipeError, load_recipe

GOOD = """\
name: math
sources:
  - {type: tinyworld.math, count: 10, seed: 0}
teachers:
  reasoner: {backend: transformers, model: embedded}
stages:
  - type: generators.multi_sample
    teacher: reasoner
    samples_on: 2
    samples_off: 1
  - {type: filters.boxed_answer}
  - {type: filters.math_verify}
shards: 2
"""


def write(tmp_path: Path, text: str, name: str = "math.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def test_good_recipe_loads_its_stages(tmp_path):
    loaded = load_recipe(write(tmp_path, GOOD))
    assert [s.stage_type for s in loaded.stages] == [
        "generators.multi_sample",
        "filters.boxed_answer",
        "filters.math_verify",
    ]
    assert loaded.stages[0].samples_on == 2
    assert loaded.recipe.shards == 2


def test_wrong_type_names_file_line_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("samples_on: 2", "samples_on: many"))
    assert error_of(path) == "math.yaml:9: stages[0].samples_on: expected int, got 'many'"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("samples_off: 1", "samples_of: 1"),
            "math.yaml:10: stages[0].samples_of: unknown parameter",
        ),
        (
            ("filters.math_verify", "filters.math_verfy"),
            "math.yaml:12: stages[2].type: unknown stage type",
        ),
        (
            ("teacher: reasoner", "teacher: judge"),
            "math.yaml:8: stages[0].teacher: unknown teacher 'judge'",
        ),
        (
            ("backend: transformers", "backend: nope"),
            "math.yaml:5: teachers.reasoner.backend: unknown backend",
        ),
        (("shards: 2", "shards: 0"), "math.yaml:13: shards: "),
        (("name: math", "name: Math Blend"), "math.yaml:1: name: "),
        (("count: 10", "count: 0"), "math.yaml:3: sources[0]: count must be >= 1"),
    ],
)
def test_mistakes_point_at_their_line(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    assert error_of(path).startswith(expected)


def test_unknown_parameter_suggests_the_close_one(tmp_path):
    path = write(tmp_path, GOOD.replace("samples_off: 1", "samples_of: 1"))
    assert "did you mean 'samples_off'?" in error_of(path)


def test_stage_order_is_checked_by_columns(tmp_path):
    text = GOOD.replace(
        "  - {type: filters.boxed_answer}\n  - {type: filters.math_verify}\n",
        "  - {type: filters.math_verify}\n  - {type: filters.boxed_answer}\n",
    )
    message = error_of(write(tmp_path, text))
    assert message.startswith(
        "math.yaml:11: stages[1].type: filters.math_verify needs column(s) meta.answer"
    )


def test_overrides_apply_and_are_named_in_errors(tmp_path):
    path = write(tmp_path, GOOD)
    loaded = load_recipe(path, ["stages.0.samples_on=5", "shards=3"])
    assert loaded.stages[0].samples_on == 5 and loaded.recipe.shards == 3
    assert loaded.recipe.version_id() != load_recipe(path).recipe.version_id()
    message = error_of(path, ["stages.0.samples_on=lots"])
    assert (
        message == "--set stages.0.samples_on=lots: stages[0].samples_on: expected int, got 'lots'"
    )
    assert "does not exist" in error_of(path, ["stages.7.samples_on=1"])


def test_overrides_can_name_a_stage_by_its_type(tmp_path):
    path = write(tmp_path, GOOD)
    by_index = load_recipe(path, ["stages.0.samples_on=5"])
    by_type = load_recipe(path, ["stages.multi_sample.samples_on=5"])
    assert by_type.stages[0].samples_on == 5
    assert by_type.recipe.version_id() == by_index.recipe.version_id()
    assert error_of(path, ["stages.multi_sample.samples_on=lots"]) == (
        "--set stages.multi_sample.samples_on=lots: stages[0].samples_on: expected int, got 'lots'"
    )
    assert error_of(path, ["stages.math_judge.mode=always"]) == (
        "--set stages.math_judge.mode=always: no entry of stages has type 'math_judge' "
        "(0: generators.multi_sample, 1: filters.boxed_answer, 2: filters.math_verify)"
    )
    twice = write(
        tmp_path, GOOD.replace("shards: 2\n", "  - {type: filters.boxed_answer}\n"), "twice.yaml"
    )
    assert "2 entries of stages have type 'boxed_answer'; give the index instead" in error_of(
        twice, ["stages.boxed_answer.answer=x"]
    )


def test_secrets_are_refused(tmp_path):
    path = write(tmp_path, GOOD.replace("model: embedded}", "model: embedded, api_key: sk-live}"))
    assert "secrets never go in a recipe" in error_of(path)


def test_yaml_syntax_and_missing_file(tmp_path):
    assert error_of(write(tmp_path, "name: [unclosed\n")).startswith("math.yaml:2: invalid YAML")
    assert "recipe file not found" in error_of(tmp_path / "nope.yaml")


def test_version_is_a_content_address(tmp_path):
    a = load_recipe(write(tmp_path, GOOD, "a.yaml")).recipe.version_id()
    b = load_recipe(write(tmp_path, GOOD.replace("shards: 2", "shards: 2  # a comment"), "b.yaml"))
    assert a == b.recipe.version_id()


def test_shipped_recipes_validate():
    for path in sorted(Path("curation/recipes").glob("*.yaml")):
        load_recipe(path)


def test_on_error_is_a_recipe_field_and_its_default_keeps_the_hash(tmp_path):
    path = write(tmp_path, GOOD)
    default = load_recipe(path).recipe
    assert default.on_error == "fail" and "on_error" not in default.canonical()
    skip = load_recipe(path, ["on_error=skip"]).recipe
    assert skip.on_error == "skip" and skip.canonical()["on_error"] == "skip"
    assert skip.version_id() != default.version_id()
    assert error_of(path, ["on_error=ignore"]).startswith("--set on_error=ignore: on_error: ")
