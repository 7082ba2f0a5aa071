# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The M-step side of [`ReSTEMTrainer`]: an [`~trl.SFTTrainer`] whose `train()` runs once per iteration, each time a
fresh fine-tuning run (new optimizer and schedule, its own seed) from given weights — the base model's, restored
exactly, or a saved iteration's — with its checkpoints and final weights under `output_dir/iteration-{i}/`."""

from __future__ import annotations

import os
from typing import Any

from datasets import Dataset
from transformers.trainer_utils import TrainOutput, set_seed
from transformers.utils import logging
from trl import SFTTrainer

from .checkpoints import save_model_atomically
from .filtering import derive_seed, prompt_completion_rows
from .weights import BaseWeights


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
        # A fresh optimizer and learning-rate schedule (Trainer creates them when they are None), and a seed of its own
        # so that the M-step does not depend on what ran before it
        self.optimizer, self.lr_scheduler = None, None
        set_seed(derive_seed(args.seed, "m-step", iteration))
        self._m_step_output_dir = self.run_dir.iteration_dir(iteration)
        if resume_checkpoint is not None:
            logger.info(f"ReST^EM iteration {iteration}: resuming the M-step from {resume_checkpoint}.")
        try:
            output = super().train(resume_from_checkpoint=resume_checkpoint, ignore_keys_for_eval=ignore_keys_for_eval)
        finally:
            self._m_step_output_dir = None
        self._current_weights = -1  # neither the base nor a saved iteration until saved below
        save_model_atomically(self, os.path.join(self.run_dir.iteration_dir(iteration), "model"))
        self._current_weights = iteration
        self._weights_changed()
        return output

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
            self._load_from_checkpoint(os.path.join(self.run_dir.iteration_dir(iteration), "model"))
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
