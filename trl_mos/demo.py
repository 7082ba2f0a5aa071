# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""`trl-mos demo`: the project's main job on the embedded default (tiny model, bundled tasks, CPU, no Hub).

Each part returns its results; the CLI prints them. Library code never prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from transformers.utils import logging


logger = logging.get_logger(__name__)


@dataclass
class DemoConfig:
    """Settings of `trl-mos demo`.

    Args:
        output_dir (`str`, *optional*, defaults to `"trl-mos-demo"`):
            Where checkpoints-free training runs write their logs and plots.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the tiny model, the tasks and training.
        max_steps (`int`, *optional*, defaults to `1000`):
            Optimizer steps of each SFT run on the multi-skill set.
        hidden_size (`int`, *optional*, defaults to `128`):
            Width of the tiny model (the kit's default of 64 learns the larger skills less reliably).
        batch_size (`int`, *optional*, defaults to `32`):
            Examples per optimizer step.
        learning_rate (`float`, *optional*, defaults to `1e-3`):
            Peak learning rate (cosine schedule); the tiny model needs a large one.
        show_progress (`bool`, *optional*, defaults to `True`):
            Show the Trainer's progress bars.
    """

    output_dir: str = "trl-mos-demo"
    seed: int = 0
    max_steps: int = 1000
    hidden_size: int = 128
    batch_size: int = 32
    learning_rate: float = 1e-3
    show_progress: bool = True

    def sft_config(self, run_name: str, **overrides):
        """Returns the `SFTConfig` of one demo training run, written under `output_dir/run_name`."""
        from .testing import tiny_sft_config

        kwargs = dict(
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, self.max_steps // 20),
            logging_steps=max(1, self.max_steps // 10),
            seed=self.seed,
            disable_tqdm=not self.show_progress,
        )
        kwargs.update(overrides)
        return tiny_sft_config(os.path.join(self.output_dir, run_name), **kwargs)


def _train_on_skills(config: DemoConfig, run_name: str, mos_config=None) -> tuple[dict[str, float], object]:
    """Trains the tiny model on the bundled skills, optionally with Mixture-of-Skills; returns accuracies and the
    callback (or `None`)."""
    from trl import SFTTrainer

    from .mixing import MixtureOfSkillsCallback
    from .tasks import evaluate_skill_accuracy, make_skill_datasets
    from .testing import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(seed=config.seed)
    model = build_tiny_model(tokenizer, seed=config.seed, hidden_size=config.hidden_size)
    data = make_skill_datasets(seed=config.seed)
    trainer = SFTTrainer(
        model=model,
        args=config.sft_config(run_name),
        train_dataset=data["train"],
        processing_class=tokenizer,
    )
    callback = None
    if mos_config is not None:
        callback = MixtureOfSkillsCallback(trainer, mos_config)
        trainer.add_callback(callback)
    trainer.train()
    scores = evaluate_skill_accuracy(trainer.model, tokenizer, data["test"], show_progress=config.show_progress)
    return scores, callback


def run_sft_demo(config: DemoConfig) -> dict[str, float]:
    """Trains the tiny model with a stock `SFTTrainer` on the multi-skill set (sampled as given, i.e. proportionally)
    and returns its held-out accuracy per skill.

    Args:
        config ([`DemoConfig`]): the demo settings.

    Returns:
        `dict[str, float]`: greedy exact-match accuracy per skill, plus `"balanced"` (mean over skills).
    """
    return _train_on_skills(config, "sft")[0]


# The paper updates every S=100 steps over ~4,850 steps (~48 updates); the demo's 1,000 steps keep ~50 updates.
DEMO_MIXTURES = {
    "UNI": dict(strategy="uniform"),
    "TEMP (tau=10)": dict(strategy="temperature", temperature=10.0),
    "MoS (Diff+EMA)": dict(strategy="mos", reward=["diff"], use_ema=True),
}


def run_mos_demo(config: DemoConfig) -> tuple[dict[str, dict[str, float]], str]:
    """Trains the tiny model on the bundled skills with the uniform and temperature baselines and with
    Mixture-of-Skills (Diff reward + EMA), all through `MixtureOfSkillsCallback`.

    Args:
        config ([`DemoConfig`]): the demo settings.

    Returns:
        `tuple[dict[str, dict[str, float]], str]`: held-out accuracy per skill (and `"balanced"`) per method, and the
        path of the MoS run's probability plot.
    """
    from .mixing import MoSConfig

    update_steps = max(1, config.max_steps // 50)
    results, plot_path = {}, ""
    for name, kwargs in DEMO_MIXTURES.items():
        run_name = "mos-" + name.split()[0].lower()
        mos_config = MoSConfig(**kwargs, update_steps=update_steps if kwargs["strategy"] == "mos" else None)
        results[name], _ = _train_on_skills(config, run_name, mos_config)
        if kwargs["strategy"] == "mos":
            plot_path = os.path.join(config.output_dir, run_name, "mos_probabilities.png")
    return results, plot_path


def format_table(rows: dict[str, dict[str, float]], title: str = "") -> str:
    """Formats `{row name: {column: value}}` as a fixed-width text table of percentages."""
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    name_width = max([len("method")] + [len(name) for name in rows])
    widths = [max(len(c), 6) for c in columns]
    lines = [title] if title else []
    lines.append("  ".join(["method".ljust(name_width)] + [c.rjust(w) for c, w in zip(columns, widths, strict=True)]))
    lines.append("  ".join(["-" * name_width] + ["-" * w for w in widths]))
    for name, values in rows.items():
        cells = [
            (f"{100 * values[c]:.1f}" if c in values else "-").rjust(w) for c, w in zip(columns, widths, strict=True)
        ]
        lines.append("  ".join([name.ljust(name_width)] + cells))
    return "\n".join(lines)
