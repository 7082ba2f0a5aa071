# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Plot of ReST^EM's per-iteration metrics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def plot_restem_metrics(
    history: Sequence[dict[str, Any]],
    output_path: str | os.PathLike,
    title: str = "ReST^EM",
) -> str:
    """Renders ReST^EM's metrics across iterations to a PNG: validation metrics (`eval/*`), E-step rates
    (`restem/correct_rate`, `restem/prompts_solved_frac`), kept samples and M-step training loss.

    Args:
        history (`Sequence[dict]`):
            One record per iteration with an `"iteration"` key (`0` is the base model) and any of the logged metrics,
            e.g. [`ReSTEMTrainer.history`].
        output_path (`str` or `os.PathLike`):
            The PNG to write (its directory is created if needed).
        title (`str`, *optional*, defaults to `"ReST^EM"`):
            Title of the figure.

    Returns:
        `str`: `output_path`.

    Example:

    ```python
    >>> from trl_mos.rest_em import plot_restem_metrics
    >>> history = [{"iteration": 0, "eval/pass@1": 0.2}, {"iteration": 1, "eval/pass@1": 0.3, "restem/kept": 40}]
    >>> plot_restem_metrics(history, "restem.png")
    'restem.png'
    ```
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("The history is empty: nothing to plot.")
    records = sorted(history, key=lambda r: r["iteration"])
    panels = [
        ("validation", sorted({k for r in records for k in r if k.startswith("eval/")}, key=_metric_order), (0, 1)),
        ("E-step", ["restem/correct_rate", "restem/prompts_solved_frac"], (0, 1)),
        ("kept solutions", ["restem/kept"], None),
        ("M-step train loss", ["restem/train_loss"], None),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (name, keys, limits) in zip(axes, panels, strict=True):
        for key in keys:
            points = [(r["iteration"], r[key]) for r in records if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, marker="o", label=key.split("/", 1)[1])
        axis.set_title(name)
        axis.set_xlabel("iteration")
        axis.set_xticks([r["iteration"] for r in records])
        if limits is not None:
            axis.set_ylim(*limits)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    output_path = os.fspath(output_path)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    figure.savefig(output_path, dpi=110)
    plt.close(figure)
    return output_path


def _metric_order(key: str) -> tuple[str, int]:
    name, _, k = key.removeprefix("eval/").partition("@")
    return (name, int(k) if k.isdigit() else 0)
