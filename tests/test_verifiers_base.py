# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import functools
import logging

import pytest
from trl.rewards import accuracy_reward

from trl_mos.verifiers import (
    MissingColumnError,
    Verdict,
    VerifierSuite,
    check_required_columns,
    completion_to_text,
    error_reason,
    exact_match_verifier,
    is_verifier_error,
    math_verifier,
    required_columns,
    verifier_name,
)


# ----------------------------------------------------------------------------------------------------------------------
# completion_to_text
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, text",
    [
        ("plain", "plain"),
        (None, ""),
        ("", ""),
        (b"caf\xc3\xa9 \xff", "café \ufffd"),
        ("lone \udcff surrogate", "lone ? surrogate"),
        ([{"role": "assistant", "content": "only"}], "only"),
        (
            [
                {"role": "assistant", "content": "thinking"},
                {"role": "tool", "content": "42"},
                {"role": "assistant", "content": "final"},
            ],
            "final",
        ),
        ([{"content": "no role"}], "no role"),
        ({"role": "assistant", "content": "one message"}, "one message"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}], "ab"),
        ([{"role": "assistant", "content": None}], ""),
        ([], ""),
    ],
)  # fmt: skip
def test_completion_to_text(completion, text):
    assert completion_to_text(completion) == text


def test_completion_to_text_rejects_other_types():
    with pytest.raises(TypeError, match="string or a list of messages"):
        completion_to_text(42)


# ----------------------------------------------------------------------------------------------------------------------
# required_columns
# ----------------------------------------------------------------------------------------------------------------------


def plain_reward(prompts, completions, solution, difficulty, bonus=0.0, **kwargs):
    return [1.0] * len(completions)


def strict_reward(completions, answer):  # no **kwargs
    return [float(c == a) for c, a in zip(completions, answer, strict=True)]


class CallableReward:
    def __call__(self, prompts, completions, completion_ids, tests, *, language, trainer_state, **kwargs):
        return [0.0] * len(completions)


def test_required_columns():
    assert required_columns(accuracy_reward) == {"solution"}
    assert required_columns(plain_reward) == {"solution", "difficulty"}
    assert required_columns(functools.partial(plain_reward, difficulty=["easy"])) == {"solution"}
    assert required_columns(CallableReward()) == {"tests", "language"}
    assert required_columns(strict_reward) == {"answer"}
    assert required_columns(lambda completions, **kwargs: []) == set()
    assert required_columns(len) == set()  # builtins: signature without named columns
    suite = VerifierSuite([plain_reward, CallableReward(), VerifierSuite([strict_reward])])
    assert (
        required_columns(suite)
        == suite.required_columns()
        == {"solution", "difficulty", "tests", "language", "answer"}
    )


def test_verifier_name():
    assert verifier_name(plain_reward) == "plain_reward"
    assert verifier_name(functools.partial(functools.partial(plain_reward), bonus=1.0)) == "plain_reward"
    assert verifier_name(CallableReward()) == "CallableReward"
    assert verifier_name(math_verifier) == "math_verifier"


def test_check_required_columns_names_the_gap():
    check_required_columns([math_verifier, plain_reward], ["prompt", "solution", "difficulty"])
    with pytest.raises(MissingColumnError) as error:
        check_required_columns([accuracy_reward, plain_reward], ["prompt", "solution"])
    assert (
        str(error.value)
        == "verifier 'plain_reward' needs column 'difficulty'; the dataset has columns ['prompt', 'solution']"
    )
    with pytest.raises(ValueError, match="needs columns 'tests', 'language'|needs columns 'language', 'tests'"):
        check_required_columns(CallableReward(), ["prompt"])


def test_bundled_verifiers_accept_positional_and_keyword_calls():
    assert exact_match_verifier(["p"], ["a"], ["a"]) == [1.0]
    assert exact_match_verifier(prompts=["p"], completions=["a"], solution=["b"]) == [0.0]
    with pytest.raises(TypeError, match="multiple values"):
        exact_match_verifier(["p"], ["a"], ["a"], solution=["a"])
    with pytest.raises(TypeError, match="at most 3 positional"):
        exact_match_verifier(["p"], ["a"], ["a"], ["x"])


