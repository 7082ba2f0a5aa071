# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""A mixing benchmark built to discriminate: five skills whose properties say, by construction, how a good mixture
should treat them.

| skill     | train | property                                                       | example                       |
|-----------|-------|----------------------------------------------------------------|-------------------------------|
| `copy`    | 2000  | easy: learned in a few dozen steps, later samples are wasted   | `copy: q w e =` → ` q w e`    |
| `echo`    | 2000  | a near-duplicate of `copy` (another prefix): redundant         | `echo: q w e =` → ` q w e`    |
| `reverse` | 400   | noisy labels: half the *train* answers are a random shuffle    | `reverse: q w e =` → ` e w q` |
| `succ`    | 150   | an easy prerequisite of `rsucc`                                 | `succ: 3 1 2 =` → ` 4 2 3`    |
| `rsucc`   | 50    | hard: `reverse` then `succ`; small                             | `rsucc: 3 1 2 =` → ` 3 2 4`   |

Sizes are strongly imbalanced (40:40:8:3:1). Validation and test answers are always clean, so label noise only costs
what it costs in training. Which static mixture is best is not assumed: `benchmarks/mixing_regret.py` finds it by a
search over mixtures on the same budget.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _letters(rng: random.Random) -> list[str]:
    return [rng.choice(LETTERS) for _ in range(rng.randint(3, 5))]


def _digits(rng: random.Random) -> list[str]:
    return [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 5))]


def _succ(items: list[str]) -> list[str]:
    return [str((int(d) + 1) % 10) for d in items]


def _copy(rng: random.Random) -> tuple[list[str], list[str]]:
    items = _letters(rng)
    return items, items


def _reverse(rng: random.Random) -> tuple[list[str], list[str]]:
    items = _letters(rng)
    return items, items[::-1]


def _succ_task(rng: random.Random) -> tuple[list[str], list[str]]:
    items = _digits(rng)
    return items, _succ(items)


def _rsucc(rng: random.Random) -> tuple[list[str], list[str]]:
    items = _digits(rng)
    return items, _succ(items[::-1])


# name -> (prefix, generator, default train size, default train label-noise rate)
_REGRET_SKILLS: dict[str, tuple[str, Callable[[random.Random], tuple[list[str], list[str]]], int, float]] = {
    "copy": ("copy", _copy, 2000, 0.0),
    "echo": ("echo", _copy, 2000, 0.0),
    "reverse": ("reverse", _reverse, 400, 0.5),
    "succ": ("succ", _succ_task, 150, 0.0),
    "rsucc": ("rsucc", _rsucc, 50, 0.0),
}
REGRET_SKILL_NAMES: list[str] = list(_REGRET_SKILLS)


