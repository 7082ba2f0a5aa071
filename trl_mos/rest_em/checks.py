# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Input checks of [`ReSTEMTrainer`]: bad input fails with what to fix, before any model is loaded or anything
generated."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from datasets import Dataset, IterableDataset
from transformers.utils import logging

from ..verifiers import MissingColumnError, required_columns, verifier_name


logger = logging.get_logger(__name__)


def check_verifiers(verifiers: Callable | Sequence[Callable] | None) -> list[Callable]:
    """The verifiers as a list; raises if there are none or one is not callable."""
    if callable(verifiers):
        verifiers = [verifiers]
    if verifiers is None or len(verifiers) == 0:
        raise ValueError(
            "ReSTEMTrainer needs at least one verifier to decide which samples are correct, e.g. "
            "`verifiers=[math_verifier]` (from trl_mos.verifiers) or any TRL reward function such as "
            "`trl.rewards.accuracy_reward`."
        )
    verifiers = list(verifiers)
    for verifier in verifiers:
        if not callable(verifier):
            raise TypeError(
                f"Every verifier must be a function `f(prompts, completions, completion_ids, **columns) -> "
                f"list[float | None]`, got {type(verifier).__name__}: {verifier!r}."
            )
    return verifiers


def check_problems(dataset: Dataset | None, name: str, verifiers: Sequence[Callable], required: bool) -> None:
    """Checks that `dataset` is a non-empty `datasets.Dataset` with a `"prompt"` column and the verifiers' columns."""
    if dataset is None:
        if required:
            raise ValueError(
                f"`{name}` is required: the problems to self-train on, with a 'prompt' column and the columns the "
                "verifiers need."
            )
        return
    if isinstance(dataset, IterableDataset) or not isinstance(dataset, Dataset):
        raise TypeError(
            f"`{name}` must be a `datasets.Dataset` (ReST^EM samples every problem in every iteration), got "
            f"{type(dataset).__name__}."
        )
    columns = list(dataset.column_names)
    if "prompt" not in columns:
        raise ValueError(
            f"`{name}` has no 'prompt' column; its columns are {columns}. Rename the column that holds the problem "
            "statements to 'prompt' (plain text or a list of chat messages), e.g. "
            f"`{name} = {name}.rename_column('question', 'prompt')`."
        )
    if len(dataset) == 0:
        raise ValueError(f"`{name}` is empty.")
    for verifier in verifiers:
        missing = sorted(required_columns(verifier) - set(columns))
        if missing:
            raise MissingColumnError(
                f"The verifier '{verifier_name(verifier)}' needs the column(s) {missing}, which `{name}` lacks; "
                f"its columns are {columns}. Add them (e.g. the reference answer as 'solution') or rename the "
                "matching column."
            )


def warn_about_settings(args, eval_dataset: Dataset | None) -> None:
    """Warns about settings that run, but not as ReST^EM intends."""
    if args.early_stopping_patience is not None and eval_dataset is None:
        logger.warning("`early_stopping_patience` needs an `eval_dataset` to measure improvement; it is ignored.")
    if args.completion_only_loss is False:
        logger.warning(
            "`completion_only_loss=False`: the M-step trains on the prompt tokens too, unlike ReST^EM, whose loss is "
            "on the solution tokens only."
        )
