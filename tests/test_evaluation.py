# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import os
import random
from fractions import Fraction
from math import comb

import pytest

from trl_mos.evaluation import (
    AVAILABLE_METRICS,
    aggregate_pass_at_k,
    answers_equivalent,
    evaluate_samples,
    maj_at_k,
    majority_vote,
    metric_path,
    pass_at_k,
)


def _exact_pass_at_k(n, c, k):
    return 1 - Fraction(comb(n - c, k), comb(n, k))


def test_pass_at_k_matches_the_combinatorial_definition():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(float(_exact_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(1000, 5000)
        c, k = rng.randint(0, n), rng.randint(1, 200)
        exact = float(_exact_pass_at_k(n, c, k))  # exact rational arithmetic with huge binomials
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert pass_at_k(5000, 1, 1) == pytest.approx(1 / 5000, rel=1e-12)
    assert 0.0 <= pass_at_k(10_000, 3, 7) <= 1.0


def test_pass_at_k_simple_values():
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # fewer wrong samples than k
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert aggregate_pass_at_k([4, 4], [0, 2], k=1) == 0.25


@pytest.mark.parametrize(
    "n, c, k, message",
    [
        (5, 2, 6, "k=6 must be between 1 and n=5"),
        (5, 2, 0, "k=0 must be between 1 and n=5"),
        (5, 6, 1, "c=6 must be between 0 and n=5"),
        (0, 0, 1, "at least one sample"),
    ],
)
def test_pass_at_k_validation(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_pass_at_k_types():
    with pytest.raises(TypeError, match="integer"):
        pass_at_k(5.0, 1, 1)
    with pytest.raises(TypeError, match="bool"):
        pass_at_k(5, True, 1)
    with pytest.raises(ValueError, match="sample counts"):
        aggregate_pass_at_k([1, 2], [1], 1)


def test_majority_vote():
    assert majority_vote(["4", "5", " 5", "4", None]) == ("4", 2)  # tie: the answer seen first wins
    assert majority_vote(["5", "4", "4", "5"]) == ("5", 2)
    assert majority_vote(["a", "B", "b"]) == ("B", 2)
    assert majority_vote(["a", "B", "b"], equivalence="exact") == ("a", 1)
    assert majority_vote([None, None]) == (None, 0)
    assert majority_vote(["1", "2", "2", "2"], k=2) == ("1", 1)
    same_length = lambda a, b: len(a) == len(b)  # noqa: E731
    assert majority_vote(["x", "yy", "zz", "w"], equivalence=same_length) == ("x", 2)  # a tie
    assert majority_vote(["x", "yy", "zz", "w", "vv"], equivalence=same_length) == ("yy", 3)
    with pytest.raises(ValueError, match="k=5"):
        majority_vote(["1"], k=5)
    with pytest.raises(ValueError, match="equivalence"):
        majority_vote(["1"], equivalence="fuzzy")


def test_maj_at_k():
    assert maj_at_k(["4", "5", "5"], "5") == 1.0
    assert maj_at_k(["4", "5", "5"], "5", k=1) == 0.0
    assert maj_at_k([None, None], "5") == 0.0
    assert maj_at_k(["Paris.", "paris", "Rome"], "PARIS") == 1.0
    assert maj_at_k(["1/2", "0.5", "3", "3"], r"\frac{1}{2}", equivalence="math") == 1.0
    assert maj_at_k(["1/2", "3", "3"], "0.5", equivalence="math") == 0.0
    assert answers_equivalent("0.50", "1/2", "math") and not answers_equivalent(None, "1")


def test_evaluate_samples_keeps_problem_records():
    samples = [
        {"problem_id": "a", "correct": True, "answer": "4", "reference": "4"},
        {"problem_id": "a", "correct": False, "answer": "5", "reference": "4"},
        {"problem_id": "a", "correct": True, "answer": "4", "reference": "4"},
        {"problem_id": "b", "correct": 0.0, "answer": "1", "reference": "2"},
        {"problem_id": "b", "correct": 1.0, "answer": "2", "reference": "2"},
        {"problem_id": "b", "correct": None, "answer": None, "reference": "2"},  # not scored
        {"problem_id": "b", "correct": 0.0, "answer": "1", "reference": "2"},
    ]
    result = evaluate_samples(samples, ks=[1, 2], answer_key="answer", reference_key="reference")
    a, b = result.problems
    assert (a["problem_id"], a["num_samples"], a["num_correct"]) == ("a", 3, 2)
    assert (b["num_samples"], b["num_correct"]) == (3, 1)
    assert a["pass@1"] == pytest.approx(2 / 3) and b["pass@2"] == pytest.approx(pass_at_k(3, 1, 2))
    assert a["majority_answer"] == "4" and b["majority_answer"] == "1"
    assert (a["maj@1"], a["maj@2"], b["maj@1"], b["maj@2"]) == (1.0, 1.0, 0.0, 0.0)
    assert result.metrics["pass@1"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert result.metrics["maj@2"] == 0.5
    assert result.metrics["num_problems"] == 2 and result.metrics["num_samples"] == 7


def test_evaluate_samples_threshold_and_errors():
    samples = [{"problem_id": 0, "correct": 0.6}, {"problem_id": 0, "correct": 0.4}]
    assert evaluate_samples(samples, threshold=0.5).metrics["pass@1"] == 0.5
    with pytest.raises(ValueError, match="Problem 0 has 2 scored samples, fewer than k=3"):
        evaluate_samples(samples, ks=[3])
    with pytest.raises(KeyError, match="Sample 0 has no field 'problem'"):
        evaluate_samples(samples, problem_key="problem")
    with pytest.raises(ValueError, match="reference_key"):
        evaluate_samples(samples, answer_key="answer")
    with pytest.raises(ValueError, match="No samples"):
        evaluate_samples([])


def test_evaluate_samples_accepts_a_dataset():
    from datasets import Dataset

    dataset = Dataset.from_dict({"problem_id": [0, 0, 1, 1], "correct": [True, True, False, True]})
    assert evaluate_samples(dataset, ks=[1, 2]).metrics["pass@2"] == 1.0


def test_evaluate_metric_modules_load_offline(monkeypatch, tmp_path):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert AVAILABLE_METRICS == ("pass_at_k", "maj_at_k")
    for name in AVAILABLE_METRICS:
        assert os.path.isfile(metric_path(name))
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        metric_path("bleu")
    pass_metric = evaluate.load(metric_path("pass_at_k"), cache_dir=str(tmp_path))
    assert pass_metric.compute(predictions=[[True, False], [False, False]], k=[1, 2]) == {
        "pass@1": 0.25,
        "pass@2": 0.5,
    }
    maj_metric = evaluate.load(metric_path("maj_at_k"), cache_dir=str(tmp_path))
    result = maj_metric.compute(predictions=[["4", "5", "5"], ["1", "1", "2"]], references=["5", "2"], k=[1, 3])
    assert result == {"maj@1": 0.0, "maj@3": 0.5}
    math_result = maj_metric.compute(
        predictions=[["1/2", "0.5", "3"]], references=[r"\frac{1}{2}"], equivalence="math"
    )
    assert math_result == {"maj": 1.0}
