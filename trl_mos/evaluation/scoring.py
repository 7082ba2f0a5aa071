# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics for sampled solutions: pass@k (unbiased estimator), maj@k (majority voting), and a dataset-level
aggregation that keeps a record per problem."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


Equivalence = Literal["normalized", "exact", "math"] | Callable[[str, str], bool]


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer, got a bool.")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__}.") from None


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (2021): the probability that at least one of `k` samples drawn
    without replacement from `n` samples, `c` of them correct, is correct, `1 - C(n - c, k) / C(n, k)`.

    Computed as `1 - prod_{i = n - c + 1}^{n} (1 - k / i)`, which is exact in real arithmetic and stays accurate in
    floating point for `n` in the thousands (no large binomial coefficients).

    Args:
        n (`int`): samples generated for the problem (`n >= 1`).
        c (`int`): correct samples (`0 <= c <= n`).
        k (`int`): the k of pass@k (`1 <= k <= n`).

    Returns:
        `float`: pass@k for this problem, in [0, 1].

    Raises:
        `ValueError`: if `k > n` or the counts are out of range.

    Example:

    ```python
    >>> round(pass_at_k(n=10, c=3, k=1), 4)
    0.3
    >>> round(pass_at_k(n=10, c=3, k=5), 4)
    0.9167
    ```
    """
    n, c, k = _count(n, "n"), _count(c, "c"), _count(k, "k")
    if n < 1:
        raise ValueError(f"pass@k needs at least one sample, got n={n}.")
    if not 0 <= c <= n:
        raise ValueError(f"The number of correct samples c={c} must be between 0 and n={n}.")
    if not 1 <= k <= n:
        raise ValueError(
            f"k={k} must be between 1 and n={n}, the number of samples: pass@{k} needs at least {k} samples."
        )
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def aggregate_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """Mean pass@k over problems.

    Args:
        num_samples (`list[int]`): samples per problem.
        num_correct (`list[int]`): correct samples per problem.
        k (`int`): the k of pass@k (at most the smallest number of samples).

    Returns:
        `float`: the mean of [`pass_at_k`] over problems.

    Example:

    ```python
    >>> aggregate_pass_at_k([4, 4], [0, 2], k=1)
    0.25
    ```
    """
    num_samples, num_correct = list(num_samples), list(num_correct)
    if len(num_samples) != len(num_correct):
        raise ValueError(f"Got {len(num_samples)} sample counts but {len(num_correct)} correct counts.")
    if not num_samples:
        raise ValueError("No problems to aggregate.")
    return sum(pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct, strict=True)) / len(num_samples)


def _normalize(text: str) -> str:
    from ..verifiers.text import normalize_text

    return normalize_text(text)


def _group(answers: list[str | None], equivalence: Equivalence) -> list[int]:
    """Group index of each answer (-1 for a missing one), groups numbered by first appearance."""
    if equivalence == "math":
        from ..verifiers.math import group_math_answers

        return group_math_answers(answers)
    if callable(equivalence):
        representatives: list[str] = []
        groups = []
        for answer in answers:
            if answer is None:
                groups.append(-1)
                continue
            for index, representative in enumerate(representatives):
                if representative == answer or equivalence(representative, answer):
                    groups.append(index)
                    break
            else:
                representatives.append(answer)
                groups.append(len(representatives) - 1)
        return groups
    if equivalence not in ("normalized", "exact"):
        raise ValueError(f"`equivalence` must be 'normalized', 'exact', 'math' or a callable, got {equivalence!r}.")
    keys: dict[str, int] = {}
    groups = []
    for answer in answers:
        if answer is None:
            groups.append(-1)
            continue
        key = _normalize(answer) if equivalence == "normalized" else answer
        if equivalence == "normalized" and not key:
            groups.append(-1)
            continue
        groups.append(keys.setdefault(key, len(keys)))
    return groups


def majority_vote(
    answers: Sequence[str | None], k: int | None = None, equivalence: Equivalence = "normalized"
) -> tuple[str | None, int]:
    """The most frequent answer among the first `k` answers, answers grouped by equivalence.

    Missing answers (`None`, e.g. nothing could be extracted) do not vote. Ties go to the group that appeared first,
    so the result is deterministic for a given sample order.

    Args:
        answers (`list[str | None]`): the extracted final answers of the samples, in sampling order.
        k (`int`, *optional*): use the first `k` answers (`None`: all of them).
        equivalence (`str` or `callable`, *optional*, defaults to `"normalized"`):
            `"normalized"` (equal after [`~trl_mos.verifiers.normalize_text`]), `"exact"`, `"math"` (equal according
            to math-verify, see [`~trl_mos.verifiers.group_math_answers`]) or a function `(a, b) -> bool`.

    Returns:
        `tuple[str | None, int]`: the first-seen member of the winning group and its vote count; `(None, 0)` when no
        answer votes.

    Example:

    ```python
    >>> majority_vote(["4", "5", " 5", "4", None])
    ('4', 2)
    ```
    """
    answers = list(answers)
    if k is not None:
        k = _count(k, "k")
        if not 1 <= k <= len(answers):
            raise ValueError(f"k={k} must be between 1 and the number of answers ({len(answers)}).")
        answers = answers[:k]
    answers = [None if answer is None else str(answer) for answer in answers]
    groups = _group(answers, equivalence)
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for position, group in enumerate(groups):
        if group < 0:
            continue
        counts[group] = counts.get(group, 0) + 1
        first.setdefault(group, position)
    if not counts:
        return None, 0
    winner = max(counts, key=lambda group: (counts[group], -first[group]))
    return answers[first[winner]], counts[winner]


def answers_equivalent(answer: str | None, reference: str | None, equivalence: Equivalence = "normalized") -> bool:
    """Whether an answer matches a reference under an equivalence (see [`majority_vote`]); for `"math"` the reference
    is the gold of `math_verify.verify`.

    Args:
        answer (`str` or `None`): the answer.
        reference (`str` or `None`): the reference.
        equivalence (`str` or `callable`, *optional*, defaults to `"normalized"`): how to compare.

    Returns:
        `bool`: whether they match (never for a missing answer or reference).

    Example:

    ```python
    >>> answers_equivalent("Paris.", "paris")
    True
    ```
    """
    if answer is None or reference is None:
        return False
    answer, reference = str(answer), str(reference)
    if equivalence == "math":
        from ..verifiers.math import MathWorkerPool

        score = MathWorkerPool.get().verify([(None, answer, reference)], "auto", timeout=5.0)[0][0]
        return score == 1.0
    if callable(equivalence):
        return answer == reference or bool(equivalence(reference, answer))
    if equivalence == "exact":
        return answer == reference
    if equivalence == "normalized":
        return bool(_normalize(answer)) and _normalize(answer) == _normalize(reference)
    raise ValueError(f"`equivalence` must be 'normalized', 'exact', 'math' or a callable, got {equivalence!r}.")


def maj_at_k(
    answers: Sequence[str | None],
    reference: str | None,
    k: int | None = None,
    equivalence: Equivalence = "normalized",
) -> float:
    """maj@k for one problem: 1.0 if the majority answer among the first `k` samples matches the reference, else 0.0.

    Args:
        answers (`list[str | None]`): extracted final answers, in sampling order.
        reference (`str`): the reference answer.
        k (`int`, *optional*): use the first `k` answers (`None`: all).
        equivalence (`str` or `callable`, *optional*, defaults to `"normalized"`): how answers are grouped and
            compared with the reference (see [`majority_vote`]).

    Returns:
        `float`: 1.0 or 0.0.

    Example:

    ```python
    >>> maj_at_k(["4", "5", "5"], reference="5"), maj_at_k(["4", "5", "5"], reference="5", k=1)
    (1.0, 0.0)
    ```
    """
    winner, _ = majority_vote(answers, k=k, equivalence=equivalence)
    return float(answers_equivalent(winner, reference, equivalence))


@dataclass
class EvaluationResult:
    """Dataset-level evaluation.

    Args:
        metrics (`dict[str, float]`): `pass@k` and `maj@k` averaged over problems, plus `num_problems` and
            `num_samples`.
        problems (`list[dict]`): one record per problem: `problem_id`, `num_samples`, `num_correct`, `pass@k` for
            each k, and with answers `majority_answer` and `maj@k` for each k.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _is_correct(value: Any, threshold: float) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return float(value) >= threshold


