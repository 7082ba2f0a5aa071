# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The persisted state of a ReST^EM run: which stage every iteration reached, the settings it ran with (its
fingerprint), the best iteration so far, and the decisions a resume takes from them.

It is saved as `output_dir/restem_state.json` after every stage, so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from transformers.trainer_utils import TrainOutput

from .filtering import atomic_write_json, read_json, read_jsonl


STATE_NAME = "restem_state.json"
BEST_NAME = "best_iteration.json"
STATE_VERSION = 1

# Settings of `ReSTEMConfig` a resumed run must share with the interrupted one
FINGERPRINT_FIELDS = (
    "seed",
    "num_samples_per_prompt",
    "max_completion_length",
    "temperature",
    "top_k",
    "top_p",
    "generation_shard_size",
    "max_solutions_per_prompt",
    "deduplicate_solutions",
    "verifier_threshold",
    "verifier_mode",
    "reset_to_base",
    "eval_num_samples",
    "eval_k",
    "eval_temperature",
    "eval_top_p",
    "selection_metric",
    "evaluate_base",
    # the M-step's schedule and data
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "completion_only_loss",
    "packing",
)


class Stage(str, Enum):
    """How far an iteration got, in order."""

    SAMPLING = "sampling"  # E-step started (some shards may be saved)
    FILTERED = "filtered"  # samples verified, kept set written
    TRAINING = "training"  # M-step started (it may have Trainer checkpoints)
    TRAINED = "trained"  # M-step done, weights saved
    EVALUATED = "evaluated"  # validated: the iteration is finished


@dataclass
class IterationRecord:
    """What the run knows about one iteration.

    Args:
        stage ([`Stage`], *optional*): the last stage reached; `None` if not started.
        weights (`int`, *optional*): which iteration's saved weights this iteration ended with (`0`: the base model;
            an iteration that kept nothing ends with the weights it started from).
        e_step (`dict[str, float]`): the E-step statistics (logged as `restem/*`).
        train_loss (`float`, *optional*): the M-step's training loss.
        steps (`int`): the M-step's optimizer steps.
        metrics (`dict[str, float]`, *optional*): the validation metrics (logged as `eval/*`).
    """

    stage: Stage | None = None
    weights: int | None = None
    e_step: dict[str, float] = field(default_factory=dict)
    train_loss: float | None = None
    steps: int = 0
    metrics: dict[str, float] | None = None

    def reached(self, stage: Stage) -> bool:
        """Whether this iteration got at least as far as `stage`."""
        order = list(Stage)
        return self.stage is not None and order.index(self.stage) >= order.index(stage)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stage"] = self.stage.value if self.stage is not None else None
        return {k: v for k, v in data.items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IterationRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("stage") is not None:
            values["stage"] = Stage(values["stage"])
        values["steps"] = int(values.get("steps") or 0)
        return cls(**values)


@dataclass
class RunState:
    """The state of a ReST^EM run, saved after every stage.

    Args:
        fingerprint (`dict`): the settings the run started with (see [`fingerprint`]).
        num_iterations (`int`): iterations to run.
        iterations (`dict[int, IterationRecord]`): one record per started iteration (`0`: the base model's
            validation).
        best_iteration (`int`, *optional*): the best validated iteration so far.
        best_metric (`float`, *optional*): its `selection_metric`.
        iterations_without_improvement (`int`): validated iterations since the last improvement.
        stopped_at (`int`, *optional*): the iteration after which early stopping ended the run.
        finished (`bool`): whether `train()` returned.
        log_history (`list[dict]`): every log entry of the run so far (E-step, M-step and validation), each with
            `restem/iteration` and its `step` on the run's step axis (optimizer steps of all M-steps so far).
    """

    fingerprint: dict[str, Any]
    num_iterations: int
    iterations: dict[int, IterationRecord] = field(default_factory=dict)
    best_iteration: int | None = None
    best_metric: float | None = None
    iterations_without_improvement: int = 0
    stopped_at: int | None = None
    finished: bool = False
    log_history: list[dict[str, Any]] = field(default_factory=list)
    version: int = STATE_VERSION

    def record(self, iteration: int) -> IterationRecord:
        """The record of `iteration`, created empty if it has not started."""
        return self.iterations.setdefault(iteration, IterationRecord())

    def weights_of(self, iteration: int) -> int:
        """Which saved weights iteration `iteration` ended with (`0`: the base model)."""
        return 0 if iteration == 0 else self.iterations[iteration].weights

    def total_steps(self) -> int:
        """Optimizer steps of every finished M-step: where the run's step axis stands."""
        return sum(record.steps for record in self.iterations.values())

    def last_evaluated(self) -> int:
        """The last finished iteration (`0` if none)."""
        return max((i for i, r in self.iterations.items() if r.stage == Stage.EVALUATED), default=0)

    def update_best(self, iteration: int, value: float) -> bool:
        """Takes the validated `iteration`'s `selection_metric` value into account; returns whether it is the new
        best (a tie keeps the earlier iteration)."""
        if self.best_metric is None or value > self.best_metric:
            self.best_iteration, self.best_metric, self.iterations_without_improvement = iteration, value, 0
            return True
        if iteration > 0:
            self.iterations_without_improvement += 1
        return False

    def metrics_of_same_weights(self, iteration: int) -> dict[str, float] | None:
        """The validation metrics of iteration `iteration - 1` if it ended with the same weights as `iteration` (an
        iteration that kept nothing), else `None`: validating the same weights again would give the same results."""
        previous, record = self.iterations.get(iteration - 1), self.iterations.get(iteration)
        if iteration == 0 or previous is None or previous.metrics is None or record is None:
            return None
        return dict(previous.metrics) if previous.weights == record.weights else None

    def should_stop(self, iteration: int, patience: int | None) -> bool:
        """Whether early stopping ends the run after `iteration` (recorded in `stopped_at`)."""
        if patience is not None and self.iterations_without_improvement >= patience:
            self.stopped_at = iteration
        return self.stopped_at == iteration

    def train_output(self) -> TrainOutput:
        """What `ReSTEMTrainer.train()` returns: optimizer steps of all M-steps, the last M-step's loss, the number of
        iterations and the best iteration with its validation metrics."""
        records = [record for _, record in sorted(self.iterations.items())]
        losses = [record.train_loss for record in records if record.train_loss is not None]
        metrics: dict[str, float] = {"restem/iterations": float(self.last_evaluated())}
        if self.best_iteration is not None:
            metrics["restem/best_iteration"] = float(self.best_iteration)
            metrics.update({f"eval/{k}": v for k, v in self.iterations[self.best_iteration].metrics.items()})
        steps = sum(record.steps for record in records)
        return TrainOutput(global_step=steps, training_loss=losses[-1] if losses else 0.0, metrics=metrics)

    def history(self) -> list[dict[str, Any]]:
        """One row per finished iteration: `iteration`, `restem/*` E-step statistics and training loss, `eval/*`."""
        rows = []
        for iteration, record in sorted(self.iterations.items()):
            if record.stage != Stage.EVALUATED:
                continue
            row: dict[str, Any] = {"iteration": iteration}
            row.update({f"restem/{k}": v for k, v in record.e_step.items()})
            if record.train_loss is not None:
                row["restem/train_loss"] = record.train_loss
            row.update({f"eval/{k}": v for k, v in (record.metrics or {}).items()})
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "iterations"}
        data["iterations"] = {str(i): r.to_dict() for i, r in sorted(self.iterations.items())}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        known = {f.name for f in dataclasses.fields(cls)} - {"iterations"}
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.iterations = {int(i): IterationRecord.from_dict(r) for i, r in data.get("iterations", {}).items()}
        return state

    def save(self, output_dir: str) -> None:
        """Writes the state to `output_dir/restem_state.json` atomically."""
        atomic_write_json(os.path.join(output_dir, STATE_NAME), self.to_dict())

    @classmethod
    def load(cls, output_dir: str) -> RunState | None:
        """The state saved in `output_dir`, or `None` if there is none (or it is unreadable)."""
        data = read_json(os.path.join(output_dir, STATE_NAME))
        return cls.from_dict(data) if data is not None else None