# ----------------------------------------------------------------------------------------------------------------------
# VerifierSuite
# ----------------------------------------------------------------------------------------------------------------------


def scores_from_column(completions, score, **kwargs):
    return list(score)


def always_none(completions, **kwargs):
    return [None] * len(completions)


def half(completions, **kwargs):
    return [0.5] * len(completions)


def test_suite_modes_and_none():
    scores = [1.0, 0.0, None, 1.0]
    columns = {"score": scores, "prompts": ["p"] * 4, "completions": ["c"] * 4}
    all_suite = VerifierSuite({"a": scores_from_column, "b": always_none}, mode="all")
    verdicts = all_suite(**columns)
    assert [v.accepted for v in verdicts] == [True, False, False, True]
    assert verdicts[2].reason == "no verifier applies to this completion"  # every verifier said None
    assert verdicts[0].passed == {"a": True, "b": None} and verdicts[0].reasons["b"] == "not applicable"
    assert verdicts[1].reasons["a"] == "score 0 is below the threshold 1"

    any_suite = VerifierSuite([scores_from_column, half], mode="any", threshold={"half": 0.5})
    verdicts = any_suite(**columns)
    assert [v.accepted for v in verdicts] == [True, True, True, True]
    assert verdicts[2].scores == {"scores_from_column": None, "half": 0.5}

    strict = VerifierSuite([scores_from_column, half], mode="all", threshold=0.5)
    assert [v.accepted for v in strict(**columns)] == [True, False, True, True]


def test_suite_combines_trl_and_bundled_verifiers():
    suite = VerifierSuite([accuracy_reward, math_verifier, exact_match_verifier], mode="all")
    completions = [[{"role": "assistant", "content": r"The answer is \boxed{\frac{1}{2}}"}]] * 2
    verdicts = suite(prompts=["q"] * 2, completions=completions, solution=[r"\frac{1}{2}", "0.75"])
    assert isinstance(verdicts[0], Verdict)
    assert verdicts[0].scores["accuracy_reward"] == 1.0 and verdicts[0].scores["math_verifier"] == 1.0
    assert verdicts[0].passed["exact_match_verifier"] is False and not verdicts[0].accepted
    assert verdicts[1].reasons["math_verifier"].startswith("wrong answer")
    assert "math_verifier: wrong answer" in verdicts[1].reason


def test_suite_raising_verifier_gets_none_and_is_logged_once(caplog):
    calls = []

    def flaky(completions, **kwargs):
        calls.append(len(completions))
        if any("boom" in c for c in completions):
            raise RuntimeError("boom in verifier")
        return [1.0] * len(completions)

    suite = VerifierSuite([flaky, half], threshold={"half": 0.5}, mode="all")
    with caplog.at_level(logging.WARNING, logger="trl_mos.verifiers.base"):
        first = suite(completions=["ok", "boom", "ok"])
        second = suite(completions=["boom", "ok"])
    assert [v.scores["flaky"] for v in first] == [1.0, None, 1.0]
    assert [v.status for v in first] == ["accepted", "error", "accepted"]  # `half` passes, but flaky could not judge
    assert [v.accepted for v in first] == [True, False, True]
    assert first[1].reasons["flaky"] == "verifier error: RuntimeError: boom in verifier"
    assert first[1].errors == {"flaky": "verifier error: RuntimeError: boom in verifier"}
    assert first[1].reason == "flaky: verifier error: RuntimeError: boom in verifier"
    assert [v.scores["flaky"] for v in second] == [None, 1.0]
    assert calls == [3, 1, 1, 1, 2, 1, 1]  # whole batch, then sample by sample
    assert len([r for r in caplog.records if "boom in verifier" in r.getMessage()]) == 1


def test_suite_bad_outputs_and_strict_signatures():
    def wrong_length(completions, **kwargs):
        return [1.0]

    def not_a_number(completions, **kwargs):
        return ["yes"] * len(completions)

    suite = VerifierSuite([wrong_length, not_a_number, strict_reward])
    verdicts = suite(completions=["x", "y"], answer=["x", "z"], completion_ids=[[1], [2]], trainer_state=object())
    assert [v.scores["wrong_length"] for v in verdicts] == [1.0, 1.0]  # retried one by one: one score each
    assert [v.scores["not_a_number"] for v in verdicts] == [None, None]
    assert [v.scores["strict_reward"] for v in verdicts] == [1.0, 0.0]  # extra arguments not passed to it


