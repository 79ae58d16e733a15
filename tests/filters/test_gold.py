"""Gold checks: MCQ letters, exact replies, and math-problem suitability."""

import pytest

from curation.record import Record
from filters.gold import ExactAnswer, McqAnswer
from filters.problems import MathProblem


def row(output: str = "", gold: str | None = "B", prompt: str = "q", reasoning: str = "on"):
    turns = [{"role": "user", "content": prompt}]
    return Record(id="r", input=turns, output=output, reasoning=reasoning, expected_answer=gold)


@pytest.mark.parametrize(
    ("output", "gold", "verdict"),
    [
        ("<think>2+2</think>\n\nThe answer is (B).", "B", True),
        ("The answer is (C).", "B", "mcq_answer_mismatch"),
        ("<think>(A) looks right</think>\n\nAnswer: B", "(B)", True),
        ("no idea", "B", "mcq_answer_missing"),
        ("The answer is (B).", None, "expected_answer_missing"),
    ],
)
def test_mcq_answer(output, gold, verdict):
    result = McqAnswer().keep(row(output, gold))
    assert result is True if verdict is True else result.reason == verdict


def test_mcq_answer_records_the_letter():
    record = row("The answer is (D).", "D")
    assert McqAnswer().judge([record]).kept == [record]
    assert record.meta["answer"] == "D"


@pytest.mark.parametrize(
    ("output", "gold", "ignore_case", "verdict"),
    [
        ("<think>c-a-t</think>\n\nCAT", "CAT", False, True),
        ("cat cat cat", "cat cat cat", False, True),
        ("Cat", "cat", False, "exact_answer_mismatch"),
        ("Cat", "cat", True, True),
        ("cat", None, False, "expected_answer_missing"),
    ],
)
def test_exact_answer(output, gold, ignore_case, verdict):
    result = ExactAnswer(ignore_case=ignore_case).keep(row(output, gold))
    assert result is True if verdict is True else result.reason == verdict


@pytest.mark.parametrize(
    ("prompt", "gold", "verdict"),
    [
        ("Tom has 12 apples and gets 5 more. How many apples?", "17", True),
        ("Prove that there are infinitely many primes.", "", "problem_missing_answer"),
        ("Prove that 2+2=4.", "4", "problem_proof"),
        ("Show that x=3 solves x+1=4. What is x?", "3", "problem_proof"),
        ("What is 2+2? A) 3 B) 4 C) 5 D) 6", "B", "problem_multiple_choice"),
        ("Is 7 a prime number?", "yes", "problem_yes_no"),
        ("Is the sum of 3 and 4 odd?", "7", "problem_yes_no"),
    ],
)
def test_math_problem_rules(prompt, gold, verdict):
    result = MathProblem().keep(row(gold=gold, prompt=prompt))
    assert result is True if verdict is True else result.reason == verdict


def test_math_problem_rules_are_switches():
    record = row(gold="4", prompt="Prove that 2+2=4.")
    assert MathProblem(drop_proofs=False).keep(record) is True
