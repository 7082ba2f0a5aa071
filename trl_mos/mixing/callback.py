# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""`MixtureOfSkillsCallback`: learned dataset mixing added to a stock `Trainer` / `SFTTrainer` in one line."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile

import numpy as np
import torch
from transformers import DefaultFlowCallback, TrainerCallback
from transformers.utils import logging

from .config import MoSConfig
from .data import SkillIndex, pack_within_skills, row_lengths
from .rewards import ProbeRunner, SkillRewards, TrainingLossRecorder
from .sampler import SkillSampler
from .strategies import build_strategy


logger = logging.get_logger(__name__)

STATE_KEY = "trl_mos.MixtureOfSkills"  # where the callback's state lives in `TrainerState.stateful_callbacks`


class MixtureOfSkillsCallback(TrainerCallback):
    r"""
    Samples a multi-skill train dataset with a distribution over skills that a [`MoSConfig`] strategy chooses —
    Mixture-of-Skills, MoSpec, Online Data Mixing, or a static uniform / proportional / temperature baseline.

    Creating the callback installs a [`SkillSampler`] as the trainer's train sampler (no Trainer method is copied);
    adding it to the trainer lets it update the distribution during training. It works with `transformers.Trainer` and
    TRL's `SFTTrainer`, with several processes (every rank draws the same index stream and takes its own batches, the
    strategy state is identical on every rank), and it is saved with every checkpoint and restored by
    `trainer.train(resume_from_checkpoint=...)`, so a resumed run continues exactly as an uninterrupted one.

    Logged through `Trainer.log` at every logging step: `mos/prob/{skill}` (the current distribution),
    `mos/reward/{skill}` (the last reward, MoS/MoSpec; the last per-skill training loss, ODM) and
    `mos/consumed/{skill}` (rows of the skill consumed so far, over all processes) and, for tokenized datasets,
    `mos/consumed_tokens/{skill}` (their tokens, padding excluded).

    With `packing=True` (and `dataset_kwargs={"skip_prepare_dataset": True}`, so that the trainer does not pack the
    skills together), the callback prepares and packs every skill separately with the trainer's own preparation: every
    packed row holds one skill, and the distribution is over packed rows.

    Args:
        trainer ([`~transformers.Trainer`]):
            The trainer, already built with its train dataset (for `SFTTrainer`, the prepared dataset is read, so
            rows it drops or reorders are accounted for).
        config ([`MoSConfig`], *optional*):
            The mixing configuration. Defaults to `MoSConfig()` (MoS with the CosSim reward).
        probe_dataset ([`~datasets.Dataset`], *optional*):
            Held-out rows the MoS / MoSpec rewards are computed on, with the same skill column and skills (in the same
            order) as the train dataset; with `SFTTrainer` it is prepared like the train dataset (without packing).
            Defaults to probing rows of the train dataset.

    Example:

    ```python
    from trl import SFTConfig, SFTTrainer
    from trl_mos import MixtureOfSkillsCallback, MoSConfig, concatenate_skills

    train = concatenate_skills({"math": math_ds, "med": med_ds, "chat": chat_ds})
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir="out"), train_dataset=train)
    trainer.add_callback(MixtureOfSkillsCallback(trainer, MoSConfig(reward="cossim", use_ema=True)))
    trainer.train()
    ```
    """

    def __init__(self, trainer, config: MoSConfig | None = None, probe_dataset=None):
        self.trainer = trainer
        self.config = config if config is not None else MoSConfig()
        _check_trainer(trainer, self.config)
        if getattr(trainer.args, "packing", False):
            _pack_within_skills(trainer, self.config.skill_column)
        self.skill_index = SkillIndex.from_dataset(trainer.train_dataset, self.config.skill_column)
        self._row_tokens = row_lengths(trainer.train_dataset)
        names = self.skill_index.names
        if self.config.target_skill is not None and self.config.target_skill not in names:
            raise ValueError(
                f"MoSpec target skill {self.config.target_skill!r} is not in the mixture; the skills are {names}."
            )
        args = trainer.args
        if self.config.mixing_seed is not None:
            self.seed = self.config.mixing_seed
        else:
            self.seed = args.data_seed if getattr(args, "data_seed", None) is not None else args.seed
        self.probe_index = self.skill_index
        if probe_dataset is not None:
            probe_dataset = _prepare_probe_dataset(trainer, probe_dataset)
            self.probe_index = SkillIndex.from_dataset(probe_dataset, self.config.skill_column)
            if self.probe_index.names != names:
                raise ValueError(
                    f"The probe dataset has skills {self.probe_index.names} and the train dataset {names}; they must "
                    "be the same skills in the same order (e.g. build both with `trl_mos.concatenate_skills`)."
                )
        probe_batch_size = self.config.probe_batch_size or trainer.args.per_device_train_batch_size
        self.runner = ProbeRunner(
            trainer,
            self.config.skill_column,
            probe_batch_size,
            dataset=probe_dataset,
            lengths=self._row_tokens if probe_dataset is None else None,  # the train dataset's, counted once
        )
        self.sampler: SkillSampler | None = None
        self._loss_recorder: TrainingLossRecorder | None = None
        self._warned_loss_mismatch = False
        self._reset()
        # Install the sampler without copying any Trainer method: the trainer looks `_get_train_sampler` up on the
        # instance when it builds the train dataloader.
        trainer._get_train_sampler = self._get_train_sampler

    def _reset(self) -> None:
        """Puts the strategy, the rewards and the bookkeeping in their initial state (a new run)."""
        num_skills = self.skill_index.num_skills
        self.strategy = build_strategy(self.config, self.skill_index.sizes, self.seed)
        self.rewards = (
            SkillRewards(self.config, self.probe_index, self.seed) if self.strategy.signal == "rewards" else None
        )
        self.records: list[dict] = []  # one per change of the distribution, written to the history file
        self._loss_sums = np.zeros(num_skills)
        self._loss_counts = np.zeros(num_skills)
        self._consumed = np.zeros(num_skills, dtype=np.int64)
        self._consumed_tokens = np.zeros(num_skills, dtype=np.int64)
        self._consumed_until = 0
        self._last_signal: np.ndarray | None = None
        self._position_offset = 0  # stream position = offset + global step × draws per step (see `consumed_position`)
        self._global_step = 0
        self._skip_pending = False  # the Trainer skips the consumed batches of the first epoch of a resumed run

    # ------------------------------------------------------------------ geometry of the index stream
    @property
    def draws_per_step(self) -> int:
        """Examples drawn per optimizer step over all processes (with `auto_find_batch_size`, at the batch size the
        Trainer settled on)."""
        args = self.trainer.args
        batch_size = getattr(self.trainer, "_train_batch_size", None) or args.train_batch_size
        return batch_size * args.gradient_accumulation_steps * max(1, args.world_size)

    def consumed_position(self, step: int) -> int:
        """The stream position after `step` optimizer steps: the examples the run has consumed, over all processes
        (and over the runs it was resumed from, whatever their batch geometry)."""
        return self._position_offset + step * self.draws_per_step

    def _get_train_sampler(self, train_dataset=None) -> SkillSampler:
        dataset = train_dataset if train_dataset is not None else self.trainer.train_dataset
        if self not in self.trainer.callback_handler.callbacks:
            raise RuntimeError(
                "The MixtureOfSkillsCallback was created for this trainer but not added to it: call "
                "`trainer.add_callback(callback)` before `trainer.train()`."
            )
        if len(dataset) != len(self.skill_index.skill_ids):
            raise ValueError(
                f"The train dataset has {len(dataset)} rows but had {len(self.skill_index.skill_ids)} when the "
                "MixtureOfSkillsCallback was created; create the callback after the dataset is final."
            )
        draws = self.draws_per_step
        # a whole number of optimizer steps per epoch: every batch is full and no rank pads with repeated examples
        epoch_length = math.ceil(len(dataset) / draws) * draws
        # a new sampler for every dataloader: each `trainer.train()` call starts a new run (or resumes one, in which
        # case `on_train_begin` restores the history)
        prior = build_strategy(self.config, self.skill_index.sizes, self.seed).probabilities
        self.sampler = SkillSampler(self.skill_index, prior, self.seed, epoch_length)
        return self.sampler

    # ------------------------------------------------------------------ events
    def on_train_begin(self, args, state, control, **kwargs):
        if self.sampler is None:
            raise RuntimeError(
                "The Mixture-of-Skills sampler was not used to build the train dataloader; create the callback "
                "before `trainer.train()`."
            )
        self._global_step = state.global_step
        if state.global_step > 0:  # resuming from a checkpoint
            saved = (state.stateful_callbacks or {}).get(STATE_KEY)
            if saved is None:
                raise ValueError(
                    "Resuming from a checkpoint without Mixture-of-Skills state (it was saved without the "
                    "MixtureOfSkillsCallback), so the run cannot continue exactly. Resume from a checkpoint of a "
                    "run that used the callback, or start a new run."
                )
            if self.records or self._consumed_until:  # `trainer.train()` was called before on this trainer
                self._reset()
            self.load_state_dict(saved)
            self._resume_position(args, state, saved)
            self._rewrite_history_file(args, state)
        else:
            if self.records:  # `trainer.train()` was called before on this trainer: start over
                self._reset()
            if self.rewards is not None:
                self.rewards.compute_base(self.runner)
            self._record(state.global_step, position=0, probabilities=self.strategy.probabilities)
            self._rewrite_history_file(args, state)
        if self.strategy.signal == "train_loss" and self._loss_recorder is None:
            self._loss_recorder = TrainingLossRecorder(self.trainer.model)
        # Run right after the trainer's own flow callback, before the reporting and printing callbacks, so that they
        # receive the metrics `on_log` adds. (The handler is iterating over the old list right now; it is untouched.)
        handler = self.trainer.callback_handler
        others = [callback for callback in handler.callbacks if callback is not self]
        position = next((i + 1 for i, cb in enumerate(others) if isinstance(cb, DefaultFlowCallback)), 0)
        handler.callbacks = others[:position] + [self] + others[position:]

    def _resume_position(self, args, state, saved: dict) -> None:
        """Continues the stream from the position the checkpoint's run had consumed."""
        consumed = int(saved.get("consumed", state.global_step * saved["draws_per_step"]))
        self._position_offset = consumed - state.global_step * self.draws_per_step
        self._skip_pending = True
        if saved["draws_per_step"] != self.draws_per_step:
            logger.warning(
                f"The checkpoint drew {saved['draws_per_step']} examples per optimizer step and this run draws "
                f"{self.draws_per_step} (batch size × gradient accumulation × processes changed): training continues "
                f"the saved example stream from the {consumed} examples consumed, with the saved distribution, but "
                "batches, epochs and the positions of later updates differ from an uninterrupted run. Resume with the "
                "checkpoint's batch size, gradient accumulation and number of processes to continue exactly."
            )
        if args.ignore_data_skip:
            logger.warning(
                "`ignore_data_skip=True`: the Trainer restarts the epoch without skipping batches; Mixture-of-Skills "
                f"continues its stream from the {consumed} examples consumed all the same, but its epochs end at other "
                "steps, so the positions of later updates can differ from an uninterrupted run. Leave "
                "`ignore_data_skip=False` to continue exactly."
            )

    def on_epoch_begin(self, args, state, control, **kwargs):
        # Every epoch starts where the run's consumption stands, whatever `set_epoch` reaches through the wrappers
        # around the sampler (`SkipBatchSampler` → `BatchSamplerShard` → `BatchSampler` with several processes).
        placeholders = 0
        if self._skip_pending:  # the Trainer skips (unread) the batches of this epoch the checkpoint had consumed
            self._skip_pending = False
            if not args.ignore_data_skip:
                steps_per_epoch = self.sampler.epoch_length // self.draws_per_step
                placeholders = state.global_step % steps_per_epoch * self.draws_per_step
        self.sampler.start_at(self.consumed_position(state.global_step), placeholders)

    def on_step_end(self, args, state, control, **kwargs):
        self._global_step = state.global_step
        if self.strategy.signal == "train_loss":
            self._collect_training_losses(args, state.global_step - 1)
        if self.strategy.signal != "none" and state.global_step % self.config.update_steps == 0:
            self._update(args, state)
        self._maybe_snapshot(state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._maybe_snapshot(state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Add the metrics to the training log itself, so that the trainer's log history and every reporting
        # callback (`report_to`) see them in the same entry as the loss.
        if logs is None or "loss" not in logs:
            return
        metrics = self._metrics(state.global_step)
        logs.update(metrics)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(metrics)

    def on_train_end(self, args, state, control, **kwargs):
        if self._loss_recorder is not None:
            self._loss_recorder.remove()
            self._loss_recorder = None
        if self.config.plot and state.is_world_process_zero and self.records:
            from .plotting import plot_mixture

            plot_mixture(self.records, os.path.join(args.output_dir, "mos_probabilities.png"), self.skill_index.names)

    # ------------------------------------------------------------------ updates
    def _update(self, args, state) -> None:
        counts = None
        if self.strategy.signal == "rewards":
            values = self.rewards.compute(self.runner)
            signal = dict(self.rewards.last)
        else:
            sums, counts = self._reduce(torch.tensor(np.stack([self._loss_sums, self._loss_counts])), "sum")
            self._loss_sums[:] = 0
            self._loss_counts[:] = 0
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            signal = {"reward": values.tolist()}
        self._last_signal = np.asarray(signal.get("reward", values), dtype=np.float64)
        probabilities = self.strategy.update(values, counts)
        if probabilities is None:
            return
        # the new distribution applies from the first position no rank has drawn yet: the same on every rank
        position = int(self._reduce(torch.tensor([self.sampler.position], dtype=torch.float64), "max")[0])
        # after a resume with a different batch geometry, the saved last change may lie ahead of this run's draws
        position = self.sampler.set_probabilities(probabilities, max(position, self.sampler.last_change + 1))
        self._record(state.global_step, position, probabilities, signal)
        if state.is_world_process_zero and self.config.history_file:
            with open(os.path.join(args.output_dir, self.config.history_file), "a", encoding="utf-8") as f:
                f.write(json.dumps(self.records[-1]) + "\n")

    def _reduce(self, tensor: torch.Tensor, reduction: str) -> np.ndarray:
        accelerator = self.trainer.accelerator
        if accelerator.num_processes == 1:
            return tensor.numpy()
        tensor = tensor.to(accelerator.device)
        if reduction == "max":
            return accelerator.gather(tensor[None]).max(0).values.cpu().numpy()
        return accelerator.reduce(tensor, reduction=reduction).cpu().numpy()

    def _collect_training_losses(self, args, step: int) -> None:
        """Attributes the per-example losses of this rank's micro-batches of `step` to their skills."""
        losses = self._loss_recorder.pop()
        batch, accumulation = args.train_batch_size, args.gradient_accumulation_steps
        world_size, rank = max(1, args.world_size), args.process_index
        if len(losses) != accumulation or any(len(batch_losses) != batch for batch_losses in losses):
            if not self._warned_loss_mismatch:
                logger.warning(
                    f"Online Data Mixing expected {accumulation} forward pass(es) of {batch} examples per step and saw "
                    f"{[len(x) for x in losses]}; losses of such steps are ignored."
                )
                self._warned_loss_mismatch = True
            return
        step_start = self.consumed_position(step)
        for micro_step, batch_losses in enumerate(losses):
            # rank r's a-th micro-batch of a step is global batch (a * world_size + r) of that step
            start = step_start + (micro_step * world_size + rank) * batch
            skills = self.sampler.skills_at(start, start + batch)
            self._loss_sums += np.bincount(
                skills, weights=batch_losses.double().numpy(), minlength=len(self._loss_sums)
            )
            self._loss_counts += np.bincount(skills, minlength=len(self._loss_counts))

    # ------------------------------------------------------------------ logging and history
    def _metrics(self, step: int) -> dict[str, float]:
        consumed_until = self.consumed_position(step)
        if consumed_until > self._consumed_until:
            counts = self.sampler.skill_counts(self._consumed_until, consumed_until)
            if self._row_tokens is not None:
                for skill, count in enumerate(counts):
                    rows = self._skill_rows(skill, int(self._consumed[skill]), int(self._consumed[skill] + count))
                    self._consumed_tokens[skill] += int(self._row_tokens[rows].sum())
            self._consumed += counts
            self._consumed_until = consumed_until
        metrics = {}
        probabilities = self.sampler.probabilities
        for i, name in enumerate(self.skill_index.names):
            metrics[f"mos/prob/{name}"] = float(probabilities[i])
            if self._last_signal is not None and math.isfinite(self._last_signal[i]):
                metrics[f"mos/reward/{name}"] = float(self._last_signal[i])
            metrics[f"mos/consumed/{name}"] = int(self._consumed[i])
            if self._row_tokens is not None:
                metrics[f"mos/consumed_tokens/{name}"] = int(self._consumed_tokens[i])
        return metrics

    def _skill_rows(self, skill: int, first: int, last: int) -> np.ndarray:
        """The rows of the `first`-th to `last`-th draws of `skill` (vectorised; the sampler walks each skill's rows
        through one seeded permutation per round)."""
        size = int(self.skill_index.sizes[skill])
        parts = []
        for round_ in range(first // size, (last - 1) // size + 1 if last > first else first // size):
            lo, hi = max(first - round_ * size, 0), min(last - round_ * size, size)
            parts.append(self.sampler._permutation(skill, round_)[lo:hi])
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def _record(self, step: int, position: int, probabilities, signal: dict | None = None) -> None:
        names = self.skill_index.names
        record = {
            "step": step,
            "position": position,
            "probabilities": dict(zip(names, map(float, probabilities), strict=True)),
        }
        for key, values in (signal or {}).items():
            record[key] = dict(zip(names, map(float, values), strict=True))
        self.records.append(record)

    def _rewrite_history_file(self, args, state) -> None:
        if not (state.is_world_process_zero and self.config.history_file):
            return
        os.makedirs(args.output_dir, exist_ok=True)
        path = os.path.join(args.output_dir, self.config.history_file)
        with tempfile.NamedTemporaryFile("w", dir=args.output_dir, delete=False, encoding="utf-8") as f:
            f.writelines(json.dumps(record) + "\n" for record in self.records)
        os.replace(f.name, path)

    # ------------------------------------------------------------------ checkpointing
    def _maybe_snapshot(self, state, control) -> None:
        # The trainer writes `state` into the checkpoint after this event when it saves: on `should_save`, and, with
        # `save_strategy="best"`, after an evaluation that finds a new best metric. Nothing here changes in between.
        if control.should_save or control.should_evaluate:
            state.stateful_callbacks = state.stateful_callbacks or {}
            state.stateful_callbacks[STATE_KEY] = self.state_dict()

    def state_dict(self) -> dict:
        """JSON-serialisable state saved with every Trainer checkpoint (in `trainer_state.json`)."""
        return {
            "skills": self.skill_index.names,
            "config": _config_dict(self.config),
            "seed": self.seed,
            "draws_per_step": self.draws_per_step,
            "global_step": self._global_step,
            "consumed": self.consumed_position(self._global_step),
            "sampler": self.sampler.state_dict(),
            "strategy": self.strategy.state_dict(),
            "rewards": None if self.rewards is None else self.rewards.state_dict(),
            "records": self.records,
            "loss_sums": self._loss_sums.tolist(),
            "loss_counts": self._loss_counts.tolist(),
            "last_signal": None if self._last_signal is None else self._last_signal.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores the state written by [`state_dict`].

        Raises:
            `ValueError`: if the state is for other skills, another seed or another [`MoSConfig`] (every differing
                field is named; `plot` and `history_file` may differ).
        """
        differences = []
        if state["skills"] != self.skill_index.names:
            differences.append(f"skills: saved {state['skills']}, now {self.skill_index.names}")
        saved_seed = state.get("seed", state["config"].get("seed"))
        if saved_seed != self.seed:
            differences.append(f"seed (mixing_seed, else data_seed, else seed): saved {saved_seed}, now {self.seed}")
        current = _config_dict(self.config)
        unchecked = [name for name in current if name not in state["config"] and name not in _RESUMABLE_CHANGES]
        for name, saved_value in state["config"].items():
            if name in current and name not in _RESUMABLE_CHANGES and saved_value != current[name]:
                differences.append(f"{name}: saved {saved_value!r}, now {current[name]!r}")
        if differences:
            raise ValueError(
                "The checkpoint's Mixture-of-Skills state does not match this run: "
                + "; ".join(differences)
                + ". Resume with the dataset, seed and MoSConfig of the checkpoint's run (or start a new run)."
            )
        if unchecked:
            logger.warning(
                f"The checkpoint was written by an older trl-mos that did not save {unchecked}: they are assumed "
                "unchanged."
            )
        self.sampler.load_state_dict(state["sampler"])
        self.strategy.load_state_dict(state["strategy"])
        if self.rewards is not None:
            self.rewards.load_state_dict(state["rewards"])
        self.records = list(state["records"])
        self._loss_sums = np.asarray(state["loss_sums"], dtype=np.float64)
        self._loss_counts = np.asarray(state["loss_counts"], dtype=np.float64)
        if state.get("last_signal") is not None:
            self._last_signal = np.asarray(state["last_signal"], dtype=np.float64)


_RESUMABLE_CHANGES = ("plot", "history_file")  # MoSConfig fields a resumed run may change: they only affect outputs


def _jsonable(value):
    """`value` if JSON can hold it, else a stand-in that still tells two values apart (a dataset's fingerprint)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    fingerprint = getattr(value, "_fingerprint", None)
    return f"<{type(value).__name__}{'' if fingerprint is None else ' ' + str(fingerprint)}>"


def _config_dict(config: MoSConfig) -> dict:
    """Every field of `config` as saved in a checkpoint."""
    return {field.name: _jsonable(getattr(config, field.name)) for field in dataclasses.fields(config)}


def _prepare_probe_dataset(trainer, dataset):
    """Tokenizes a held-out probe dataset as the trainer prepared its train dataset (`SFTTrainer`, unpacked)."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError(f"`probe_dataset` must be a `datasets.Dataset`; got {type(dataset).__name__}.")
    train_columns = trainer.train_dataset.column_names
    if "input_ids" in dataset.column_names or "input_ids" not in train_columns:
        return dataset  # already tokenized, or the collator tokenizes on the fly
    prepare = getattr(trainer, "_prepare_dataset", None)
    if prepare is None:
        raise ValueError(
            "The train dataset is tokenized but `probe_dataset` is not; tokenize it the same way (same columns)."
        )
    return prepare(dataset, trainer.processing_class, trainer.args, False, None, "probe")


def _pack_within_skills(trainer, skill_column: str) -> None:
    """Prepares and packs every skill of the trainer's (unprepared) train dataset separately, with the trainer's own
    preparation, so that every packed row holds one skill; the eval dataset gets the trainer's usual preparation."""
    args = trainer.args
    if "seq_lengths" in trainer.train_dataset.column_names:  # already packed by the user (e.g. `pack_within_skills`)
        return
    prepare = getattr(trainer, "_prepare_dataset", None)
    if prepare is None:
        raise TypeError(
            f"`packing=True` with Mixture-of-Skills needs TRL's `SFTTrainer` (which prepares and packs datasets); got "
            f"{type(trainer).__name__}. Pack every skill yourself with `trl_mos.mixing.pack_within_skills`."
        )
    processing_class = trainer.processing_class
    trainer.train_dataset = pack_within_skills(
        trainer.train_dataset,
        lambda rows, name: prepare(rows, processing_class, args, True, None, f"train ({name})"),
        skill_column,
    )
    eval_dataset = trainer.eval_dataset
    if eval_dataset is not None and not isinstance(eval_dataset, str):
        eval_packing = args.packing if getattr(args, "eval_packing", None) is None else args.eval_packing
        if isinstance(eval_dataset, dict):
            trainer.eval_dataset = {
                key: prepare(dataset, processing_class, args, eval_packing, None, key)
                for key, dataset in eval_dataset.items()
            }
        else:
            trainer.eval_dataset = prepare(eval_dataset, processing_class, args, eval_packing, None, "eval")


def _check_trainer(trainer, config: MoSConfig) -> None:
    """Fails early, with what to change, on trainer settings Mixture-of-Skills cannot honour."""
    if not callable(getattr(trainer, "_get_train_sampler", None)):
        raise TypeError(
            f"{type(trainer).__name__} has no `_get_train_sampler`; MixtureOfSkillsCallback needs a "
            "`transformers.Trainer` (or a subclass such as TRL's `SFTTrainer`)."
        )
    args = trainer.args
    dataset_kwargs = getattr(args, "dataset_kwargs", None) or {}
    if getattr(args, "packing", False) and not dataset_kwargs.get("skip_prepare_dataset", False):
        raise ValueError(
            "`packing=True` lets the trainer pack the whole train dataset, concatenating examples of different skills "
            "into one row and dropping the skill column, so Mixture-of-Skills cannot sample skills. Set "
            "`dataset_kwargs={'skip_prepare_dataset': True}` as well: the MixtureOfSkillsCallback then prepares and "
            "packs every skill separately with the trainer's own preparation, so that every packed row holds one skill."
        )
    padding_free = getattr(args, "padding_free", False) or getattr(args, "packing", False)
    if config.strategy == "odm" and padding_free:
        raise ValueError(
            "Online Data Mixing needs the training loss of every example, but padding-free and packed batches "
            "concatenate examples into one row; set `padding_free=False` and `packing=False` with strategy='odm'."
        )
    strategy = getattr(args, "train_sampling_strategy", "random")
    if strategy not in (None, "random") or getattr(args, "group_by_length", False):
        raise ValueError(
            f"Mixture-of-Skills replaces the train sampler, which conflicts with "
            f"`train_sampling_strategy={strategy!r}` / `group_by_length`; use the default random strategy."
        )
    accelerator_config = getattr(args, "accelerator_config", None)
    for option in ("split_batches", "dispatch_batches"):
        if getattr(accelerator_config, option, None):
            raise ValueError(
                f"`accelerator_config.{option}=True` is not supported by Mixture-of-Skills, whose sampler gives every "
                f"process its own batches of one shared stream; set `{option}=False`."
            )
