# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics for sampled solutions: pass@k, maj@k, dataset-level aggregation with per-problem records, and
the same metrics as `evaluate` modules loadable offline from the installed package ([`metric_path`])."""

from .scoring import (
    AVAILABLE_METRICS,
    EvaluationResult,
    aggregate_pass_at_k,
    answers_equivalent,
    evaluate_samples,
    maj_at_k,
    majority_vote,
    metric_path,
    pass_at_k,
)


__all__ = [
    "AVAILABLE_METRICS",
    "EvaluationResult",
    "aggregate_pass_at_k",
    "answers_equivalent",
    "evaluate_samples",
    "maj_at_k",
    "majority_vote",
    "metric_path",
    "pass_at_k",
]
