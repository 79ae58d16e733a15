"""Instruction-following verifiers, their parsers, the filter stage, the reward and the prompts."""

import json
import re

import pytest

from curation.record import Record
from filters.ifeval import VERIFIERS
from filters.instructions import (
    InstructionFollowing,
    check_constraints,
    constrained_prompts,
    constraints_json,
    describe_constraint,
    instruction_reward,
    instruction_reward_strict,
    parse_constraints,
)

# (constraint, an answer that meets it, an answer that breaks it)
CASES = [
    ({"kind": "word_count", "relation": "at most", "n": 3}, "one two three", "one two three four"),
    ({"kind": "word_count", "relation": "at least", "n": 2}, "it's well-known", "hello"),
    ({"kind": "word_count", "relation": "exactly", "n": 2}, "c-a-t done", "c a t"),
    ({"kind": "word_count", "relation": "less than", "n": 2}, "one", "one two"),
    ({"kind": "word_count", "relation": "more than", "n": 1}, "one two", "one"),
    ({"kind": "sentence_count", "relation": "exactly", "n": 2}, "Hi there. Bye now!", "Hi. A. B."),
    ({"kind": "sentence_count", "relation": "at most", "n": 1}, "It is 3.5 m long", "One. Two."),
    ({"kind": "paragraph_count", "relation": "exactly", "n": 2}, "a b\n\nc d", "a b\nc d"),
    ({"kind": "paragraph_count", "relation": "exactly", "n": 3}, "a\n***\nb\n\nc", "a\n\nb"),
    ({"kind": "include_keywords", "keywords": ["cat", "Dog"]}, "A dog and a CAT.", "cats and dogs"),
    ({"kind": "forbidden_words", "words": ["bad"]}, "badge is fine", "That is BAD."),
    ({"kind": "keyword_frequency", "keyword": "dog", "relation": "exactly", "n": 3},
     "dog Dog dog", "dog dog dogs"),
    ({"kind": "letter_frequency", "letter": "a", "relation": "at least", "n": 3}, "A banana", "ab"),
    ({"kind": "uppercase"}, "HELLO, WORLD 42!", "Hello"),
    ({"kind": "uppercase"}, "CAT", "123"),
    ({"kind": "lowercase"}, "hello world", "hello World"),
    ({"kind": "capital_word_frequency", "relation": "at least", "n": 2}, "NASA and ESA", "NASA"),
    ({"kind": "json_format"}, '{"a": [1, 2]}', "{a: 1}"),
    ({"kind": "json_format"}, '```json\n{"a": 1}\n```', "sure: {}"),
    ({"kind": "bullet_list", "n": 2}, "* one\n* two", "* one\n* two\n- three"),
    ({"kind": "bullet_list", "n": 1, "relation": "at least"}, "intro\n- item", "no bullets"),
    ({"kind": "starts_with", "phrase": "Dear"}, "  dear friend", "Hello dear"),
    ({"kind": "ends_with", "phrase": "Any questions?"}, "Done. any questions?  ", "Any questions? ok"),
    ({"kind": "section_count", "n": 2}, "SECTION 1\na\nSection 2\nb", "Section 1\nsection"),
    ({"kind": "section_count", "n": 2, "splitter": "Part"}, "Part 1 x\n## Part 2 y", "Part 1"),
    ({"kind": "no_commas"}, "no commas here", "one, two"),
    ({"kind": "quotation"}, '"quoted text"', 'quoted "text"'),
    ({"kind": "title"}, "<<My Poem>>\nroses", "<My Poem>"),
    ({"kind": "placeholders", "n": 2}, "At [address] on [date]", "At [address]"),
    ({"kind": "highlighted_sections", "n": 1}, "this is *key*", "this is **"),
    ({"kind": "postscript"}, "Hi.\n\nP.S. bye", "Hi. PS bye"),
    ({"kind": "postscript", "marker": "P.P.S"}, "x\np.p.s more", "x\nP.S. more"),
]  # fmt: skip


@pytest.mark.parametrize(("constraint", "good", "bad"), CASES)
def test_verifier_table(constraint, good, bad):
    parsed = parse_constraints([constraint])
    assert check_constraints(good, parsed) == [True]
    assert check_constraints(bad, parsed) == [False]


