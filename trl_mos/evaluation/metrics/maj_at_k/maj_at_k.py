# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""maj@k as an `evaluate` metric: load it offline with `evaluate.load(trl_mos.evaluation.metric_path("maj_at_k"))`."""

import datasets
import evaluate

from trl_mos.evaluation import maj_at_k


_DESCRIPTION = """
maj@k (majority voting, self-consistency): for each problem, the most frequent final answer among its first k sampled
answers (answers grouped by equivalence: normalised text, exact text, or math-verify for math) is compared with the
reference; the metric is the fraction of problems where it matches. Ties go to the answer seen first.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[str | None]]`): for each problem, the extracted final answer of each sample (None when
        no answer was found).
    references (`list[str]`): the reference answer of each problem.
    k (`int` or `list[int]`, *optional*): the k values (first k samples); `None` uses all samples.
    equivalence (`str`, *optional*, defaults to `"normalized"`): `"normalized"`, `"exact"` or `"math"`.

Returns:
    `dict[str, float]`: `{"maj@k": value}` for each k (`"maj"` when k is None).

Example:

    >>> import evaluate
    >>> from trl_mos.evaluation import metric_path
    >>> metric = evaluate.load(metric_path("maj_at_k"))
    >>> metric.compute(predictions=[["4", "5", "5"], ["1", "1", "2"]], references=["5", "2"], k=3)
    {'maj@3': 0.5}
"""

_CITATION = """
@inproceedings{wang2023selfconsistency,
  title={Self-Consistency Improves Chain of Thought Reasoning in Language Models},
  author={Wang, Xuezhi and others},
  booktitle={ICLR},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MajAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, k=None, equivalence="normalized"):
        ks = [k] if k is None or isinstance(k, int) else list(k)
        results = {}
        for value in ks:
            scores = [
                maj_at_k(answers, reference, value, equivalence)
                for answers, reference in zip(predictions, references, strict=True)
            ]
            results["maj" if value is None else f"maj@{value}"] = sum(scores) / len(scores) if scores else 0.0
        return results
