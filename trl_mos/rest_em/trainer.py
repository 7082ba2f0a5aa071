# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""[`ReSTEMTrainer`]: ReST^EM self-training (Singh et al., 2024) as an [`~trl.SFTTrainer`] subclass.

The loop of the paper's Algorithm 1 lives here; its parts are in their own modules: the E-step
([`~trl_mos.rest_em.e_step`], with the backends of [`~trl_mos.rest_em.generation`]), the base weights
([`~trl_mos.rest_em.weights`]), validation ([`~trl_mos.rest_em.validation`]) and the persisted run state
([`~trl_mos.rest_em.state`]).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback, TrainingArguments
from transformers.trainer_utils import TrainOutput
from transformers.utils import logging

from ..generation import tokenize_prompts
from ..verifiers import VerifierSuite, extract_answer
from .checkpoints import last_checkpoint, prune_checkpoints, prune_iteration_models, save_model_atomically
from .checks import check_max_length, check_problems, check_verifiers, warn_about_settings
from .config import ReSTEMConfig
from .e_step import SampleVerifier, build_backend, eos_ids_of, run_e_step
from .filtering import derive_seed, prompt_completion_rows
from .generation import GenerationBackend
from .m_step import MStepTrainer
from .plotting import plot_restem_metrics
from .state import RunDirectory, RunState, Stage, fingerprint, wants_resume
from .validation import evaluate_policy


logger = logging.get_logger(__name__)

PLOT_NAME = "restem_metrics.png"