def test_every_kind_is_in_the_table_and_has_a_wording():
    assert {c["kind"] for c, _, _ in CASES} == set(VERIFIERS)
    assert len(VERIFIERS) >= 12
    for constraint, _, _ in CASES:
        sentence = describe_constraint(parse_constraints([constraint])[0])
        assert sentence[0].isupper() and len(sentence) > 10


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"kind": "word_count", "n": 3}], "constraints[0]: constraint word_count: field relation"),
        ([{"kind": "word_count", "relation": "about", "n": 3}], "expected one of at least"),
        ([{"kind": "word_count", "relation": "at most", "n": -1}], "field n: expected a non-neg"),
        ([{"kind": "word_count", "relation": "at most", "n": True}], "field n: expected a non-neg"),
        ([{"kind": "uppercase"}, {"kind": "shout"}], "constraints[1]: kind: unknown constraint"),
        ([{"kind": "uppercase", "loud": 1}], "constraint uppercase: unknown field 'loud'"),
        ([{"kind": "letter_frequency", "letter": "ab", "relation": "exactly", "n": 1}],
         "field letter: expected a single letter"),
        ([{"kind": "forbidden_words", "words": []}], "field words: expected a non-empty list"),
        ([{"kind": "starts_with", "phrase": "  "}], "field phrase: expected a non-empty string"),
        (["uppercase"], "constraints[0]: expected an object with a kind"),
        ('{"kind": "uppercase"}', "constraints: expected a list of objects, got dict"),
        ("[{kind}]", "constraints: invalid JSON"),
    ],
)  # fmt: skip
def test_parser_names_the_constraint_and_field(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_constraints(value)


def test_parser_fills_defaults_and_ignores_nulls():
    # Arrow fills struct fields some rows lack with null; a null field counts as absent
    parsed = parse_constraints([{"kind": "bullet_list", "n": 2, "relation": None, "phrase": None}])
    assert parsed == [{"kind": "bullet_list", "n": 2, "relation": "exactly"}]
    assert parse_constraints(None) == [] and parse_constraints("") == []
    assert json.loads(constraints_json([{"kind": "uppercase"}])) == [{"kind": "uppercase"}]


def row(output: str, constraints: str | None, reasoning: str = "on") -> Record:
    meta = {} if constraints is None else {"constraints": constraints}
    return Record(id="r", input=[], output=output, reasoning=reasoning, meta=meta, source="s",
                  source_id="7")  # fmt: skip


UPPER_FEW = json.dumps(
    [{"kind": "uppercase"}, {"kind": "word_count", "relation": "at most", "n": 2}]
)


@pytest.mark.parametrize(
    ("output", "constraints", "verdict"),
    [
        ("<think>\nc>C a>A t>T\n</think>\n\nCAT", UPPER_FEW, True),
        ("CAT DOG", UPPER_FEW, True),
        ("<think>\nlowercase thoughts are fine\n</think>\n\ncat", UPPER_FEW,
         "instruction_violated:uppercase"),
        ("CAT DOG BIRD", UPPER_FEW, "instruction_violated:word_count"),
        ("<think>\nnever closed", UPPER_FEW, "instruction_violated:uppercase"),
        ("CAT", None, "instruction_constraints_missing"),
        ("CAT", "[]", "instruction_constraints_missing"),
    ],
)  # fmt: skip
def test_instruction_following_stage(output, constraints, verdict):
    result = InstructionFollowing().keep(row(output, constraints))
    assert result is True if verdict is True else result.reason == verdict


def test_stage_records_violations_and_share():
    record = row("cat dog bird", UPPER_FEW)
    result = InstructionFollowing().judge([record])
    assert result.rejected == [record]
    assert record.meta["instruction_violations"] == "uppercase,word_count"
    assert record.scores["filters.instruction_following"] == 0.0
    assert InstructionFollowing(keep_without_constraints=True).keep(row("x", None)) is True


def test_stage_names_the_row_on_bad_constraints():
    with pytest.raises(ValueError, match=r"row s:7: meta.constraints\[0\]: constraint word_count"):
        InstructionFollowing().keep(row("x", '[{"kind": "word_count", "n": 1}]'))


def test_rewards_fraction_strict_and_cannot_judge():
    completions = ["CAT DOG BIRD", "<think>\nx\n</think>\n\nCAT", "cat", "anything"]
    constraints = [UPPER_FEW, UPPER_FEW, json.loads(UPPER_FEW), None]
    assert instruction_reward(completions, constraints) == [0.5, 1.0, 0.5, None]
    assert instruction_reward_strict(completions, constraints) == [0.0, 1.0, 0.0, None]
    conversational = [[{"role": "assistant", "content": "CAT"}]]
    assert instruction_reward(conversational, constraints=[UPPER_FEW], reasoning=["on"]) == [1.0]
    with pytest.raises(ValueError, match="row 0: constraints"):
        instruction_reward(["x"], ["not json"])
    with pytest.raises(ValueError, match="1 values for 2 completions"):
        instruction_reward(["x", "y"], [UPPER_FEW])


def test_constrained_prompts_are_stated_met_by_gold_and_deterministic():
    rows = constrained_prompts(40, seed=3)
    assert rows == constrained_prompts(40, seed=3)
    assert rows != constrained_prompts(40, seed=4)
    assert len({r["id"] for r in rows}) == 40
    broken_by_plain = 0
    for r in rows:
        parsed = parse_constraints(r["constraints"])
        assert 1 <= len(parsed) <= 2
        assert all(check_constraints(r["expected_answer"], parsed))
        assert r["prompt"].startswith(r["task"])
        for constraint in parsed:
            assert describe_constraint(constraint) in r["prompt"]
        json.dumps(r)  # plain JSON values only
        broken_by_plain += not all(check_constraints(_plain_reply(r["task"]), parsed))
    assert 5 <= broken_by_plain <= 35  # some prompts need more than the plain tinyworld reply


def _plain_reply(task_prompt: str) -> str:
    from curation.tinyworld import generate

    for task in generate("instruct", 40, 3):
        if task.prompt == task_prompt:
            return task.expected_answer
    raise AssertionError(task_prompt)


def test_constrained_prompts_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be >= 1"):
        constrained_prompts(0)
