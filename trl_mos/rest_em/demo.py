# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM on the embedded default: the tiny model, bundled tasks (digit sorting, arithmetic), a CPU, no Hub.

[`tiny_restem_config`] is the configuration tests, the example's `--tiny` mode, the demo and the benchmarks share;
[`run_restem_demo`] is the ReST^EM part of `trl-mos demo`.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from transformers.utils import logging


if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..demo import DemoConfig
    from .config import ReSTEMConfig
    from .trainer import ReSTEMTrainer


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
    from ..testing import TINY_CPU_TRAINING_ARGS
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
        **TINY_CPU_TRAINING_ARGS,
    )
    kwargs.update(overrides)
    return ReSTEMConfig(**kwargs)


def arithmetic_restem_config(
    output_dir: str | os.PathLike,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    show_progress: bool = False,
    **overrides: Any,
) -> ReSTEMConfig:
    """The ReST^EM settings of the demo and of `benchmarks/restem_quality.py` for the warm-started tiny model on the
    arithmetic problems: 3 iterations, 16 samples per problem (T=0.7, top-k 40) of up to 40 tokens, at most 4 kept per
    problem, validation with greedy pass@1 and 4 samples (pass@4, maj@4), M-steps of 60 steps at a peak learning rate
    of 3e-4 (cosine schedule, 3 warm-up steps), a checkpoint every 20 steps.

    Args:
        output_dir (`str` or `os.PathLike`): the run's output directory.
        seed (`int`, *optional*, defaults to `0`): the run's seed.
        batch_size (`int`, *optional*, defaults to `32`): M-step batch size.
        learning_rate (`float`, *optional*, defaults to `3e-4`): M-step peak learning rate.
        show_progress (`bool`, *optional*, defaults to `False`): show progress bars.
        **overrides: any other [`ReSTEMConfig`] field.

    Returns:
        [`ReSTEMConfig`]: the config.
    """
    kwargs: dict[str, Any] = dict(
        num_iterations=3,
        num_samples_per_prompt=16,
        max_solutions_per_prompt=4,
        max_completion_length=40,
        generation_shard_size=64,
        eval_num_samples=4,
        eval_k=[4],
        max_steps=60,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=3,
        logging_steps=5,
        save_strategy="steps",
        save_steps=20,
        max_length=128,
        seed=seed,
        disable_tqdm=not show_progress,
    )
    kwargs.update(overrides)
    return tiny_restem_config(output_dir, **kwargs)


def evaluate_iterations(trainer: ReSTEMTrainer, dataset: Dataset) -> dict[int, dict[str, float]]:
    """Measures every finished iteration of a ReST^EM run on held-out problems, then loads the best one back.

    Args:
        trainer ([`ReSTEMTrainer`]): a trainer after `train()`.
        dataset ([`~datasets.Dataset`]): the held-out problems.

    Returns:
        `dict[int, dict[str, float]]`: for every iteration (0: the base model) the metrics of
        [`ReSTEMTrainer.evaluate_accuracy`].
    """
    results = {}
    for record in trainer.history:
        iteration = record["iteration"]
        trainer.load_iteration(iteration)
        results[iteration] = trainer.evaluate_accuracy(dataset, description=f"Testing iteration {iteration}")
    last = trainer.history[-1]["iteration"] if trainer.history else 0
    trainer.load_iteration(trainer.best_iteration if trainer.best_iteration is not None else last)
    return results