# ----------------------------------------------------------------------------------------------------------------------
# Resume decisions


def fingerprint(
    args: Any, num_train_problems: int, num_eval_problems: int, model: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The settings that change a run's results, which a resume must share with the interrupted run.

    Args:
        args ([`ReSTEMConfig`]): the run's configuration.
        num_train_problems (`int`): size of `train_dataset`.
        num_eval_problems (`int`): size of `eval_dataset` (`0` without one).
        model (`dict`, *optional*): what identifies the base model, e.g. `{"name_or_path": ..., "parameters": ...,
            "digest": ...}` (see [`~trl_mos.rest_em.weights.BaseWeights.digest`]).
    """
    values = {name: _jsonable(getattr(args, name, None)) for name in FINGERPRINT_FIELDS}
    values["num_train_problems"] = num_train_problems
    values["num_eval_problems"] = num_eval_problems
    if model is not None:
        values["model"] = model
    return values


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings of `current` that differ from `saved`: `{name: (saved value, current value)}`. Settings `saved`
    does not record (a run started by an older version) are not compared."""
    different = {}
    for key, value in current.items():
        old = saved.get(key)
        if key in saved and isinstance(old, dict) and isinstance(value, dict):
            different.update({f"{key}.{k}": pair for k, pair in fingerprint_differences(old, value).items()})
        elif key in saved and _jsonable(old) != _jsonable(value):
            different[key] = (old, value)
    return different


def _jsonable(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists, enums their values)."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def wants_resume(resume_from_checkpoint: str | bool | None, output_dir: str) -> bool:
    """Whether `train(resume_from_checkpoint=...)` asks to resume the run in `output_dir`.

    `True`, `"true"`, the `output_dir` or a path inside it resume; `None`, `False`, `"false"`, `"none"` and `""` start
    a new run; a path elsewhere is refused (a ReST^EM run resumes as a whole, from its `output_dir`).
    """
    if isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("true", "false", "none", ""):
        return resume_from_checkpoint.lower() == "true"  # e.g. `--resume_from_checkpoint true` on a command line
    if isinstance(resume_from_checkpoint, str):
        root, path = os.path.abspath(output_dir), os.path.abspath(resume_from_checkpoint)
        if os.path.commonpath([root, path]) != root:
            raise ValueError(
                f"ReST^EM resumes the run saved in `output_dir` ({output_dir}); got "
                f"resume_from_checkpoint={resume_from_checkpoint!r}. Pass `resume_from_checkpoint=True`, with the "
                "`output_dir` of the interrupted run."
            )
        return True
    return bool(resume_from_checkpoint)


def previous_run_files(output_dir: str) -> list[str]:
    """The files of a ReST^EM run in `output_dir` (state, best model, iterations), which a new run must not overwrite."""
    if not os.path.isdir(output_dir):
        return []
    names = [STATE_NAME, BEST_NAME, "best"] + [n for n in os.listdir(output_dir) if n.startswith("iteration-")]
    return sorted(n for n in set(names) if os.path.exists(os.path.join(output_dir, n)))


def resume_state(saved: RunState | None, current_fingerprint: dict[str, Any], args: Any) -> RunState:
    """The state a resumed run continues from, or a `ValueError` saying why the run in `args.output_dir` cannot be
    resumed with these settings.

    A finished run that was not stopped early continues up to the current `num_iterations` (so a run can be extended).
    """
    if saved is None:
        raise ValueError(
            f"No ReST^EM run to resume in {args.output_dir} (no readable {STATE_NAME}). Start a new run with "
            "`resume_from_checkpoint=None`."
        )
    different = fingerprint_differences(saved.fingerprint, current_fingerprint)
    if different:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in different.items())
        raise ValueError(
            f"Cannot resume the ReST^EM run in {args.output_dir}: these settings differ from the interrupted run "
            f"({details}). Resume with the same settings, or start a new run in another `output_dir`."
        )
    saved.finished = False
    if saved.stopped_at is None:
        saved.num_iterations = args.num_iterations
    return saved


