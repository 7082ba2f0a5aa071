# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Arithmetic word problems with a verifiable final answer, for self-training (ReST^EM) and its evaluation.

Each problem has a `prompt`, the gold final answer in `solution` (the column name TRL's `accuracy_reward` reads) and a
worked reference solution in `completion` that ends with `The answer is \\boxed{N}.`, for a warm-start SFT.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict


_NAMES = ["Tom", "Ann", "Sam", "Mia", "Ben", "Eva", "Leo", "Zoe"]
_ITEMS = ["apples", "coins", "books", "pens", "cats", "bags"]


def _problem(rng: random.Random, max_number: int) -> tuple[str, str, int]:
    """Returns (question, worked solution, answer)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(1, max_number), rng.randint(1, max_number)
        question = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        steps, answer = f"{a} + {b} = {a + b}.", a + b
    elif kind == 1:
        a = rng.randint(2, max_number)
        b = rng.randint(1, a)
        question = f"{name} has {a} {item} and loses {b}. How many {item} are left?"
        steps, answer = f"{a} - {b} = {a - b}.", a - b
    elif kind == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        question = f"{name} has {a} bags with {b} {item} in each bag. How many {item} in total?"
        steps, answer = f"{a} * {b} = {a * b}.", a * b
    else:
        a, b = rng.randint(1, max_number), rng.randint(1, max_number)
        c = rng.randint(1, a + b)
        question = f"{name} has {a} {item}, gets {b} more and then loses {c}. How many {item} are left?"
        steps, answer = f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}.", a + b - c
    return question, f" {steps} The answer is \\boxed{{{answer}}}.", answer


def make_arithmetic_problems(
    seed: int = 0,
    num_train: int = 512,
    num_validation: int = 64,
    num_test: int = 128,
    max_number: int = 20,
) -> DatasetDict:
    r"""Generates arithmetic word problems with verifiable answers.

    Four templates: addition, subtraction, multiplication of one-digit numbers, and a two-step add-then-subtract.
    Prompts are `"Question: ...\nAnswer:"`; no prompt occurs in two splits.

    Args:
        seed (`int`, *optional*, defaults to `0`):
            Seed; the same seed gives identical splits.
        num_train (`int`, *optional*, defaults to `512`):
            Training problems.
        num_validation (`int`, *optional*, defaults to `64`):
            Validation problems (ReST^EM selects its best iteration on these).
        num_test (`int`, *optional*, defaults to `128`):
            Held-out test problems.
        max_number (`int`, *optional*, defaults to `20`):
            Largest operand of additions and subtractions.

    Returns:
        [`~datasets.DatasetDict`]: splits `"train"`, `"validation"` and `"test"` with columns `prompt`,
        `completion` (a worked solution ending in `\boxed{N}`) and `solution` (the gold answer, e.g. `"8"`).

    Example:

    ```python
    >>> from trl_mos.tasks import make_arithmetic_problems
    >>> problems = make_arithmetic_problems(seed=0)
    >>> problems["train"][0]["solution"].isdigit()
    True
    ```
    """
    if min(num_train, num_validation, num_test) < 1 or max_number < 2:
        raise ValueError("Every split needs at least one problem and `max_number` must be at least 2.")
    rng = random.Random(f"arithmetic-{seed}")
    seen: set[str] = set()
    splits = {}
    for split, size in (("test", num_test), ("validation", num_validation), ("train", num_train)):
        columns: dict[str, list[str]] = {"prompt": [], "completion": [], "solution": []}
        attempts = 0
        while len(columns["prompt"]) < size:
            attempts += 1
            if attempts > 100 * size + 1000:
                raise ValueError(f"Cannot generate {size} distinct {split} problems; raise `max_number`.")
            question, worked, answer = _problem(rng, max_number)
            prompt = f"Question: {question}\nAnswer:"
            if prompt in seen:
                continue
            seen.add(prompt)
            columns["prompt"].append(prompt)
            columns["completion"].append(worked)
            columns["solution"].append(str(answer))
        splits[split] = Dataset.from_dict(columns)
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})
