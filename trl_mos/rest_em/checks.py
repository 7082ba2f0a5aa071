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


def check_max_length(prompt_ids: Sequence[Sequence[int]], args) -> None:
    """Checks, before anything is generated, that the M-step's `max_length` leaves room for the solutions: refuses
    when some problem's prompt alone fills it (its solutions would be cut away entirely), and warns with the numbers
    when kept solutions may be cut. Without truncation (`max_length=None`) or with packing there is nothing to check."""
    max_length = args.max_length
    if max_length is None or args.packing or getattr(args, "truncation_mode", "keep_start") != "keep_start":
        return
    lengths = [len(ids) for ids in prompt_ids]
    longest, budget = max(lengths), args.max_completion_length
    no_room = sum(1 for n in lengths if n >= max_length)
    if no_room:
        raise ValueError(
            f"`max_length={max_length}` leaves no room for a solution after {no_room} of the {len(lengths)} training "
            f"prompts (the longest has {longest} tokens): the M-step would train on none of their solutions' tokens. "
            f"Raise `max_length` to at least {longest + budget} (the longest prompt + `max_completion_length`), set "
            "`max_length=None`, or drop those problems."
        )
    if longest + budget > max_length:
        cut = sum(1 for n in lengths if n + budget > max_length)
        logger.warning(
            f"`max_length={max_length}` is shorter than the longest prompt ({longest} tokens) + "
            f"`max_completion_length` ({budget}) = {longest + budget}: the kept solutions of up to {cut} of the "
            f"{len(lengths)} problems may be cut in the M-step (by up to {longest + budget - max_length} tokens). "
            f"Raise `max_length` to {longest + budget} or set it to `None` to train on whole solutions."
        )
