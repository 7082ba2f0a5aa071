# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""pass@k as an `evaluate` metric: load it offline with `evaluate.load(trl_mos.evaluation.metric_path("pass_at_k"))`."""

import datasets
import evaluate

from trl_mos.evaluation import aggregate_pass_at_k


_DESCRIPTION = """
pass@k: the probability that at least one of k samples is correct, estimated without bias from n >= k samples per
problem of which c are correct (Chen et al., 2021): 1 - C(n - c, k) / C(n, k), averaged over problems. The samples are
judged beforehand (e.g. with trl_mos.verifiers.code_verifier); this metric only aggregates the verdicts.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[bool]]`): for each problem, whether each of its samples is correct.
    k (`int` or `list[int]`, *optional*, defaults to `1`): the k values; each at most the number of samples of every
        problem.

Returns:
    `dict[str, float]`: `{"pass@k": value}` for each k.

Example:

    >>> import evaluate
    >>> from trl_mos.evaluation import metric_path
    >>> metric = evaluate.load(metric_path("pass_at_k"))
    >>> metric.compute(predictions=[[True, False], [False, False]], k=[1, 2])
    {'pass@1': 0.25, 'pass@2': 0.5}
"""

_CITATION = """
@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Chen, Mark and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("bool"))}),
        )

    def _compute(self, predictions, k=1):
        ks = [k] if isinstance(k, int) else list(k)
        num_samples = [len(samples) for samples in predictions]
        num_correct = [sum(bool(sample) for sample in samples) for samples in predictions]
        return {f"pass@{value}": aggregate_pass_at_k(num_samples, num_correct, value) for value in ks}
