# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""A multi-skill instruction set: four skills that differ strongly in size and in difficulty.

Every example is in TRL's prompt–completion format, e.g. `{"prompt": "reverse: a b c =", "completion": " c b a"}`,
with the skill in a `ClassLabel` column `skill` and the bare expected answer in `answer`. Items are space-separated so
that every symbol is one token of the tiny tokenizer, which keeps the skills learnable by a two-layer model.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _copy(rng: random.Random) -> tuple[str, str]:
    items = [rng.choice(LETTERS) for _ in range(rng.randint(3, 6))]
    return "copy: " + " ".join(items) + " =", " ".join(items)


def _reverse(rng: random.Random) -> tuple[str, str]:
    items = [rng.choice(LETTERS) for _ in range(rng.randint(3, 6))]
    return "reverse: " + " ".join(items) + " =", " ".join(reversed(items))


def _sort(rng: random.Random) -> tuple[str, str]:
    items = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 6))]
    return "sort: " + " ".join(items) + " =", " ".join(sorted(items))


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 49), rng.randint(0, 49)
    return f"add: {a} + {b} =", str(a + b)


# name -> (generator, default train size); sizes 40:10:2:1, difficulty roughly increasing down the list
_SKILLS: dict[str, tuple[Callable[[random.Random], tuple[str, str]], int]] = {
    "copy": (_copy, 4000),
    "reverse": (_reverse, 1000),
    "sort": (_sort, 200),
    "add": (_add, 100),
}
SKILL_NAMES: list[str] = list(_SKILLS)


def normalize_answer(text: str) -> str:
    """Normalises an answer for exact matching: first line only, surrounding whitespace stripped, runs of whitespace
    collapsed to one space.

    Args:
        text (`str`): a model completion or a reference answer.

    Returns:
        `str`: the normalised answer.

    Example:

    ```python
    >>> normalize_answer("  c  b a \\nadd: 1 + 2 =")
    'c b a'
    ```
    """
    first_line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return " ".join(first_line.split())


def check_skill_answer(completion: str, answer: str) -> bool:
    """Checker for the multi-skill set: normalised exact match of `completion` against `answer`.

    Args:
        completion (`str`): the generated completion (special tokens already removed).
        answer (`str`): the reference answer, e.g. the `answer` column.

    Returns:
        `bool`: whether the completion is exactly right.

    Example:

    ```python
    >>> check_skill_answer(" c b a", "c b a"), check_skill_answer(" c b", "c b a")
    (True, False)
    ```
    """
    return normalize_answer(completion) == normalize_answer(answer)


def make_skill_datasets(
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    num_test_per_skill: int = 100,
) -> DatasetDict:
    """Generates the bundled multi-skill instruction set.

    | skill     | default train size | example prompt → completion |
    |-----------|--------------------|-----------------------------|
    | `copy`    | 4000               | `copy: q w e =` → ` q w e`  |
    | `reverse` | 1000               | `reverse: q w e =` → ` e w q` |
    | `sort`    | 200                | `sort: 3 1 2 =` → ` 1 2 3`  |
    | `add`     | 100                | `add: 12 + 30 =` → ` 42`    |

    Held-out prompts never occur in the train split.

    Args:
        seed (`int`, *optional*, defaults to `0`):
            Seed; the same seed gives identical datasets.
        sizes (`dict[str, int]`, *optional*):
            Train size per skill, overriding the defaults above. Keys select (and order) the skills.
        num_test_per_skill (`int`, *optional*, defaults to `100`):
            Held-out examples per skill.

    Returns:
        [`~datasets.DatasetDict`]: splits `"train"` and `"test"`, with columns `prompt`, `completion`, `answer`
        (`str`) and `skill` (`ClassLabel` over the skill names).

    Example:

    ```python
    >>> from trl_mos.tasks import make_skill_datasets
    >>> data = make_skill_datasets(seed=0)
    >>> data["train"].features["skill"].names
    ['copy', 'reverse', 'sort', 'add']
    ```
    """
    sizes = dict(sizes) if sizes is not None else {name: size for name, (_, size) in _SKILLS.items()}
    unknown = sorted(set(sizes) - set(_SKILLS))
    if unknown:
        raise ValueError(f"Unknown skill(s) {unknown}; the bundled skills are {SKILL_NAMES}.")
    if any(size < 1 for size in sizes.values()) or num_test_per_skill < 1:
        raise ValueError("Every skill needs at least one train and one test example.")

    names = list(sizes)
    features = Features(
        {
            "prompt": Value("string"),
            "completion": Value("string"),
            "answer": Value("string"),
            "skill": ClassLabel(names=names),
        }
    )
    splits: dict[str, dict[str, list]] = {split: {k: [] for k in features} for split in ("train", "test")}
    for skill_id, name in enumerate(names):
        generator = _SKILLS[name][0]
        rng = random.Random(f"{seed}-{name}")  # one stream per skill: changing one size leaves the others alone
        test_prompts: set[str] = set()
        for split, size in (("test", num_test_per_skill), ("train", sizes[name])):
            made = attempts = 0
            while made < size:
                attempts += 1
                if attempts > 100 * size + 1000:
                    raise ValueError(
                        f"Skill {name!r} cannot produce {size} {split} prompts distinct from the test set."
                    )
                prompt, answer = generator(rng)
                if prompt in test_prompts:  # test prompts are distinct and never occur in train
                    continue
                if split == "test":
                    test_prompts.add(prompt)
                columns = splits[split]
                columns["prompt"].append(prompt)
                columns["completion"].append(" " + answer)
                columns["answer"].append(answer)
                columns["skill"].append(skill_id)
                made += 1
    return DatasetDict({split: Dataset.from_dict(columns, features=features) for split, columns in splits.items()})


def evaluate_skill_accuracy(
    model,
    tokenizer,
    dataset: Dataset,
    max_new_tokens: int = 16,
    batch_size: int = 128,
    show_progress: bool = False,
) -> dict[str, float]:
    """Greedy per-skill exact-match accuracy of `model` on a split made by [`make_skill_datasets`].

    Args:
        model ([`~transformers.PreTrainedModel`]): the causal LM.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer.
        dataset ([`~datasets.Dataset`]): rows with `prompt`, `answer` and a `ClassLabel` column `skill`.
        max_new_tokens (`int`, *optional*, defaults to `16`): longest completion.
        batch_size (`int`, *optional*, defaults to `128`): prompts per `generate` call.
        show_progress (`bool`, *optional*, defaults to `False`): show a progress bar.

    Returns:
        `dict[str, float]`: accuracy per skill name, in the order of the `ClassLabel`, plus `"balanced"`, the
        unweighted mean over skills.

    Example:

    ```python
    >>> scores = evaluate_skill_accuracy(model, tokenizer, make_skill_datasets()["test"])
    >>> sorted(scores)
    ['add', 'balanced', 'copy', 'reverse', 'sort']
    ```
    """
    from ..generation import generate_completions  # torch-heavy; keep `import trl_mos.tasks` light

    names = dataset.features["skill"].names
    outputs = generate_completions(
        model,
        tokenizer,
        dataset["prompt"],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        show_progress=show_progress,
    )
    correct = {name: 0 for name in names}
    total = {name: 0 for name in names}
    for (completion,), answer, skill in zip(outputs, dataset["answer"], dataset["skill"], strict=True):
        correct[names[skill]] += check_skill_answer(completion, answer)
        total[names[skill]] += 1
    scores = {name: correct[name] / total[name] for name in names if total[name]}
    scores["balanced"] = sum(scores.values()) / len(scores)
    return scores
