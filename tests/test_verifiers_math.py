# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from trl_mos.tasks import make_arithmetic_problems
from trl_mos.verifiers import (
    MathWorkerPool,
    MissingColumnError,
    extract_answer,
    extract_boxed,
    extract_last_number,
    group_math_answers,
    make_extractor,
    make_math_verifier,
    math_verifier,
    required_columns,
)


PATHOLOGICAL = r"The answer is \boxed{9^{9^{9^9}}}."


def _reasons():
    logged = {}
    return logged, lambda column, values: logged.setdefault(column, list(values))


def test_arithmetic_problems_reference_solutions():
    problems = make_arithmetic_problems(seed=0, num_train=1, num_validation=1, num_test=40)["test"]
    assert math_verifier(problems["prompt"], problems["completion"], problems["solution"]) == [1.0] * 40
    off_by_one = [str(int(s) + 1) for s in problems["solution"]]
    assert math_verifier(problems["prompt"], problems["completion"], off_by_one) == [0.0] * 40


def test_equivalent_forms_and_reasons():
    completions = [
        r"So $x = \boxed{\frac{1}{2}}$.",
        r"\boxed{0.5}",
        r"\boxed{1,234}",
        r"\boxed{2\sqrt{2}}",
        r"\boxed{\frac{1}{3}}",
        "I do not know.",
        [{"role": "assistant", "content": r"It is \boxed{7}."}],
        "The total is 12 apples.",
    ]
    solutions = ["0.5", r"\frac{1}{2}", "1234", r"\sqrt{8}", "0.5", "3", "7", "12"]
    logged, log_extra = _reasons()
    scores = math_verifier(prompts=[""] * 8, completions=completions, solution=solutions, log_extra=log_extra)
    assert scores == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    reasons = logged["math_verifier_reason"]
    assert reasons[4].startswith("wrong answer")
    assert reasons[5] == "no answer found"
    assert reasons[0] == ""


def test_unusable_gold_is_not_applicable():
    logged, log_extra = _reasons()
    scores = math_verifier([""] * 3, [r"\boxed{1}"] * 3, solution=[None, "", "$$"], log_extra=log_extra)
    assert scores == [None, None, None]
    assert logged["math_verifier_reason"][0] == "no gold answer"


def test_extraction_modes():
    text = r"First 3, then \boxed{5}, finally 7. Answer: 9"
    assert extract_boxed(text) == "5" and extract_last_number(text) == "9"
    assert extract_answer(text) == "5" and extract_answer("x = 2 or x = 4") == "4"
    assert extract_answer(text, r"Answer: (\d+)") == "9"
    assert extract_answer(r"\boxed{\frac{1}{2}} and \boxed{unclosed") == r"\frac{1}{2}"
    assert extract_last_number("total: 1,234.50 dollars") == "1,234.50"
    assert extract_last_number("-3/4 of it") == "-3/4"
    assert extract_last_number("none here") is None
    with pytest.raises(ValueError, match="not a valid regular expression"):
        make_extractor("(unclosed")
    with pytest.raises(ValueError, match="at most one group"):
        make_extractor(r"(\d+)-(\d+)")
    completions = [text, text, text]
    assert make_math_verifier(extraction="boxed")([""] * 3, completions, ["5", "9", "3"]) == [1.0, 0.0, 0.0]
    assert make_math_verifier(extraction="last_number")([""] * 3, completions, ["5", "9", "3"]) == [0.0, 1.0, 0.0]
    assert make_math_verifier(extraction=r"First (\d+)")([""] * 3, completions, ["5", "9", "3"]) == [0.0, 0.0, 1.0]
    custom = make_math_verifier(extraction=lambda t: t.split()[1].rstrip(","))
    assert custom([""] * 3, completions, ["3", "5", "9"]) == [1.0, 0.0, 0.0]


def test_custom_column_and_required_columns():
    from trl.rewards import accuracy_reward

    verifier = make_math_verifier(column="answer", name="answer_check")
    assert required_columns(verifier) == {"answer"}
    assert required_columns(math_verifier) == {"solution"} == required_columns(accuracy_reward)
    assert verifier.__name__ == "answer_check"
    assert verifier(prompts=[""], completions=[r"\boxed{4}"], answer=["4"]) == [1.0]
    with pytest.raises(
        MissingColumnError, match=r"'answer_check' needs column 'answer'; the batch has columns \['sol"
    ):
        verifier(prompts=[""], completions=[r"\boxed{4}"], solution=["4"], log_extra=None)
    with pytest.raises(ValueError, match="one value per completion"):
        verifier(prompts=[""], completions=[r"\boxed{4}"], answer=["4", "5"])


def test_pathological_item_costs_only_its_timeout():
    verifier = make_math_verifier(timeout=1.5, num_workers=2)
    completions = [r"\boxed{2}"] * 6 + [PATHOLOGICAL] + [r"\boxed{3}"] * 6
    solutions = ["2"] * 6 + ["8"] + ["3"] * 6
    verifier([""], [r"\boxed{1}"], ["1"])  # start the workers outside the timed part
    MathWorkerPool.get(2)._spare.wait_ready()  # and let the warm spare finish importing math-verify
    logged, log_extra = _reasons()
    started = time.monotonic()
    scores = verifier([""] * 13, completions, solutions, log_extra=log_extra)
    elapsed = time.monotonic() - started
    assert scores == [1.0] * 6 + [None] + [1.0] * 6  # a verifier error, not a wrong answer
    assert logged["math_verifier_reason"][6] == "verifier error: timed out after 1.5 s"
    assert elapsed < 1.5 + 1.5
    # the replacement worker was warm: the next batch is fast again
    started = time.monotonic()
    assert verifier([""] * 2, [r"\boxed{2}", r"\boxed{3}"], ["2", "3"]) == [1.0, 1.0]
    assert time.monotonic() - started < 1.0


def test_works_off_the_main_thread():
    with ThreadPoolExecutor(2) as executor:
        futures = [
            executor.submit(math_verifier, [""] * 2, [r"\boxed{4}", r"\boxed{5}"], ["4", "4"]) for _ in range(3)
        ]
        assert [future.result() for future in futures] == [[1.0, 0.0]] * 3


def _score_in_worker(timeout):
    verifier = make_math_verifier(timeout=timeout, num_workers=1)
    return verifier([""] * 2, [PATHOLOGICAL, r"\boxed{4}"], ["8", "4"])


def test_works_inside_a_worker_process():
    # a daemonic pool worker (where SIGALRM-based timeouts are not available off its main thread either)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        assert executor.submit(_score_in_worker, 1.0).result(timeout=120) == [None, 1.0]


def test_group_math_answers():
    assert group_math_answers(["1/2", "0.5", "3", r"\frac{1}{2}", None, "", "3.0"]) == [0, 0, 1, 0, -1, -1, 1]
    assert group_math_answers([]) == []


def test_huge_empty_and_non_utf8_completions():
    huge = "word " * 1_000_000 + r"so the answer is \boxed{5}."
    completions = [huge, b"\xff\xfe \\boxed{5}", "", "\udcff \\boxed{5}", None]
    assert math_verifier([""] * 5, completions, ["5"] * 5) == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_validation():
    with pytest.raises(ValueError, match="timeout"):
        make_math_verifier(timeout=0)
    with pytest.raises(TypeError, match="completions"):
        math_verifier(prompts=[""], solution=["1"])
    assert math_verifier([], [], []) == []
