# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM on the embedded default: the tiny model, the bundled arithmetic problems, a CPU, no Hub.

[`tiny_restem_config`] is the configuration tests, the example's `--tiny` mode, the demo and the benchmarks share;
[`run_restem_demo`] is the ReST^EM part of `trl-mos demo`.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from transformers.utils import logging


if TYPE_CHECKING:
    from ..demo import DemoConfig
    from .config import ReSTEMConfig


logger = logging.get_logger(__name__)


def tiny_restem_config(output_dir: str | os.PathLike, **overrides: Any) -> ReSTEMConfig:
    """A [`ReSTEMConfig`] suited to the tiny model on a CPU: float32, no activation checkpointing, no reporting, no
    progress bars, few and short samples, a high learning rate.

    Args:
        output_dir (`str` or `os.PathLike`): the run's output directory.
        **overrides: any [`ReSTEMConfig`] field, overriding the defaults here.

    Returns:
        [`ReSTEMConfig`]: the config.

    Example:

    ```python
    >>> from trl_mos.rest_em.demo import tiny_restem_config
    >>> tiny_restem_config("out", num_iterations=2).num_iterations
    2
    ```
    """
    from .config import ReSTEMConfig

    kwargs: dict[str, Any] = dict(
        output_dir=os.fspath(output_dir),
        num_iterations=2,
        num_samples_per_prompt=4,
        max_solutions_per_prompt=2,
        max_completion_length=16,
        generation_shard_size=8,
        eval_num_samples=4,
        eval_k=[4],
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        max_length=96,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    kwargs.update(overrides)
    return ReSTEMConfig(**kwargs)