class ReSTEMTrainer(MStepTrainer):
    r"""
    Trainer for ReST^EM self-training ([Singh et al., 2024](https://huggingface.co/papers/2312.06585), "Beyond Human
    Data: Scaling Self-Training for Problem-Solving with Language Models").

    Each of the `args.num_iterations` iterations

    1. **E-step**: samples `num_samples_per_prompt` solutions for every problem of `train_dataset` from the current
       policy (iteration 1: the model as given), spread over the processes, with the backend `args` selects
       (`model.generate`, transformers continuous batching or vLLM);
    2. **filter**: scores them with `verifiers`, keeps at most `max_solutions_per_prompt` accepted ones per problem
       (seeded random choice) and writes every sample with its verdicts to `output_dir/iteration-{i}/`;
    3. **M-step**: fine-tunes **the base model** (restored exactly; with PEFT, a fresh adapter) on the kept
       prompt–completion pairs with loss on the completion tokens only, a fresh optimizer and learning-rate schedule:
       the stock [`~trl.SFTTrainer`] training loop, with its checkpoints under `output_dir/iteration-{i}/`;
    4. **validation**: greedy accuracy (`pass@1`), pass@k and maj@k on `eval_dataset`; the best iteration is kept,
       saved to `output_dir/best` and loaded at the end; optional early stopping.

    `train(resume_from_checkpoint=True)` continues an interrupted run: finished iterations are neither regenerated
    nor retrained, a half-done E-step resumes from its saved shards and an interrupted M-step from its last Trainer
    checkpoint.

    Example:

    ```python
    >>> from trl_mos import ReSTEMConfig, ReSTEMTrainer
    >>> from trl_mos.verifiers import math_verifier
    >>> trainer = ReSTEMTrainer(
    ...     model="Qwen/Qwen2.5-0.5B-Instruct",
    ...     args=ReSTEMConfig(output_dir="restem-out", num_iterations=3, num_samples_per_prompt=32),
    ...     train_dataset=problems,  # "prompt" + the columns the verifiers need, e.g. "solution"
    ...     eval_dataset=validation,
    ...     verifiers=[math_verifier],
    ... )
    >>> trainer.train()
    ```

    Args:
        model (`str`, [`~transformers.PreTrainedModel`] or [`~peft.PeftModel`]):
            The base model: a Hub id or local path (loaded with `args.model_init_kwargs`), or a model object. See
            [`~trl.SFTTrainer`].
        verifiers (`Callable` or `list[Callable]`):
            Functions that score completions, with the signature of TRL reward functions:
            `verifier(prompts, completions, completion_ids, **columns) -> list[float | None]` (e.g.
            `trl_mos.verifiers.math_verifier` or `trl.rewards.accuracy_reward`). A completion is accepted when the
            verifiers' scores reach `args.verifier_threshold` (`args.verifier_mode` combines several verifiers).
        args ([`ReSTEMConfig`], *optional*):
            The configuration. Defaults to `ReSTEMConfig(f"{model_name}-ReSTEM")`.
        train_dataset ([`~datasets.Dataset`]):
            The problems: a `"prompt"` column (text or conversation) and the columns the verifiers need.
        eval_dataset ([`~datasets.Dataset`], *optional*):
            Validation problems, same columns. Without it there is no selection: the last iteration is the result.
        processing_class ([`~transformers.PreTrainedTokenizerBase`], *optional*):
            The tokenizer; loaded from the model by default. It needs a pad token.
        callbacks (`list[TrainerCallback]`, *optional*):
            Callbacks of the M-step training runs and of the ReST^EM logs.
        optimizer_cls_and_kwargs (`tuple[type[torch.optim.Optimizer], dict]`, *optional*):
            Optimizer class and arguments; a fresh optimizer is built in every M-step. (Passing optimizer instances
            is not supported, as they could not be renewed.)
        peft_config ([`~peft.PeftConfig`], *optional*):
            Trains a PEFT adapter; with `reset_to_base`, every M-step starts from the adapter's initial weights on the
            untouched base model.
        quantization_config ([`~transformers.BitsAndBytesConfig`], *optional*):
            Quantization of a model loaded from a string (QLoRA with `peft_config`).
        answer_extractor (`Callable[[str], str | None]`, *optional*):
            Extracts the final answer of a completion for maj@k (answers are grouped with
            `args.eval_answer_equivalence`). Defaults to [`~trl_mos.verifiers.extract_answer`]: the last `\boxed{}`,
            else the last number.
    """

    _tag_names = ["trl", "sft", "rest-em", "trl-mos"]
    _name = "ReST^EM"

    def __init__(
        self,
        model: str | PreTrainedModel,
        verifiers: Callable | Sequence[Callable] | None = None,
        args: ReSTEMConfig | TrainingArguments | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        peft_config: Any | None = None,
        quantization_config: Any | None = None,
        answer_extractor: Callable[[str], str | None] | None = None,
    ):
        args = ReSTEMConfig.from_args(args, model)

        # Bad input fails here, before any model is loaded or anything generated
        self.verifiers = check_verifiers(verifiers)
        self.verifier_suite = VerifierSuite(self.verifiers, threshold=args.verifier_threshold, mode=args.verifier_mode)
        check_problems(train_dataset, "train_dataset", self.verifiers, required=True)
        check_problems(eval_dataset, "eval_dataset", self.verifiers, required=False)

        # SFTTrainer prepares the M-step data; it is built anew every iteration from the kept samples, so the parent
        # is given a one-row placeholder of the right format (prompt–completion, text or conversational)
        placeholder = Dataset.from_list(
            prompt_completion_rows([{"prompt": train_dataset[0]["prompt"], "completion": ""}])
        )
        super().__init__(
            model=model,
            args=args,
            train_dataset=placeholder,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            peft_config=peft_config,
            quantization_config=quantization_config,
        )
        warn_about_settings(args, eval_dataset)

        self.train_problems = train_dataset
        self.eval_problems = eval_dataset
        self.answer_extractor = answer_extractor or extract_answer
        self.sample_verifier = SampleVerifier(
            self._tokenizer,
            self.verifier_suite,
            self.answer_extractor,
            keep_unfinished=args.keep_unfinished,
            error_policy=args.verifier_error_policy,
        )
        self.history: list[dict[str, Any]] = []
        self.best_iteration: int | None = None
        self._backend: GenerationBackend | None = None
        self._restem_state: RunState | None = None
        self.run_dir = RunDirectory(args.output_dir, self.accelerator)
        self._init_m_steps()

    # ------------------------------------------------------------------------------------------------------------------
    # The ReST^EM loop (Algorithm 1)

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> TrainOutput:
        """Runs ReST^EM: `args.num_iterations` iterations of E-step, filtering, M-step and validation.

        Args:
            resume_from_checkpoint (`bool` or `str`, *optional*):
                `True` (or the run's `output_dir`, or a checkpoint inside it) continues the run saved in
                `args.output_dir`. Otherwise a new run starts; an `output_dir` that already holds a ReST^EM run
                (`iteration-*`, `best`, the state file) is refused with an error rather than overwritten.
            trial: not supported (hyper-parameter search).
            ignore_keys_for_eval (`list[str]`, *optional*): passed to the M-step training runs.

        Returns:
            [`~transformers.trainer_utils.TrainOutput`]: total optimizer steps over all M-steps, the last M-step's
            training loss, and metrics with `restem/best_iteration` and the best validation metrics.
        """
        if trial is not None:
            raise ValueError("Hyper-parameter search is not supported by ReSTEMTrainer.")
        self._train_prompt_ids = tokenize_prompts(self._tokenizer, self.train_problems["prompt"])
        check_max_length(self._train_prompt_ids, self.args)  # before anything is written or generated
        state = self._start_or_resume(wants_resume(resume_from_checkpoint, self.args.output_dir))
        self._ensure_weights(0)  # a run starts from the base model
        if self.eval_problems is not None and self.args.evaluate_base:
            self._validate(0)  # the base model is "iteration 0", which the selection may return
        for iteration in range(1, self.args.num_iterations + 1):
            if state.stopped_at is not None:
                break
            if state.record(iteration).stage == Stage.EVALUATED:
                continue
            self._log_iteration = iteration
            kept = self._generate_and_filter(iteration)  # E-step: sample, verify, keep the correct solutions
            self._improve(iteration, kept, ignore_keys_for_eval)  # M-step: fine-tune the base model on them
            self._validate(iteration)  # select the best iteration on the validation problems
            self._stop_early(iteration)
        return self._finish()

    def _generate_and_filter(self, iteration: int) -> list[dict[str, Any]]:
        """The E-step of `iteration` and its filtering; returns the kept `{prompt, completion, ...}` rows."""
        record, iteration_dir = self._restem_state.record(iteration), self._iteration_dir(iteration)
        if record.reached(Stage.FILTERED):  # done before an interruption: read back
            kept = self.run_dir.read_kept(iteration)
        else:
            record.stage = Stage.SAMPLING
            self._save_state()
            self._ensure_weights(self._restem_state.weights_of(iteration - 1))
            kept, stats = run_e_step(
                self.generation_backend,
                lambda shard, indices, ids: self._verify_shard(self.train_problems, shard, indices, ids),
                self._train_prompt_ids,
                self.train_problems["prompt"],
                self.args,
                iteration,
                iteration_dir,
                self._is_main,
            )
            self.accelerator.wait_for_everyone()
            record.stage, record.e_step = Stage.FILTERED, stats
            self.log({"restem/iteration": iteration, **{f"restem/{k}": v for k, v in stats.items()}})
            self._save_state()
        if self._is_main:  # the saved samples supersede the shards
            shutil.rmtree(os.path.join(iteration_dir, "shards"), ignore_errors=True)
        return kept

    def _improve(self, iteration: int, kept: list[dict[str, Any]], ignore_keys_for_eval: list[str] | None) -> None:
        """The M-step of `iteration`, unless it is done (resumed from its last checkpoint if it was interrupted)."""
        state = self._restem_state
        record = state.record(iteration)
        if record.reached(Stage.TRAINED):
            return
        if not kept:
            logger.warning(
                f"ReST^EM iteration {iteration}: the verifiers accepted none of the {int(record.e_step['samples'])} "
                "samples, so there is nothing to fine-tune on; the model is left unchanged."
            )
            record.stage, record.weights = Stage.TRAINED, state.weights_of(iteration - 1)
        else:
            checkpoint = last_checkpoint(self._iteration_dir(iteration)) if record.stage == Stage.TRAINING else None
            record.stage = Stage.TRAINING
            self._save_state()
            start = 0 if self.args.reset_to_base else state.weights_of(iteration - 1)
            output = self._m_step(iteration, kept, start, checkpoint, ignore_keys_for_eval)
            record.stage, record.weights = Stage.TRAINED, iteration
            record.train_loss, record.steps = output.training_loss, output.global_step
            self.log({"restem/iteration": iteration, "restem/train_loss": output.training_loss})
        self._save_state()
        if self._is_main:  # save_total_limit over the whole run: earlier iterations' checkpoints go first
            prune_checkpoints(self.args.output_dir, self.args.save_total_limit)

    def _validate(self, iteration: int) -> None:
        """Validates the weights `iteration` ended with (iteration 0: the base model) and updates the best iteration."""
        state, args = self._restem_state, self.args
        record = state.record(iteration)
        if record.stage == Stage.EVALUATED:
            return
        if iteration == 0:
            record.weights = 0
        if self.eval_problems is not None:
            metrics = state.metrics_of_same_weights(iteration)  # the previous iteration's, if it ended with the same
            if metrics is None:
                self._ensure_weights(record.weights)
                label = "Evaluating base" if iteration == 0 else f"Evaluating iteration {iteration}"
                metrics = self.evaluate_accuracy(seed=derive_seed(args.seed, "eval", iteration), description=label)
            record.metrics = metrics
            self.log({"restem/iteration": iteration, **{f"eval/{k}": v for k, v in metrics.items()}})
        record.stage = Stage.EVALUATED
        if self.eval_problems is not None and state.update_best(iteration, record.metrics[args.selection_metric]):
            self.run_dir.write_best(state, args.selection_metric)
        self._save_state()
        if args.keep_iteration_models == "best_and_last" and self._is_main:
            keep = {state.weights_of(iteration)}
            if state.best_iteration is not None:
                keep.add(state.weights_of(state.best_iteration))
            prune_iteration_models(args.output_dir, keep)
        self.accelerator.wait_for_everyone()

    def _stop_early(self, iteration: int) -> None:
        state = self._restem_state
        if state.should_stop(iteration, self.args.early_stopping_patience):
            self._save_state()
            logger.info(
                f"ReST^EM: {self.args.selection_metric} has not improved for {self.args.early_stopping_patience} "
                f"iteration(s); stopping after iteration {iteration}. Best: iteration {state.best_iteration}."
            )

    def _finish(self) -> TrainOutput:
        state = self._restem_state
        last = state.last_evaluated()
        final = state.best_iteration if state.best_iteration is not None else last
        self._ensure_weights(state.weights_of(final))
        self.best_iteration = state.best_iteration
        if self.best_iteration is not None:
            save_model_atomically(self, os.path.join(self.args.output_dir, "best"))
        state.finished = True
        self._save_state()
        self.state.log_history = list(state.log_history)  # the whole run's, not only the last M-step's
        if self._is_main and self.history:
            plot_restem_metrics(self.history, os.path.join(self.args.output_dir, PLOT_NAME))
        return state.train_output()

    # ------------------------------------------------------------------------------------------------------------------
    # Public helpers

    @property
    def generation_backend(self) -> GenerationBackend:
        """The E-step's generation backend (built on first use)."""
        if self._backend is None:
            self._backend = build_backend(self.args, self.model_wrapped, self._tokenizer, self.accelerator)
        return self._backend

    def evaluate_accuracy(
        self, dataset: Dataset | None = None, seed: int | None = None, description: str = "Evaluating"
    ) -> dict[str, float]:
        """Measures the current model on problems: greedy accuracy (`pass@1`), and `pass@{k}` / `maj@{k}` for every k
        in `args.eval_k` from `args.eval_num_samples` samples (`args.eval_temperature`, `args.eval_top_p`).

        Args:
            dataset ([`~datasets.Dataset`], *optional*): problems with a `"prompt"` column and the verifiers' columns.
                Defaults to the trainer's `eval_dataset`.
            seed (`int`, *optional*): sampling seed. Defaults to one derived from `args.seed`.
            description (`str`, *optional*, defaults to `"Evaluating"`): progress bar label.

        Returns:
            `dict[str, float]`: `{"pass@1": ..., "pass@4": ..., "maj@4": ..., ...}`.

        Example:

        ```python
        >>> trainer.evaluate_accuracy(test_problems)
        {'pass@1': 0.42, 'pass@4': 0.61, 'maj@4': 0.45, 'pass@16': 0.78, 'maj@16': 0.47}
        ```
        """
        dataset = self.eval_problems if dataset is None else dataset
        if dataset is None:
            raise ValueError("Pass problems to evaluate on, or give the trainer an `eval_dataset`.")
        check_problems(dataset, "dataset", self.verifiers, required=True)
        return evaluate_policy(
            self.generation_backend,
            tokenize_prompts(self._tokenizer, dataset["prompt"]),
            lambda shard, indices, ids: self._verify_shard(dataset, shard, indices, ids, with_answers=True),
            self.args,
            seed=derive_seed(self.args.seed, "eval") if seed is None else seed,
            description=description,
        )

    def load_iteration(self, iteration: int) -> None:
        """Loads the weights an iteration ended with into `trainer.model`: `0` is the base model, `i` the model saved
        in `output_dir/iteration-{i}/model` (for an iteration that kept nothing, the weights it started from).

        Args:
            iteration (`int`): a finished iteration of the current run (or of the run in `output_dir`).

        Example:

        ```python
        >>> trainer.train()
        >>> for i in range(len(trainer.history)):
        ...     trainer.load_iteration(i)
        ...     print(i, trainer.evaluate_accuracy(test_problems)["pass@1"])
        ```
        """
        if self._restem_state is None:
            self._restem_state = self.run_dir.load_state()
            if self._restem_state is None:
                raise ValueError(f"No ReST^EM run in {self.args.output_dir}: train first.")
        record = self._restem_state.iterations.get(iteration)
        if iteration != 0 and (record is None or not record.reached(Stage.TRAINED)):
            raise ValueError(f"Iteration {iteration} has not finished training; nothing to load.")
        self._ensure_weights(self._restem_state.weights_of(iteration))

    def _verify_shard(
        self,
        dataset: Dataset,
        shard: int,
        indices: list[int],
        completion_ids: list[list[list[int]]],
        with_answers: bool = False,
    ) -> dict[str, Any]:
        """Decodes and verifies the completions of one shard; returns `{"samples": [record, ...]}`."""
        eos_ids = eos_ids_of(self.generation_backend)
        return {"samples": self.sample_verifier(dataset, indices, completion_ids, eos_ids, with_answers=with_answers)}

    # ------------------------------------------------------------------------------------------------------------------
    # Run state

    @property
    def _is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _iteration_dir(self, iteration: int) -> str:
        return self.run_dir.iteration_dir(iteration)

    def _start_or_resume(self, resume: bool) -> RunState:
        """The state of a new run, or of the interrupted run in `output_dir` when resuming."""
        model = self.accelerator.unwrap_model(self.model)
        identity = {
            "name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None),
            "parameters": self.run_dir.broadcast(self.base_weights.num_parameters()),
            "digest": self.run_dir.broadcast(self.base_weights.digest()),
        }
        current = fingerprint(self.args, len(self.train_problems), len(self.eval_problems or []), identity)
        if resume:
            self._restem_state = self.run_dir.resume(self.args, current)
            logger.info(f"ReST^EM: resuming the run in {self.args.output_dir}.")
        else:
            self._restem_state = self.run_dir.start(self.args, current)
        self.history = self._restem_state.history()
        return self._restem_state

    def _save_state(self) -> None:
        self.history = self._restem_state.history()
        self.run_dir.save_state(self._restem_state)