def test_suite_missing_column_raises_before_scoring():
    suite = VerifierSuite([plain_reward, math_verifier])
    with pytest.raises(
        MissingColumnError,
        match=r"'plain_reward' needs columns 'difficulty', 'solution'; the batch has columns \['answer'\]",
    ):
        suite(prompts=["p"], completions=["c"], answer=["a"], log_extra=lambda *a: None)
    with pytest.raises(MissingColumnError, match=r"'math_verifier' needs column 'solution'"):
        VerifierSuite([math_verifier])(prompts=["p"], completions=["c"], answer=["a"])


def test_suite_as_reward_function():
    reward = VerifierSuite({"a": scores_from_column, "b": always_none}, name="binary").as_reward_function()
    assert reward.__name__ == "binary"
    assert required_columns(reward) == {"score"}
    assert reward(prompts=["p"] * 3, completions=["c"] * 3, score=[1.0, 0.2, None]) == [1.0, 0.0, None]


def test_suite_validation():
    with pytest.raises(ValueError, match="mode"):
        VerifierSuite([half], mode="most")
    with pytest.raises(ValueError, match="unknown verifiers"):
        VerifierSuite([half], threshold={"halve": 0.5})
    with pytest.raises(ValueError, match="at least one"):
        VerifierSuite([])
    names = VerifierSuite([half, half, functools.partial(half)]).verifiers
    assert list(names) == ["half", "half_2", "half_3"]
    assert VerifierSuite([half])(completions=[]) == []


def reported_errors(completions, **kwargs):
    """Scores from the text: "pass", "fail", "error" (reported the way the bundled verifiers do) or "n/a"."""
    outcomes = {"pass": (1.0, ""), "fail": (0.0, "wrong"), "error": (None, error_reason("timed out after 5 s"))}
    results = [outcomes.get(c, (None, "")) for c in completions]
    if callable(kwargs.get("log_extra")):
        kwargs["log_extra"]("reported_errors_reason", [reason for _, reason in results])
    return [score for score, _ in results]


def test_verdict_three_outcomes_from_a_reported_error():
    assert is_verifier_error(error_reason("x")) and not is_verifier_error("wrong") and not is_verifier_error(None)
    completions = ["pass", "fail", "error", "n/a"]
    alone = VerifierSuite([reported_errors])(completions=completions)
    assert [v.status for v in alone] == ["accepted", "rejected", "error", "rejected"]
    assert [v.is_error for v in alone] == [False, False, True, False]
    assert [v.rejected for v in alone] == [False, True, False, True]
    assert alone[2].errors == {"reported_errors": "verifier error: timed out after 5 s"}
    assert alone[2].passed == {"reported_errors": None} and alone[2].scores == {"reported_errors": None}
    assert alone[3].reason == "no verifier applies to this completion" and alone[3].errors == {}

    def judge(other, mode):
        suite = VerifierSuite({"r": reported_errors, "o": other}, mode=mode)
        return [v.status for v in suite(completions=completions)]

    def passes(completions, **kwargs):
        return [1.0] * len(completions)

    def fails(completions, **kwargs):
        return [0.0] * len(completions)

    # "all": a failing member still rejects; otherwise an error leaves the sample undecided
    assert judge(passes, "all") == ["accepted", "rejected", "error", "accepted"]
    assert judge(fails, "all") == ["rejected"] * 4
    # "any": a passing member still accepts; otherwise an error leaves the sample undecided
    assert judge(passes, "any") == ["accepted"] * 4
    assert judge(fails, "any") == ["accepted", "rejected", "error", "rejected"]
    reward = VerifierSuite([reported_errors]).as_reward_function()
    assert reward(completions=completions) == [1.0, 0.0, None, None]


def test_verdict_status_defaults_and_validation():
    assert Verdict(True).status == "accepted" and Verdict(False).status == "rejected"
    assert Verdict(False, status="error").is_error
    with pytest.raises(ValueError, match="contradicts"):
        Verdict(True, status="error")
    with pytest.raises(ValueError, match="status"):
        Verdict(False, status="maybe")