# ----------------------------------------------------------------------------------------------------------------------
# The run's directory


class RunDirectory:
    """The files of a run in its `output_dir`: the main process reads and writes them, the others get what it read.

    Args:
        output_dir (`str`): the run's directory.
        accelerator ([`~accelerate.Accelerator`]): the processes.
    """

    def __init__(self, output_dir: str, accelerator: Any):
        self.output_dir = output_dir
        self.accelerator = accelerator

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def broadcast(self, obj: Any) -> Any:
        """`obj` of the main process, on every process."""
        if self.accelerator.num_processes == 1:
            return obj
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([obj], from_process=0)[0]

    def iteration_dir(self, iteration: int) -> str:
        return os.path.join(self.output_dir, f"iteration-{iteration}")

    def load_state(self) -> RunState | None:
        """The saved state (as the main process reads it), or `None`."""
        return self.broadcast(RunState.load(self.output_dir) if self.is_main else None)

    def save_state(self, state: RunState) -> None:
        if self.is_main:
            state.save(self.output_dir)

    def start(self, args: Any, current_fingerprint: dict[str, Any]) -> RunState:
        """A new run's state (saved), or a `ValueError` if `output_dir` holds a previous run's files."""
        existing = self.broadcast(previous_run_files(self.output_dir) if self.is_main else None)
        if existing:
            raise ValueError(
                f"{self.output_dir} holds a previous ReST^EM run ({', '.join(existing)}). Pass "
                "`resume_from_checkpoint=True` to continue it, or choose another `output_dir` (or delete those files) "
                "to start a new run; ReSTEMTrainer never overwrites a run's samples and models."
            )
        self.accelerator.wait_for_everyone()
        state = RunState(fingerprint=current_fingerprint, num_iterations=args.num_iterations)
        self.save_state(state)
        return state

    def resume(self, args: Any, current_fingerprint: dict[str, Any]) -> RunState:
        """The state of the interrupted run (see [`resume_state`])."""
        return resume_state(self.load_state(), current_fingerprint, args)

    def read_kept(self, iteration: int) -> list[dict[str, Any]]:
        """The kept samples of a filtered iteration."""
        path = os.path.join(self.iteration_dir(iteration), "kept.jsonl")
        return self.broadcast(read_jsonl(path) if self.is_main else None)

    def write_best(self, state: RunState, metric: str) -> None:
        """Records the best iteration in `best_iteration.json`."""
        if self.is_main:
            best = {"iteration": state.best_iteration, "metric": metric, "value": state.best_metric}
            best["weights"] = state.weights_of(state.best_iteration)
            atomic_write_json(os.path.join(self.output_dir, BEST_NAME), best)
