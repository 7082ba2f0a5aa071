# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from trl_mos.tasks import make_arithmetic_problems
from trl_mos.verifiers import (
    MathWorkerPool,
    MissingColumnError,
    extract_all_boxed,
    extract_answer,
    extract_boxed,
    extract_final_boxed,
    extract_last_number,
    extract_math_answers,
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


def test_wrong_answers_do_not_pass_through_a_number_inside_an_expression():
    # issue 14 item 5: a denominator, exponent or radicand is not the answer
    completions = [
        r"The answer is $\frac{1}{2}$.",
        r"$2^{10}$",
        r"$\sqrt{3}$",
        r"$3\pi/4$",
        "I think 2^{10}",  # plain text: math-verify alone reads this as 2
        "I think 2^{10}",
        r"so it is \sqrt 3",
        r"The answer is $3 + \frac{1}{\mathrm{e}}$.",  # math-verify alone reads this as 3
    ]
    solutions = ["2", "10", "3", "4", "2", "10", "3", "3"]
    for extraction in ("auto", "last_number"):
        verifier = make_math_verifier(extraction=extraction)
        assert verifier([""] * 8, completions, solutions) == [0.0] * 8, extraction
    assert math_verifier([""] * 2, [r"$2^{10}$", "x = 2 or x = 4"], ["1024", "4"]) == [1.0, 1.0]
    for text in completions[:7] + ["2 \\cdot 5", "1 + 4", "f(3)", "(3, 4)", "10 - 3", "1 0000"]:
        assert extract_last_number(text) is None, text
    assert extract_last_number("1 000") == "1 000" and extract_last_number(r"$5\,\text{cm}$") == "5"


def test_unbraced_latex_operators_verify():
    # issue 14 item 6: math-verify's normalisation defaults (malformed_operators, nits, ...)
    completions = [r"\boxed{\frac12}", r"\boxed{\dfrac12}", r"\boxed{\tfrac12}", r"\boxed{\sqrt2}", r"$\frac94\pi$"]
    solutions = ["1/2", "1/2", "1/2", r"\sqrt{2}", r"\frac{9}{4}\pi"]
    assert math_verifier([""] * 5, completions, solutions) == [1.0] * 5
    assert group_math_answers([r"\frac12", "1/2", r"\dfrac12", r"\sqrt2", r"\sqrt{2}"]) == [0, 0, 0, 1, 1]
    # an override reaches math-verify
    plain = make_math_verifier(normalization={"malformed_operators": False})
    assert plain([""], [r"\boxed{\sqrt2}"], [r"\sqrt{2}"]) == [0.0]


def test_math_verify_extraction_without_boxed():
    # issue 14 item 7: no \boxed, no plain number: math-verify's own LaTeX extraction; "1 000" is 1000, not 000
    completions = [
        r"So $x = \frac13$",
        "The total is 1 000",
        "The total is 1 000",
        "Final Answer: The largest $n$ is 34.",
    ]
    assert math_verifier([""] * 4, completions, [r"\frac{1}{3}", "1000", "0", "34"]) == [1.0, 1.0, 0.0, 1.0]
    logged, log_extra = _reasons()
    assert math_verifier([""], ["no numbers here"], ["3"], log_extra=log_extra) == [0.0]
    assert logged["math_verifier_reason"] == ["no answer found"]


def test_several_boxed_answers():
    text = r"First \boxed{3}, and then \boxed{5}."
    solutions = ["5", r"\{3, 5\}"]
    assert math_verifier([""] * 2, [text] * 2, solutions) == [0.0, 1.0]  # math-verify's behaviour: read together
    assert make_math_verifier(boxed="last")([""] * 2, [text] * 2, solutions) == [1.0, 0.0]
    both = r"The solutions are $\boxed{(1, 2)}$ and $\boxed{(2, 1)}$."
    assert math_verifier([""], [both], ["(2,1),(1,2)"]) == [1.0]


def test_precision_strictness_and_set_relation_options():
    assert math_verifier([""], ["0.3333"], [r"\frac{1}{3}"]) == [0.0]
    assert make_math_verifier(float_rounding=4)([""], ["0.3333"], [r"\frac{1}{3}"]) == [1.0]
    assert math_verifier([""], [r"$f(y)$"], ["f(x)"]) == [0.0]
    assert make_math_verifier(strict=False)([""], [r"$f(y)$"], ["f(x)"]) == [1.0]
    relation, interval = r"$-2 \le x \le 7$", r"x \in [-2,7]"
    assert math_verifier([""], [relation], [interval]) == [0.0]
    assert make_math_verifier(allow_set_relation_comp=True)([""], [relation], [interval]) == [1.0]


def test_math_option_validation():
    with pytest.raises(ValueError, match="`boxed` must be 'last' or 'all'"):
        make_math_verifier(boxed="first")
    with pytest.raises(ValueError, match=r"Unknown `normalization` fields \['unit'\]"):
        make_math_verifier(normalization={"unit": True})
    with pytest.raises(ValueError, match="must be True or False"):
        make_math_verifier(normalization={"units": "yes"})
    with pytest.raises(ValueError, match="`float_rounding` must be a positive integer"):
        make_math_verifier(float_rounding=0)


def test_no_false_positive_on_math_verify_test_cases():
    # the Math-Verify test cases shipped with benchmarks/verifier_accuracy.py: none that should fail is accepted
    import json
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "data", "math_verify_cases.json")
    with open(path, encoding="utf-8") as handle:
        cases = [case for case in json.load(handle)["cases"] if case["expected"] == 0]
    assert len(cases) == 38
    scores = math_verifier([""] * len(cases), [c["pred"] for c in cases], [c["gold"] for c in cases])
    assert [case["id"] for case, score in zip(cases, scores, strict=True) if score == 1.0] == []


def test_extract_math_answers_for_majority_voting():
    texts = [r"so $x = \frac13$", r"It is \boxed{4}.", "I think 2^{10}", "The total is 1 000", None]
    answers = extract_math_answers(texts)
    assert answers == [r"x = \frac{1}{3}", "4", None, "1000", None]  # the answer as math-verify extracted it
    assert extract_math_answers([r"\boxed{3} or \boxed{5}"], boxed="last") == ["5"]
    assert group_math_answers([*answers[:2], "1/3", "4.0"]) == [0, 1, 0, 1]
    assert extract_math_answers([]) == []


def test_extract_all_boxed():
    assert extract_all_boxed(r"$\boxed{3}$ and $\boxed{\frac{1}{2}}$, \boxed{unclosed") == ["3", r"\frac{1}{2}"]
    assert extract_all_boxed(r"\boxed{\boxed{3}} \fbox{4} \boxed 5.") == [r"\boxed{3}", "4", "5"]
    assert extract_all_boxed("no box") == [] and extract_boxed(r"\boxed{1} \boxed{}") == "1"
    text = r"First \boxed{7}. So the roots are $\boxed{1}$ and $\boxed{2}$."
    assert extract_final_boxed(text) == ["1", "2"]
    assert extract_final_boxed(r"\boxed{1}" + "\n\n" + r"Hence \boxed{2}") == ["2"] and extract_final_boxed("") == []
    assert math_verifier([""] * 2, [text] * 2, ["1, 2", "7"]) == [1.0, 0.0]
    # a stated final answer after the boxed intermediate results is the answer
    interim = r"so $\boxed{200}$ and then $\boxed{255}$. Final Answer: The final answer is $10,455$."
    assert math_verifier([""] * 2, [interim] * 2, ["10455", "255"]) == [1.0, 0.0]
