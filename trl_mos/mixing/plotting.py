# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Plots of the skill distribution over training steps."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence


def load_history(path: str | os.PathLike) -> list[dict]:
    """Reads a Mixture-of-Skills history file (JSON lines, one record per change of the distribution)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_mixture(
    history: str | os.PathLike | Sequence[dict],
    output_path: str | os.PathLike,
    skills: Sequence[str] | None = None,
    title: str = "Skill sampling probabilities",
) -> str:
    """Renders the sampling probability of every skill over optimizer steps to a PNG.

    Args:
        history (`str`, `os.PathLike` or `Sequence[dict]`):
            The `mos_history.jsonl` written by [`MixtureOfSkillsCallback`], or its records.
        output_path (`str` or `os.PathLike`):
            The PNG to write.
        skills (`Sequence[str]`, *optional*):
            Skills to plot, in order. Defaults to all skills of the first record.
        title (`str`, *optional*, defaults to `"Skill sampling probabilities"`):
            Title of the figure.

    Returns:
        `str`: `output_path`.

    Example:

    ```python
    >>> from trl_mos import plot_mixture
    >>> plot_mixture("out/mos_history.jsonl", "out/mixture.png")
    'out/mixture.png'
    ```
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    records = load_history(history) if isinstance(history, (str, os.PathLike)) else list(history)
    if not records:
        raise ValueError("The history is empty: nothing to plot.")
    skills = list(skills) if skills is not None else list(records[0]["probabilities"])
    steps = [record["step"] for record in records]
    figure, axes = plt.subplots(figsize=(7, 4))
    for skill in skills:
        # a distribution holds from its step until the next change: draw it as a step function
        axes.step(steps, [record["probabilities"][skill] for record in records], where="post", label=skill)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("sampling probability")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(loc="best")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    figure.savefig(output_path, dpi=120)
    plt.close(figure)
    return os.fspath(output_path)
