# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The M-step side of [`ReSTEMTrainer`]: an [`~trl.SFTTrainer`] whose `train()` runs once per iteration, each time a
fresh fine-tuning run (new optimizer and schedule, its own seed) from given weights — the base model's, restored
exactly, or a saved iteration's — with its checkpoints and final weights under `output_dir/iteration-{i}/`."""

from __future__ import annotations

import gc
import os
from typing import Any

import torch
from datasets import Dataset
from transformers.trainer_utils import TrainOutput, set_seed
from transformers.utils import logging
from trl import SFTTrainer

from .checkpoints import save_model_atomically
from .filtering import derive_seed, prompt_completion_rows
from .weights import BaseWeights, is_sharded, read_saved_weights, write_weights


logger = logging.get_logger(__name__)


class MStepTrainer(SFTTrainer):
    """An `SFTTrainer` that fine-tunes repeatedly, each M-step from the weights it is told to start from.

    Subclasses set `self.run_dir` (a [`~trl_mos.rest_em.state.RunDirectory`]) and call [`_init_m_steps`] at the end
    of their `__init__`; the weights the model holds are named by iteration: `0` is the base model, `i` the weights
    saved at the end of iteration `i`'s M-step.
    """

    def _init_m_steps(self) -> None:
        self._backend = getattr(self, "_backend", None)
        self._m_step_output_dir: str | None = None
        self._log_iteration = 0  # the iteration the next log entries belong to
        self._current_weights = 0  # which iteration's weights self.model holds (0: the base model)
        # every M-step starts from exactly these weights
        self.base_weights = BaseWeights(self.accelerator)
        self.base_weights.snapshot(self.model)

    def _m_step(
        self,
        iteration: int,
        kept: list[dict[str, Any]],
        start_weights: int,
        resume_checkpoint: str | None,
        ignore_keys_for_eval: list[str] | None = None,
    ) -> TrainOutput:
        """Fine-tunes the base model (or, without `reset_to_base`, the last iterate) on the kept solutions with a fresh
        optimizer and schedule: the stock `Trainer.train()` loop, checkpoints under `output_dir/iteration-{i}/`."""
        args = self.args
        self.train_dataset = self._prepare_dataset(
            Dataset.from_list(prompt_completion_rows(kept)),
            self.processing_class,
            args,
            args.packing,
            None,
            f"iteration-{iteration}",
        )
        self._ensure_weights(start_weights)
        # A fresh run, reset the way Trainer resets itself for one (`train()` with `model_init`, a new batch size with
        # `auto_find_batch_size`): no optimizer or scheduler (it creates new ones), and the model not yet wrapped (the
        # previous run's DeepSpeed engine or DDP wrapper is released by `accelerator.free_memory()` when it starts,
        # and the model is prepared again); and a seed of its own, so that the M-step does not depend on what ran
        # before it
        self.optimizer, self.lr_scheduler = None, None
        self.model_wrapped = self.model
        set_seed(derive_seed(args.seed, "m-step", iteration))
        self._m_step_output_dir = self.run_dir.iteration_dir(iteration)
        if resume_checkpoint is not None:
            logger.info(f"ReST^EM iteration {iteration}: resuming the M-step from {resume_checkpoint}.")
        try:
            output = super().train(resume_from_checkpoint=resume_checkpoint, ignore_keys_for_eval=ignore_keys_for_eval)
        finally:
            self._m_step_output_dir = None
        # the M-step's entries (after a resume, those of its checkpoint too) join the run's log history
        self._restem_state.log_history.extend(self.state.log_history)
        self._free_optimizer()
        self._current_weights = -1  # neither the base nor a saved iteration until saved below
        save_model_atomically(self, os.path.join(self.run_dir.iteration_dir(iteration), "model"))
        self._current_weights = iteration
        self._weights_changed()
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """`Trainer.log` on the run's step axis: every entry gets `restem/iteration`, and its step (the
        `state.global_step` that `report_to` backends plot against) counts the optimizer steps of every M-step so far,
        so that it only grows across iterations. ReST^EM's own logs carry no stale M-step `epoch`. Entries outside an
        M-step are added to the run's log history (an M-step's own entries are added when it ends)."""
        state = self._restem_state
        in_m_step = self._m_step_output_dir is not None
        logs = {**logs, "restem/iteration": logs.get("restem/iteration", self._log_iteration)}
        step, epoch = self.state.global_step, self.state.epoch
        self.state.global_step = (state.total_steps() if state is not None else 0) + (step if in_m_step else 0)
        if not in_m_step:
            self.state.epoch = None
        try:
            super().log(logs, start_time)
        finally:
            self.state.global_step, self.state.epoch = step, epoch
        if not in_m_step and state is not None:
            state.log_history.append(self.state.log_history[-1])

    def _free_optimizer(self) -> None:
        """Drops the finished M-step's optimizer and scheduler (Adam's moments: twice the trainable parameters), so that
        they do not hold memory through validation and the next E-step; the next M-step builds new ones anyway. (A
        DeepSpeed engine keeps its own reference to its optimizer until the next M-step releases the engine: the E-step
        generates through it.)"""
        self.optimizer, self.lr_scheduler = None, None
        self.callback_handler.optimizer, self.callback_handler.lr_scheduler = None, None
        self.accelerator._optimizers.clear()
        self.accelerator._schedulers.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _get_output_dir(self, trial) -> str:
        # M-step checkpoints go to output_dir/iteration-{i}/checkpoint-{step}
        if self._m_step_output_dir is not None:
            return self._m_step_output_dir
        return super()._get_output_dir(trial)

    def _ensure_weights(self, iteration: int) -> None:
        """Puts the weights of `iteration` (0: the base model) into `self.model`, if it does not hold them already."""
        if self._current_weights == iteration:
            return
        if iteration == 0:
            self.base_weights.restore(self.model)
        else:
            path = os.path.join(self.run_dir.iteration_dir(iteration), "model")
            if not os.path.isdir(path):
                raise ValueError(
                    f"The weights of iteration {iteration} are not on disk ({path}): with "
                    f"keep_iteration_models={self.args.keep_iteration_models!r} only the best and the last iteration's "
                    "weights are kept."
                )
            if is_sharded(self.accelerator):  # Trainer's own loading does not apply: write the saved whole weights
                values = (
                    read_saved_weights(path, self.base_weights.names) if self.accelerator.is_main_process else None
                )
                write_weights(self.accelerator, self.model, values)
            else:
                self._load_from_checkpoint(path)
        self._current_weights = iteration
        self._weights_changed()

    def _weights_changed(self) -> None:
        if self._backend is not None:
            self._backend.update_weights(self.model_wrapped)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # an iteration's saved model leaves out weights tied to others (e.g. `lm_head.weight`); they are not missing
        model = self.accelerator.unwrap_model(self.model)
        tied = set(getattr(model, "all_tied_weights_keys", None) or {})
        missing = [key for key in load_result.missing_keys if key not in tied]
        super()._issue_warnings_after_load(type(load_result)(missing, load_result.unexpected_keys))
