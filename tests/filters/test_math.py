"""filters.boxed_answer and filters.math_verify on inline records, with the real math-verify."""

import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.stage import Drop
from filters.math import BoxedAnswer, MathVerify


def row(output="", reasoning="on", expected="82", answer=None):
    record = Record(
        id="x",
        input=[{"role": "user", "content": "What is 41 * 2?"}],
        output=output,
        reasoning=reasoning,
        expected_answer=expected,
    )
    if answer is not None:
        record.meta["answer"] = answer
    return record


@pytest.mark.parametrize(
    ("output", "reasoning", "verdict", "answer"),
    [
        ("<think>41*2=82</think>So \\boxed{82}.", "on", True, "82"),
        ("<think>try \\boxed{80}</think>It is \\boxed{82}.", "on", True, "82"),
        ("<think>\\boxed{82}</think>It is 82.", "on", "answer_missing_boxed", None),
        ("<think>\\boxed{82} and more", "on", "answer_missing_boxed", None),  # truncated
        ("\\boxed{\\frac{1}{2}}", "off", True, "\\frac{1}{2}"),
        ("It is \\boxed{}.", "off", "answer_empty_boxed", None),
        ("It is 82.", "off", "answer_missing_boxed", None),
    ],
)
def test_boxed_answer(output, reasoning, verdict, answer):
    record = row(output, reasoning)
    got = BoxedAnswer().keep(record)
    assert got == (verdict if verdict is True else Drop(verdict))
    assert record.meta.get("answer") == answer


def test_boxed_answer_options():
    record = row("\\boxed{1} or \\boxed{2}", "off")
    assert BoxedAnswer(which="first").keep(record) is True
    assert record.meta["answer"] == "1"
    record = row("Final answer: 82", "off")
    assert BoxedAnswer().keep(record) == Drop("answer_missing_boxed")
    assert BoxedAnswer(final_answer_line=True).keep(record) is True
    assert record.meta["answer"] == "82"
    with pytest.raises(ValueError, match="which"):
        BoxedAnswer(which="middle")


@pytest.mark.parametrize(
    ("answer", "expected", "verdict"),
    [
        ("82", "82", True),
        ("82.0", "82", True),
        ("\\frac{1}{2}", "1/2", True),
        ("0.5", "\\frac{1}{2}", True),
        ("1/2", "0.5", True),
        ("\\dfrac{1}{2}", "$\\frac{1}{2}$", True),
        ("x = 3", "3", True),
        ("(x+1)^2", "x^2+2x+1", True),
        ("\\{1,2\\}", "\\{2,1\\}", True),
        ("1,000", "1000", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("-\\frac{3}{4}", "-0.75", True),
        ("\\pi", "3.14", "math_answer_mismatch"),
        ("83", "82", "math_answer_mismatch"),
        ("\\frac{1}{3}", "0.5", "math_answer_mismatch"),
        ("82", None, "expected_answer_missing"),
        ("82", "  ", "expected_answer_missing"),
        (None, "82", "math_answer_missing"),
        ("}{", "82", "math_answer_unparsed"),
        ("82", "}{", "expected_answer_unparsed"),
        ("1" * 1001, "82", "math_answer_too_long"),
    ],
)
def test_math_verify(answer, expected, verdict):
    got = MathVerify().keep(row(expected=expected, answer=answer))
    assert got == (verdict if verdict is True else Drop(verdict))


def test_math_verify_keep_without_gold():
    assert MathVerify(keep_without_gold=True).keep(row(expected=None, answer="82")) is True
    with pytest.raises(ValueError, match="timeout_s"):
        MathVerify(timeout_s=0)


def test_judge_splits_and_stamps():
    rows = [
        row("<think>41*2</think>\\boxed{82}", expected="82"),
        row("<think>41*2</think>\\boxed{82.0}", expected="82"),
        row("<think>41*2</think>\\boxed{83}", expected="82"),
        row("<think>41*2</think>82", expected="82"),
    ]
    boxed = BoxedAnswer().judge(rows)
    assert len(boxed.kept) == 3
    assert [(r.stage, r.reason) for r in boxed.rejected] == [
        ("filters.boxed_answer", "answer_missing_boxed")
    ]
    verified = MathVerify().judge(boxed.kept)
    assert [r.meta["answer"] for r in verified.kept] == ["82", "82.0"]
    assert all(r.scores["filters.math_verify"] == 1.0 for r in verified.kept)
    (wrong,) = verified.rejected
    assert (wrong.stage, wrong.reason) == ("filters.math_verify", "math_answer_mismatch")
    assert wrong.scores == {"filters.boxed_answer": 1.0, "filters.math_verify": 0.0}


def test_registered_and_picklable():
    assert stage_class("filters.boxed_answer") is BoxedAnswer
    assert stage_class("filters.math_verify") is MathVerify
    stage = MathVerify(timeout_s=3)
    assert pickle.loads(pickle.dumps(stage)) == stage


def _verdicts(records):
    return [r.reason for r in MathVerify().judge(records).rejected]


def test_math_verify_off_the_main_thread():
    """math-verify's signal timeout raises in a worker thread; the stage must turn it off there."""
    records = [row(answer="\\frac{1}{2}", expected="0.5"), row(answer="3", expected="4")]
    with ThreadPoolExecutor(1) as pool:
        assert (
            pool.submit(lambda: threading.current_thread() is threading.main_thread()).result()
            is False
        )
        assert pool.submit(_verdicts, records).result() == ["math_answer_mismatch"]


def test_math_verify_in_a_process_pool():
    records = [row(answer="\\frac{1}{2}", expected="0.5"), row(answer="3", expected="4")]
    with ProcessPoolExecutor(1) as pool:
        assert pool.submit(_verdicts, records).result() == ["math_answer_mismatch"]
