# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""A self-training task where ReST^EM has room to work: sorting lists of digits.

`sort: 7 3 9 3 1 =` → ` 1 3 3 7 9`. The answer is verifiable by exact match, a two-layer model can learn the task, and
a model warm-started on a few reference solutions sorts some lists right greedily while its samples at temperature
1.0 are right far more often (low pass@1, high pass@k): the gap ReST^EM turns into training data.

Measured once (seed 0, hidden 128, 128 reference solutions, constant learning rate 1e-3, batch 32; pass@k from 16
samples at T=1.0, top-p 0.95 on 64 validation problems): after 100 SFT steps greedy pass@1 is 9.4 % and pass@16
26.6 %, and 36 % of the problems get a correct sample among 16 at the E-step's T=0.7; after 150 steps greedy pass@1
is already 48 %. The task is learnable in a few hundred steps, and the 100-step model leaves room.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict


def make_sorting_problems(
    seed: int = 0,
    num_warm_start: int = 128,
    num_train: int = 256,
    num_validation: int = 128,
    num_test: int = 128,
    min_length: int = 4,
    max_length: int = 7,
) -> DatasetDict:
    """Generates digit-sorting problems for self-training.

    Args:
        seed (`int`, *optional*, defaults to `0`):
            Seed; the same seed gives identical splits.
        num_warm_start (`int`, *optional*, defaults to `128`):
            Problems with reference solutions for a warm-start SFT (split `"warm_start"`).
        num_train (`int`, *optional*, defaults to `256`):
            Problems self-training samples solutions for (split `"train"`; its `completion` column is there for
            reference only: ReST^EM needs only `prompt` and `solution`).
        num_validation (`int`, *optional*, defaults to `128`):
            Problems for every choice (best iteration, early stopping).
        num_test (`int`, *optional*, defaults to `128`):
            Held-out problems, only for the reported numbers.
        min_length (`int`, *optional*, defaults to `4`):
            Shortest list.
        max_length (`int`, *optional*, defaults to `7`):
            Longest list.

    Returns:
        [`~datasets.DatasetDict`]: splits `"warm_start"`, `"train"`, `"validation"` and `"test"` with columns
        `prompt` (`"sort: 7 3 9 ="`), `completion` (`" 3 7 9"`) and `solution` (`"3 7 9"`, what a verifier checks).
        No prompt occurs in two splits.

    Example:

    ```python
    >>> from trl_mos.tasks import make_sorting_problems
    >>> from trl_mos.tasks.skills import normalize_answer
    >>> from trl_mos.verifiers import make_exact_match_verifier
    >>> problems = make_sorting_problems(seed=0)
    >>> verifier = make_exact_match_verifier(column="solution", normalize=normalize_answer)
    >>> row = problems["test"][0]
    >>> verifier(prompts=[row["prompt"]], completions=[row["completion"]], solution=[row["solution"]])
    [1.0]
    ```
    """
    if min(num_warm_start, num_train, num_validation, num_test) < 1:
        raise ValueError("Every split needs at least one problem.")
    if not 2 <= min_length <= max_length:
        raise ValueError(f"Need 2 <= min_length <= max_length; got {min_length} and {max_length}.")
    rng = random.Random(f"sorting-{seed}")
    seen: set[str] = set()
    splits = {}
    sizes = (("test", num_test), ("validation", num_validation), ("warm_start", num_warm_start), ("train", num_train))
    for split, size in sizes:
        columns: dict[str, list[str]] = {"prompt": [], "completion": [], "solution": []}
        attempts = 0
        while len(columns["prompt"]) < size:
            attempts += 1
            if attempts > 100 * size + 1000:
                raise ValueError(f"Cannot generate {size} distinct {split} problems; raise `max_length`.")
            items = [str(rng.randint(0, 9)) for _ in range(rng.randint(min_length, max_length))]
            prompt = "sort: " + " ".join(items) + " ="
            if prompt in seen:
                continue
            seen.add(prompt)
            answer = " ".join(sorted(items))
            columns["prompt"].append(prompt)
            columns["completion"].append(" " + answer)
            columns["solution"].append(answer)
        splits[split] = Dataset.from_dict(columns)
    return DatasetDict({name: splits[name] for name in ("warm_start", "train", "validation", "test")})