def warm_start_tiny_model(
    solutions: Dataset,
    output_dir: str | os.PathLike,
    max_steps: int = 150,
    seed: int = 0,
    hidden_size: int = 128,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    show_progress: bool = False,
    lr_scheduler_type: str = "cosine",
    max_length: int = 128,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Builds the tiny model and fine-tunes it briefly on reference solutions (a stock `SFTTrainer` run), so that
    some of its samples are correct: the starting point ReST^EM needs.

    Args:
        solutions ([`~datasets.Dataset`]): prompt–completion pairs, e.g. problems of
            [`~trl_mos.tasks.make_arithmetic_problems`] (other columns are dropped).
        output_dir (`str` or `os.PathLike`): where the SFT run writes (no checkpoints are saved).
        max_steps (`int`, *optional*, defaults to `150`): optimizer steps.
        seed (`int`, *optional*, defaults to `0`): seed of the tokenizer, the model and the run.
        hidden_size (`int`, *optional*, defaults to `128`): width of the tiny model.
        batch_size (`int`, *optional*, defaults to `32`): examples per step.
        learning_rate (`float`, *optional*, defaults to `1e-3`): peak learning rate (cosine schedule).
        show_progress (`bool`, *optional*, defaults to `False`): show the Trainer's progress bar.
        lr_scheduler_type (`str`, *optional*, defaults to `"cosine"`): learning-rate schedule (`"constant"` keeps
            the peak rate, with a warm-up of 5 % of the steps).
        max_length (`int`, *optional*, defaults to `128`): longest tokenized example.

    Returns:
        `tuple`: the fine-tuned model and its tokenizer.
    """
    from trl import SFTTrainer

    from ..testing import build_tiny_model, build_tiny_tokenizer, tiny_sft_config

    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed, hidden_size=hidden_size)
    args = tiny_sft_config(
        output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler_type,
        warmup_steps=max(1, max_steps // 20),
        logging_steps=max(1, max_steps // 5),
        max_length=max_length,
        seed=seed,
        disable_tqdm=not show_progress,
    )
    data = solutions.select_columns(["prompt", "completion"])
    SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()
    return model, tokenizer


def run_restem_demo(
    config: DemoConfig,
    num_iterations: int = 3,
    num_warm_start_problems: int = 128,
    warm_start_steps: int | None = None,
    num_train_problems: int = 256,
    num_validation_problems: int = 128,
    task: str = "arithmetic",
) -> dict[str, Any]:
    """The ReST^EM part of `trl-mos demo`: warm-start the tiny model with a short SFT on a few reference solutions of
    a bundled task (the arithmetic word problems by default), then run ReST^EM on more problems (their answers only,
    no solutions), selecting on the validation split and reporting the held-out test split after every iteration.

    Args:
        config ([`~trl_mos.demo.DemoConfig`]): the demo settings: `output_dir`, `seed`, `hidden_size`, `batch_size`,
            `show_progress`, and `learning_rate` for the warm start (the M-steps use 3e-4, see
            [`arithmetic_restem_config`]); its `max_steps` is for the multi-skill runs and is not used here.
        num_iterations (`int`, *optional*, defaults to `3`): ReST^EM iterations.
        num_warm_start_problems (`int`, *optional*, defaults to `128`): problems whose reference solutions the warm
            start is trained on.
        warm_start_steps (`int`, *optional*): optimizer steps of the warm start. Defaults to 100 at a constant
            learning rate for `"sorting"` (greedy pass@1 ≈ 9 %, pass@16 ≈ 27 % on validation, seed 0) and 200 with a
            cosine schedule for `"arithmetic"`.
        num_train_problems (`int`, *optional*, defaults to `256`): problems ReST^EM samples solutions for.
        num_validation_problems (`int`, *optional*, defaults to `128`): validation problems (selection of the best
            iteration). The 128 test problems are the same for any value.
        task (`str`, *optional*, defaults to `"arithmetic"`): `"sorting"`: digit sorting
            ([`~trl_mos.tasks.make_sorting_problems`], exact-match verifier), where the warm start has low pass@1 and
            high pass@k, so self-training has room; `"arithmetic"`: the word problems with `math_verifier`.

    Returns:
        `dict`: `"rows"`: `{"warm start" | "iteration i": {"test pass@1", "test pass@4", "test maj@4", "val pass@1",
        "correct_rate", "prompts_solved_frac", "kept"}}` (fractions, except `kept`, a count); `"best_iteration"`;
        `"plot"` (the PNG of the metrics across iterations); `"seconds"` (wall-clock time of the whole part).

    Example:

    ```python
    >>> from trl_mos.demo import DemoConfig
    >>> from trl_mos.rest_em.demo import format_restem_table, run_restem_demo
    >>> print(format_restem_table(run_restem_demo(DemoConfig(output_dir="demo"))))
    ```
    """
    from ..tasks import make_arithmetic_problems, make_sorting_problems
    from ..tasks.skills import normalize_answer
    from ..verifiers import make_exact_match_verifier, math_verifier
    from .trainer import ReSTEMTrainer

    if task not in ("sorting", "arithmetic"):
        raise ValueError(f"Unknown ReST^EM demo task {task!r}; choose 'sorting' or 'arithmetic'.")
    start = time.perf_counter()
    if task == "sorting":
        problems = make_sorting_problems(
            seed=config.seed,
            num_warm_start=num_warm_start_problems,
            num_train=num_train_problems,
            num_validation=num_validation_problems,
        )
        warm_data, train_problems = problems["warm_start"], problems["train"]
        verifiers = [make_exact_match_verifier(column="solution", normalize=normalize_answer)]
        extra: dict[str, Any] = dict(answer_extractor=normalize_answer)
        overrides: dict[str, Any] = dict(max_completion_length=20, max_length=64)
        warm_options: dict[str, Any] = dict(lr_scheduler_type="constant", max_length=64)
        warm_start_steps = 100 if warm_start_steps is None else warm_start_steps
    else:
        problems = make_arithmetic_problems(seed=config.seed, num_validation=num_validation_problems)
        warm_data = problems["train"].select(range(num_warm_start_problems))
        train_problems = problems["train"].select(
            range(num_warm_start_problems, num_warm_start_problems + num_train_problems)
        )
        verifiers, extra, overrides, warm_options = [math_verifier], {}, {}, {}
        warm_start_steps = 200 if warm_start_steps is None else warm_start_steps
    model, tokenizer = warm_start_tiny_model(
        warm_data,
        os.path.join(config.output_dir, "restem-warm-start"),
        max_steps=warm_start_steps,
        seed=config.seed,
        hidden_size=config.hidden_size,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        show_progress=config.show_progress,
        **warm_options,
    )

    # ReST^EM on other problems: prompts and final answers only. The demo's directory is its own scratch space: a
    # previous demo run there is replaced (ReSTEMTrainer itself refuses to start over a run).
    run_dir = os.path.join(config.output_dir, "restem")
    if os.path.isdir(run_dir):
        logger.info(f"Replacing the previous ReST^EM demo run in {run_dir}.")
        shutil.rmtree(run_dir)
    args = arithmetic_restem_config(
        run_dir,
        seed=config.seed,
        batch_size=config.batch_size,
        show_progress=config.show_progress,
        num_iterations=num_iterations,
        **overrides,
    )
    trainer = ReSTEMTrainer(
        model=model,
        args=args,
        train_dataset=train_problems.select_columns(["prompt", "solution"]),
        eval_dataset=problems["validation"].select_columns(["prompt", "solution"]),
        processing_class=tokenizer,
        verifiers=verifiers,
        **extra,
    )
    trainer.train()

    # Held-out test metrics of every iteration
    rows: dict[str, dict[str, float]] = {}
    for iteration, test in evaluate_iterations(trainer, problems["test"]).items():
        record = trainer.history[iteration]
        row = {f"test {name}": value for name, value in test.items()}
        row["val pass@1"] = record["eval/pass@1"]
        for key in ("correct_rate", "prompts_solved_frac", "kept"):
            if f"restem/{key}" in record:
                row[key] = record[f"restem/{key}"]
        rows["warm start" if iteration == 0 else f"iteration {iteration}"] = row
    trainer.load_iteration(trainer.best_iteration)
    return {
        "rows": rows,
        "best_iteration": trainer.best_iteration,
        "plot": os.path.join(args.output_dir, "restem_metrics.png"),
        "seconds": time.perf_counter() - start,
    }


def format_restem_table(result: dict[str, Any]) -> str:
    """Formats the result of [`run_restem_demo`] as a text table (metrics in %, `kept` as a count).

    Args:
        result (`dict`): what [`run_restem_demo`] returned.

    Returns:
        `str`: the table, with the best iteration marked and the plot's path.
    """
    rows = result["rows"]
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    best = result.get("best_iteration")
    names = {name: name + (" *" if (name == "warm start" and best == 0) or name == f"iteration {best}" else "")
             for name in rows}  # fmt: skip
    width = max(len("model"), *(len(n) for n in names.values()))
    widths = [max(len(c), 6) for c in columns]
    lines = ["  ".join(["model".ljust(width)] + [c.rjust(w) for c, w in zip(columns, widths, strict=True)])]
    lines.append("  ".join(["-" * width] + ["-" * w for w in widths]))
    for name, values in rows.items():
        cells = []
        for column, w in zip(columns, widths, strict=True):
            value = values.get(column)
            text = "-" if value is None else f"{int(value)}" if column == "kept" else f"{100 * value:.1f}"
            cells.append(text.rjust(w))
        lines.append("  ".join([names[name].ljust(width)] + cells))
    lines.append(f"* best iteration on validation (pass@1); plot: {result['plot']}")
    return "\n".join(lines)