def make_mixing_regret_datasets(
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    label_noise: float | None = None,
    num_validation_per_skill: int = 100,
    num_test_per_skill: int = 100,
) -> DatasetDict:
    """Generates the five-skill set of the mixing-regret benchmark (see the module docstring for the skills).

    Args:
        seed (`int`, *optional*, defaults to `0`):
            Seed; the same seed gives identical datasets.
        sizes (`dict[str, int]`, *optional*):
            Train size per skill, overriding the defaults (2000, 2000, 400, 150, 50). Keys select and order the
            skills.
        label_noise (`float`, *optional*):
            Share of `reverse` train rows whose answer is replaced by a random shuffle of the items (default 0.5).
            Validation and test rows are always clean.
        num_validation_per_skill (`int`, *optional*, defaults to `100`):
            Validation examples per skill (for every choice a benchmark makes, e.g. the best static mixture).
        num_test_per_skill (`int`, *optional*, defaults to `100`):
            Held-out test examples per skill (only for the reported numbers).

    Returns:
        [`~datasets.DatasetDict`]: splits `"train"`, `"validation"` and `"test"`, with columns `prompt`,
        `completion`, `answer` (`str`), `skill` (`ClassLabel` over the skill names) and `noisy` (`bool`, whether the
        row's answer was corrupted). No prompt occurs in two splits.

    Example:

    ```python
    >>> from trl_mos.tasks import make_mixing_regret_datasets
    >>> data = make_mixing_regret_datasets(seed=0)
    >>> data["train"].features["skill"].names
    ['copy', 'echo', 'reverse', 'succ', 'rsucc']
    ```
    """
    sizes = dict(sizes) if sizes is not None else {name: spec[2] for name, spec in _REGRET_SKILLS.items()}
    unknown = sorted(set(sizes) - set(_REGRET_SKILLS))
    if unknown:
        raise ValueError(f"Unknown skill(s) {unknown}; the skills of this benchmark are {REGRET_SKILL_NAMES}.")
    if any(size < 1 for size in sizes.values()) or min(num_validation_per_skill, num_test_per_skill) < 1:
        raise ValueError("Every skill needs at least one train, one validation and one test example.")
    if label_noise is not None and not 0 <= label_noise <= 1:
        raise ValueError(f"`label_noise` must be in [0, 1]; got {label_noise}.")

    names = list(sizes)
    features = Features(
        {
            "prompt": Value("string"),
            "completion": Value("string"),
            "answer": Value("string"),
            "skill": ClassLabel(names=names),
            "noisy": Value("bool"),
        }
    )
    split_sizes = (("test", num_test_per_skill), ("validation", num_validation_per_skill))
    splits: dict[str, dict[str, list]] = {
        split: {k: [] for k in features} for split in ("train", "validation", "test")
    }
    for skill_id, name in enumerate(names):
        prefix, generator, _, default_noise = _REGRET_SKILLS[name]
        noise = default_noise if label_noise is None or default_noise == 0 else label_noise
        rng = random.Random(f"regret-{seed}-{name}")  # one stream per skill: changing one size leaves others alone
        held_out: set[str] = set()
        for split, size in (*split_sizes, ("train", sizes[name])):
            made = attempts = 0
            while made < size:
                attempts += 1
                if attempts > 100 * size + 1000:
                    raise ValueError(f"Skill {name!r} cannot produce {size} distinct {split} prompts.")
                items, answer = generator(rng)
                prompt = f"{prefix}: {' '.join(items)} ="
                if prompt in held_out:  # held-out prompts are distinct and never occur in another split
                    continue
                noisy = False
                if split == "train":
                    if rng.random() < noise:
                        shuffled = list(answer)
                        while len(set(shuffled)) > 1 and shuffled == answer:
                            rng.shuffle(shuffled)
                        noisy, answer = shuffled != answer, shuffled
                else:
                    held_out.add(prompt)
                columns = splits[split]
                columns["prompt"].append(prompt)
                columns["completion"].append(" " + " ".join(answer))
                columns["answer"].append(" ".join(answer))
                columns["skill"].append(skill_id)
                columns["noisy"].append(noisy)
                made += 1
    return DatasetDict({split: Dataset.from_dict(columns, features=features) for split, columns in splits.items()})


def sample_static_mixture(dataset: Dataset, probabilities: dict[str, float], num_rows: int, seed: int = 0) -> Dataset:
    """Draws `num_rows` rows i.i.d. from a static mixture over skills: a skill with probability `probabilities`, then a
    row of that skill uniformly (with replacement) — the per-example sampling of a static mixing strategy, made into a
    dataset that a stock `SFTTrainer` reads once in order.

    Args:
        dataset ([`~datasets.Dataset`]): rows with a `ClassLabel` column `skill`.
        probabilities (`dict[str, float]`): weight per skill name (normalised here; every skill of the dataset must
            be named, weights non-negative, not all zero).
        num_rows (`int`): rows to draw, e.g. `max_steps * batch_size`.
        seed (`int`, *optional*, defaults to `0`): seed of the draw.

    Returns:
        [`~datasets.Dataset`]: the drawn rows, in draw order.

    Example:

    ```python
    >>> data = make_mixing_regret_datasets()["train"]
    >>> mix = sample_static_mixture(data, {"copy": 1, "echo": 1, "reverse": 1, "succ": 1, "rsucc": 1}, 640)
    >>> len(mix)
    640
    ```
    """
    import numpy as np

    names = dataset.features["skill"].names
    if sorted(probabilities) != sorted(names):
        raise ValueError(f"Give a weight for every skill {names}; got {sorted(probabilities)}.")
    weights = np.array([float(probabilities[name]) for name in names])
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"Weights must be finite, non-negative and not all zero; got {probabilities}.")
    if num_rows < 1:
        raise ValueError(f"`num_rows` must be positive; got {num_rows}.")
    weights = weights / weights.sum()
    skills = np.asarray(dataset["skill"])
    rows_of = [np.flatnonzero(skills == i) for i in range(len(names))]
    empty = [names[i] for i in range(len(names)) if weights[i] > 0 and len(rows_of[i]) == 0]
    if empty:
        raise ValueError(f"Skill(s) {empty} have weight but no rows.")
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(names), size=num_rows, p=weights)
    indices = [int(rows_of[s][rng.integers(len(rows_of[s]))]) for s in drawn]
    return dataset.select(indices)
