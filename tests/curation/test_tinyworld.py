import re
import subprocess
import sys

import pytest

from curation.tinyworld import FAMILIES, format_output, generate


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_is_deterministic_per_seed(family):
    assert generate(family, 20, 3) == generate(family, 20, 3)
    assert generate(family, 20, 3) != generate(family, 20, 4)
    ids = [t.task_id for t in generate(family, 20, 3)]
    assert ids[0] == f"{family}-3-0" and len(set(ids)) == 20


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError, match="math, code, mcq, instruct"):
        generate("poetry", 1, 0)


def test_math_answers_are_the_arithmetic():
    for task in generate("math", 200, 0):
        a, b = map(int, re.findall(r"\d+", task.prompt)[:2])
        want = a + b if "-" not in task.trace.splitlines()[0] else a - b
        assert task.expected_answer == str(want)
        assert f"\\boxed{{{want}}}" in task.answer_text
        assert task.trace.endswith(f"={want}")


def test_code_solutions_pass_their_tests():
    tasks = generate("code", 40, 0)
    program = "\n".join(
        f"def _t{i}():\n"
        + "\n".join(
            "    " + line
            for line in task.answer_text.strip("`").removeprefix("python\n").splitlines()
        )
        + "\n"
        + "\n".join("    " + line for line in task.tests.splitlines())
        + f"\n_t{i}()"
        for i, task in enumerate(tasks)
    )
    for task in tasks:
        assert task.tests.count("assert") == 3 and task.expected_answer in task.answer_text
    assert subprocess.run([sys.executable, "-c", program]).returncode == 0


def test_mcq_letter_points_at_the_right_choice():
    for task in generate("mcq", 100, 0):
        options = dict(re.findall(r"([A-D])\) (\d+)", task.prompt))
        values = {k: int(v) for k, v in options.items()}
        if task.prompt.startswith("What is"):
            a, b = map(int, re.search(r"(\d+)\+(\d+)", task.prompt).groups())
            assert values[task.expected_answer] == a + b
        elif "largest" in task.prompt:
            assert values[task.expected_answer] == max(values.values())
        else:
            assert values[task.expected_answer] == min(values.values())
        assert task.answer_text == f"The answer is ({task.expected_answer})."


def test_instruct_replies_follow_the_instruction():
    for task in generate("instruct", 100, 0):
        word = re.search(r"the word (\w+)", task.prompt).group(1)
        if task.prompt.startswith("Repeat"):
            n = int(re.search(r"(\d+) times", task.prompt).group(1))
            assert task.expected_answer == " ".join([word] * n)
        elif "uppercase" in task.prompt:
            assert task.expected_answer == word.upper()
        elif "backwards" in task.prompt:
            assert task.expected_answer == word[::-1]
        else:
            assert task.expected_answer == "-".join(word)
        assert task.answer_text == task.expected_answer


@pytest.mark.parametrize("family", FAMILIES)
def test_format_output_on_and_off(family):
    task = generate(family, 1, 0)[0]
    on, off = format_output(task, True), format_output(task, False)
    assert on == f"<think>\n{task.trace}\n</think>\n\n{task.answer_text}"
    assert off == task.answer_text and "<think>" not in off
    assert len(task.prompt) + len(on) < 320