def evaluate_samples(
    samples: Iterable[Mapping[str, Any]],
    ks: Sequence[int] = (1,),
    problem_key: str = "problem_id",
    correct_key: str = "correct",
    answer_key: str | None = None,
    reference_key: str | None = None,
    equivalence: Equivalence = "normalized",
    threshold: float = 1.0,
) -> EvaluationResult:
    """Aggregates per-sample results (several samples per problem) into pass@k and maj@k, keeping a record per problem.

    Each sample is a mapping (a dict, a `datasets` row) with the problem it belongs to, whether it is correct (a bool,
    or a score compared with `threshold`; `None` = not scored, left out of pass@k) and, for maj@k, its extracted answer
    and the problem's reference answer. Samples of a problem are taken in the order given.

    Args:
        samples (`Iterable[Mapping]`): the samples, e.g. a list of dicts or a `datasets.Dataset`.
        ks (`list[int]`, *optional*, defaults to `(1,)`): the k values; each must be at most the number of scored
            samples of every problem.
        problem_key (`str`, *optional*, defaults to `"problem_id"`): the problem identifier field.
        correct_key (`str`, *optional*, defaults to `"correct"`): the correctness field.
        answer_key (`str`, *optional*): the extracted-answer field; enables maj@k.
        reference_key (`str`, *optional*): the reference-answer field (needed with `answer_key`).
        equivalence (`str` or `callable`, *optional*, defaults to `"normalized"`): answer grouping for maj@k (see
            [`majority_vote`]).
        threshold (`float`, *optional*, defaults to `1.0`): a numeric score counts as correct from this value.

    Returns:
        [`EvaluationResult`]: averaged metrics and one record per problem.

    Example:

    ```python
    >>> samples = [{"problem_id": 0, "correct": True}, {"problem_id": 0, "correct": False},
    ...            {"problem_id": 1, "correct": False}, {"problem_id": 1, "correct": False}]
    >>> result = evaluate_samples(samples, ks=[1, 2])
    >>> result.metrics["pass@1"], result.metrics["pass@2"], result.problems[0]["num_correct"]
    (0.25, 0.5, 1)
    ```
    """
    ks = [_count(k, "k") for k in ks]
    if not ks:
        raise ValueError("Give at least one k.")
    if answer_key is not None and reference_key is None:
        raise ValueError("maj@k needs `reference_key` (the field with the reference answer) along with `answer_key`.")
    by_problem: dict[Any, list[Mapping[str, Any]]] = {}
    total = 0
    for index, sample in enumerate(samples):
        for key in (problem_key, correct_key, answer_key, reference_key):
            if key is not None and key not in sample:
                raise KeyError(f"Sample {index} has no field {key!r}; its fields are {sorted(sample)}.")
        by_problem.setdefault(sample[problem_key], []).append(sample)
        total += 1
    if not by_problem:
        raise ValueError("No samples to evaluate.")
    records = []
    for problem_id, rows in by_problem.items():
        verdicts = [_is_correct(row[correct_key], threshold) for row in rows]
        scored = [verdict for verdict in verdicts if verdict is not None]
        n, c = len(scored), sum(scored)
        record: dict[str, Any] = {"problem_id": problem_id, "num_samples": n, "num_correct": c}
        for k in ks:
            if k > n:
                raise ValueError(
                    f"Problem {problem_id!r} has {n} scored samples, fewer than k={k}; lower k or generate more samples."
                )
            record[f"pass@{k}"] = pass_at_k(n, c, k)
        if answer_key is not None:
            answers = [None if row[answer_key] is None else str(row[answer_key]) for row in rows]
            reference = rows[0][reference_key]
            record["reference"] = reference
            record["majority_answer"] = majority_vote(answers, equivalence=equivalence)[0]
            for k in ks:
                if k > len(answers):
                    raise ValueError(f"Problem {problem_id!r} has {len(answers)} samples, fewer than k={k}.")
                record[f"maj@{k}"] = maj_at_k(answers, reference, k=k, equivalence=equivalence)
        records.append(record)
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"pass@{k}"] = sum(record[f"pass@{k}"] for record in records) / len(records)
    if answer_key is not None:
        for k in ks:
            metrics[f"maj@{k}"] = sum(record[f"maj@{k}"] for record in records) / len(records)
    metrics["num_problems"] = float(len(records))
    metrics["num_samples"] = float(total)
    return EvaluationResult(metrics, records)


_METRICS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")
AVAILABLE_METRICS = ("pass_at_k", "maj_at_k")


def metric_path(name: str) -> str:
    """Path of one of the bundled `evaluate` metric scripts, for `evaluate.load(path)` (which works offline).

    Args:
        name (`str`): `"pass_at_k"` or `"maj_at_k"`.

    Returns:
        `str`: the path of the metric script inside the installed package.

    Example:

    ```python
    >>> import evaluate
    >>> pass_at_k_metric = evaluate.load(metric_path("pass_at_k"))
    >>> pass_at_k_metric.compute(predictions=[[True, False], [False, False]], k=[1, 2])
    {'pass@1': 0.25, 'pass@2': 0.5}
    ```
    """
    if name not in AVAILABLE_METRICS:
        raise ValueError(f"Unknown metric {name!r}; the bundled metrics are {list(AVAILABLE_METRICS)}.")
    return os.path.join(_METRICS_DIR, name, f"{name}.py")
