# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Skill bookkeeping: build a multi-skill dataset and read which skill every row belongs to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, concatenate_datasets


def concatenate_skills(datasets: Mapping[str, Dataset], skill_column: str = "skill") -> Dataset:
    """Concatenates one dataset per skill into a single dataset with a `ClassLabel` skill column.

    The inputs are not modified. Datasets must share their columns (as for [`datasets.concatenate_datasets`]).

    Args:
        datasets (`Mapping[str, Dataset]`):
            Skill name → dataset, in the order the skills should be numbered.
        skill_column (`str`, *optional*, defaults to `"skill"`):
            Name of the column to add.

    Returns:
        [`~datasets.Dataset`]: the rows of every dataset in order, with `skill_column` a `ClassLabel` whose names are
        the keys of `datasets`.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from trl_mos import concatenate_skills
    >>> math = Dataset.from_dict({"prompt": ["1+1="], "completion": ["2"]})
    >>> chat = Dataset.from_dict({"prompt": ["hi"], "completion": ["hello"]})
    >>> train = concatenate_skills({"math": math, "chat": chat})
    >>> train.features["skill"].names, train["skill"]
    (['math', 'chat'], [0, 1])
    ```
    """
    if len(datasets) < 2:
        raise ValueError(f"Mixture-of-Skills needs at least two skills; got {len(datasets)} ({list(datasets)}).")
    names = [str(name) for name in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"Skill names must be unique; got {names}.")
    parts = []
    for skill_id, (name, dataset) in enumerate(datasets.items()):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"Skill {name!r} must be a `datasets.Dataset`, got {type(dataset).__name__}.")
        if len(dataset) == 0:
            raise ValueError(f"Skill {name!r} is empty; every skill needs at least one example.")
        if skill_column in dataset.column_names:
            raise ValueError(
                f"Skill {name!r} already has a column {skill_column!r}; pass another `skill_column` or remove it."
            )
        parts.append(dataset.add_column(skill_column, [skill_id] * len(dataset)))
    combined = concatenate_datasets(parts)
    return combined.cast_column(skill_column, ClassLabel(names=names))


def pack_within_skills(
    dataset: Dataset, pack: Callable[[Dataset, str], Dataset], skill_column: str = "skill"
) -> Dataset:
    """Packs every skill's rows separately, so that every packed row holds examples of one skill only.

    The input is not modified.

    Args:
        dataset (`Dataset`):
            A multi-skill dataset with a skill column (see [`SkillIndex.from_dataset`]).
        pack (`Callable[[Dataset, str], Dataset]`):
            Packs the rows of one skill (given without the skill column, with the skill's name), e.g. TRL's
            `pack_dataset` or the `SFTTrainer`'s own preparation with `packing=True`.
        skill_column (`str`, *optional*, defaults to `"skill"`):
            The skill column.

    Returns:
        [`~datasets.Dataset`]: the packed rows of every skill in skill order, with `skill_column` a `ClassLabel` over
        the skill names.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from trl.data_utils import pack_dataset
    >>> from trl_mos.mixing import pack_within_skills
    >>> data = Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5], [6]], "skill": ["a", "b", "a", "b"]})
    >>> packed = pack_within_skills(data, lambda rows, name: pack_dataset(rows, seq_length=4))
    >>> packed["input_ids"], packed["skill"]
    ([[1, 2, 4, 5], [3, 6]], [0, 1])
    ```
    """
    index = SkillIndex.from_dataset(dataset, skill_column)
    parts = []
    for skill, name in enumerate(index.names):
        packed = pack(dataset.select(index.rows_of(skill)).remove_columns(skill_column), name)
        parts.append(packed.add_column(skill_column, [skill] * len(packed)))
    return concatenate_datasets(parts).cast_column(skill_column, ClassLabel(names=index.names))


def row_lengths(dataset: Dataset) -> np.ndarray | None:
    """Tokens of every row of a tokenized dataset (the length of its `input_ids`), `None` if it has no `input_ids`
    (the collator tokenizes on the fly)."""
    if "input_ids" not in dataset.column_names:
        return None
    column = dataset.select_columns("input_ids").with_format("arrow")[:]["input_ids"]  # honours select / shuffle
    return pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass(frozen=True)
class SkillIndex:
    """Which skill every row of a dataset belongs to.

    Args:
        names (`list[str]`): skill names, indexed by skill id.
        skill_ids (`np.ndarray`): the skill id of every row, shape `(num_rows,)`.
    """

    names: list[str]
    skill_ids: np.ndarray

    @property
    def num_skills(self) -> int:
        return len(self.names)

    @property
    def sizes(self) -> np.ndarray:
        """Number of rows per skill."""
        return np.bincount(self.skill_ids, minlength=self.num_skills)

    def rows_of(self, skill_id: int) -> np.ndarray:
        """Row indices of one skill, in dataset order."""
        return np.flatnonzero(self.skill_ids == skill_id)

    @classmethod
    def from_dataset(cls, dataset, skill_column: str = "skill") -> SkillIndex:
        """Reads the skill column of `dataset` (a `ClassLabel`, integers, or strings).

        With a `ClassLabel`, its names are the skill names, in order. With strings, skills are numbered in order of
        first appearance. With plain integers, skills are named by their number.

        Raises:
            `ValueError`: when the column is missing, when there are fewer than two skills, when a skill named by a
            `ClassLabel` has no row, or when names are duplicated.
        """
        if not isinstance(dataset, Dataset):
            raise TypeError(
                "Mixture-of-Skills needs a map-style `datasets.Dataset` as train dataset (an `IterableDataset` has no "
                f"length to sample from); got {type(dataset).__name__}."
            )
        if skill_column not in dataset.column_names:
            raise ValueError(
                f"The train dataset has no skill column {skill_column!r}; its columns are {dataset.column_names}. "
                "Add one (e.g. with `trl_mos.concatenate_skills`) or set `MoSConfig(skill_column=...)`."
            )
        feature = dataset.features[skill_column]
        values = dataset[skill_column]
        if isinstance(feature, ClassLabel):
            names = list(feature.names)
            skill_ids = np.asarray(values, dtype=np.int64)
        elif all(isinstance(v, str) for v in values):
            names = list(dict.fromkeys(values))
            lookup = {name: i for i, name in enumerate(names)}
            skill_ids = np.asarray([lookup[v] for v in values], dtype=np.int64)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            present = sorted(set(int(v) for v in values))
            names = [str(v) for v in present]
            lookup = {v: i for i, v in enumerate(present)}
            skill_ids = np.asarray([lookup[int(v)] for v in values], dtype=np.int64)
        else:
            raise ValueError(
                f"The skill column {skill_column!r} must hold a `ClassLabel`, strings or integers; got {feature}."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"Skill names must be unique; got {names}.")
        if len(names) < 2:
            raise ValueError(f"Mixture-of-Skills needs at least two skills; the train dataset has {names}.")
        index = cls(names=names, skill_ids=skill_ids)
        empty = [name for name, size in zip(names, index.sizes, strict=True) if size == 0]
        if empty:
            raise ValueError(
                f"Skill(s) {empty} have no rows in the train dataset (after the trainer's preprocessing, which may "
                "drop rows, e.g. ones truncation leaves without completion tokens). Every skill needs examples."
            )
        return index
