# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""[`ReSTEMTrainer`]: ReST^EM self-training (Singh et al., 2024) as an [`~trl.SFTTrainer`] subclass."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from datasets import Dataset, IterableDataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput, set_seed
from transformers.utils import logging
from trl import SFTTrainer

from ..evaluation import majority_vote, pass_at_k
from ..generation import tokenize_prompts
from ..verifiers import MissingColumnError, VerifierSuite, extract_answer, required_columns, verifier_name
from .config import ReSTEMConfig
from .filtering import (
    atomic_write_json,
    atomic_write_jsonl,
    derive_seed,
    read_json,
    read_jsonl,
    select_solutions,
    summarize_samples,
)
from .generation import GenerationBackend, SamplingSettings, build_backend, run_sharded_generation
from .plotting import plot_restem_metrics


logger = logging.get_logger(__name__)

STATE_NAME = "restem_state.json"
BEST_NAME = "best_iteration.json"
PLOT_NAME = "restem_metrics.png"
STATE_VERSION = 1
# stages of an iteration, in order
SAMPLING, FILTERED, TRAINING, TRAINED, EVALUATED = "sampling", "filtered", "training", "trained", "evaluated"
# settings a resumed run must share with the interrupted one
_FINGERPRINT_FIELDS = (
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
)


class ReSTEMTrainer(SFTTrainer):
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
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            args = ReSTEMConfig(f"{model_name.split('/')[-1]}-ReSTEM")
        elif not isinstance(args, ReSTEMConfig):
            dict_args = args.to_dict()
            for key in dict_args:
                if key.endswith("_token"):  # to_dict hides these (hub_token, and SFTConfig's eos_token, pad_token)
                    dict_args[key] = getattr(args, key)
            args = ReSTEMConfig(**dict_args)

        # Bad input fails here, before any model is loaded or anything generated
        self.verifiers = self._check_verifiers(verifiers)
        self.verifier_suite = VerifierSuite(self.verifiers, threshold=args.verifier_threshold, mode=args.verifier_mode)
        self._check_problems(train_dataset, "train_dataset", required=True)
        self._check_problems(eval_dataset, "eval_dataset", required=False)

        # SFTTrainer prepares the M-step data; it is built anew every iteration from the kept samples, so the parent
        # is given a one-row placeholder of the right format (prompt–completion, text or conversational)
        first_prompt = train_dataset[0]["prompt"]
        placeholder_completion = [{"role": "assistant", "content": ""}] if not isinstance(first_prompt, str) else ""
        placeholder = Dataset.from_dict({"prompt": [first_prompt], "completion": [placeholder_completion]})
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
        if args.early_stopping_patience is not None and eval_dataset is None:
            logger.warning("`early_stopping_patience` needs an `eval_dataset` to measure improvement; it is ignored.")
        if args.completion_only_loss is False:
            logger.warning(
                "`completion_only_loss=False`: the M-step trains on the prompt tokens too, unlike ReST^EM, whose loss "
                "is on the solution tokens only."
            )

        self.train_problems = train_dataset
        self.eval_problems = eval_dataset
        self.answer_extractor = answer_extractor or extract_answer
        self.history: list[dict[str, Any]] = []
        self.best_iteration: int | None = None
        self._backend: GenerationBackend | None = None
        self._restem_state: dict[str, Any] | None = None
        self._m_step_output_dir: str | None = None
        self._current_weights = 0  # which iteration's weights self.model holds (0: the base model)
        # The base: every trainable parameter (all of them for full fine-tuning, the adapter's initial weights with
        # PEFT), kept on the CPU so that every M-step starts from exactly these weights
        self._base_weights = self._snapshot_trainable_weights()

    # ------------------------------------------------------------------------------------------------------------------
    # Input checks

    @staticmethod
    def _check_verifiers(verifiers) -> list[Callable]:
        if callable(verifiers):
            verifiers = [verifiers]
        if verifiers is None or len(verifiers) == 0:
            raise ValueError(
                "ReSTEMTrainer needs at least one verifier to decide which samples are correct, e.g. "
                "`verifiers=[math_verifier]` (from trl_mos.verifiers) or any TRL reward function such as "
                "`trl.rewards.accuracy_reward`."
            )
        verifiers = list(verifiers)
        for verifier in verifiers:
            if not callable(verifier):
                raise TypeError(
                    f"Every verifier must be a function `f(prompts, completions, completion_ids, **columns) -> "
                    f"list[float | None]`, got {type(verifier).__name__}: {verifier!r}."
                )
        return verifiers

    def _check_problems(self, dataset, name: str, required: bool) -> None:
        if dataset is None:
            if required:
                raise ValueError(
                    f"`{name}` is required: the problems to self-train on, with a 'prompt' column and the columns the "
                    "verifiers need."
                )
            return
        if isinstance(dataset, IterableDataset) or not isinstance(dataset, Dataset):
            raise TypeError(
                f"`{name}` must be a `datasets.Dataset` (ReST^EM samples every problem in every iteration), got "
                f"{type(dataset).__name__}."
            )
        columns = list(dataset.column_names)
        if "prompt" not in columns:
            raise ValueError(
                f"`{name}` has no 'prompt' column; its columns are {columns}. Rename the column that holds the problem "
                "statements to 'prompt' (plain text or a list of chat messages), e.g. "
                f"`{name} = {name}.rename_column('question', 'prompt')`."
            )
        if len(dataset) == 0:
            raise ValueError(f"`{name}` is empty.")
        for verifier in self.verifiers:
            missing = sorted(required_columns(verifier) - set(columns))
            if missing:
                raise MissingColumnError(
                    f"The verifier '{verifier_name(verifier)}' needs the column(s) {missing}, which `{name}` lacks; "
                    f"its columns are {columns}. Add them (e.g. the reference answer as 'solution') or rename the "
                    "matching column."
                )

    # ------------------------------------------------------------------------------------------------------------------
    # Public helpers

    @property
    def generation_backend(self) -> GenerationBackend:
        """The E-step's generation backend (built on first use)."""
        if self._backend is None:
            self._backend = build_backend(self)
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
        self._check_problems(dataset, "dataset", required=True)
        args = self.args
        seed = derive_seed(args.seed, "eval") if seed is None else seed
        prompt_ids = tokenize_prompts(self._tokenizer, dataset["prompt"])
        run = partial(
            run_sharded_generation,
            self.generation_backend,
            prompt_ids,
            shard_size=args.generation_shard_size,
            process_shard=partial(self._verify_shard, dataset, with_answers=True),
            show_progress=not args.disable_tqdm,
        )
        greedy = run(
            SamplingSettings(1, args.max_completion_length, do_sample=False), seed=seed, description=description
        )
        greedy_records = [r for payload in greedy for r in payload["samples"]]
        metrics = {"pass@1": sum(r["accepted"] for r in greedy_records) / len(greedy_records)}
        if args.eval_num_samples > 0:
            settings = SamplingSettings(
                args.eval_num_samples,
                args.max_completion_length,
                temperature=args.eval_temperature,
                top_p=args.eval_top_p,
            )
            sampled = run(settings, seed=derive_seed(seed, "sampled"), description=f"{description} (sampled)")
            per_prompt: dict[int, list[dict[str, Any]]] = {}
            for payload in sampled:
                for record in payload["samples"]:
                    per_prompt.setdefault(record["prompt_index"], []).append(record)
            n = args.eval_num_samples
            for k in args.eval_k:
                metrics[f"pass@{k}"] = sum(
                    pass_at_k(n, sum(r["accepted"] for r in records), k) for records in per_prompt.values()
                ) / len(per_prompt)
                metrics[f"maj@{k}"] = sum(self._majority_correct(records, k) for records in per_prompt.values()) / len(
                    per_prompt
                )
        return metrics

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
            path = os.path.join(self.args.output_dir, STATE_NAME)
            self._restem_state = self._broadcast(read_json(path) if self._is_main else None)
            if self._restem_state is None:
                raise ValueError(f"No ReST^EM run in {self.args.output_dir}: train first.")
        record = self._restem_state["iterations"].get(str(iteration), {})
        if iteration != 0 and record.get("stage") not in (TRAINED, EVALUATED):
            raise ValueError(f"Iteration {iteration} has not finished training; nothing to load.")
        self._ensure_weights(self._weights_of(iteration))

    def _majority_correct(self, records: list[dict[str, Any]], k: int) -> float:
        """maj@k of one problem: whether the most frequent answer among its first k samples (answers grouped with
        `args.eval_answer_equivalence`) belongs to a sample the verifiers accepted."""
        answers = [r["answer"] for r in records[:k]]
        winner, _ = majority_vote(answers, equivalence=self.args.eval_answer_equivalence)
        if winner is None:
            return 0.0
        return float(next(r["accepted"] for r in records[:k] if r["answer"] == winner))

    # ------------------------------------------------------------------------------------------------------------------
    # The ReST^EM loop

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
        args = self.args
        resume = self._resolve_resume(resume_from_checkpoint)
        state = self._start_or_resume(resume)
        self._restem_state = state
        self._ensure_weights(0)  # a run starts from the base model
        self._train_prompt_ids = tokenize_prompts(self._tokenizer, self.train_problems["prompt"])

        if self.eval_problems is not None and args.evaluate_base and self._record(0).get("stage") != EVALUATED:
            metrics = self.evaluate_accuracy(seed=derive_seed(args.seed, "eval", 0), description="Evaluating base")
            self._record(0).update(stage=EVALUATED, weights=0, metrics=metrics)
            self._update_best(0)
            self._save_state()
            self.log({"restem/iteration": 0, **{f"eval/{k}": v for k, v in metrics.items()}})

        for iteration in range(1, args.num_iterations + 1):
            if state.get("stopped_at") is not None:
                break
            record = self._record(iteration)
            if record.get("stage") == EVALUATED:
                continue
            iteration_dir = self._iteration_dir(iteration)

            # E-step and filtering
            if record.get("stage") in (None, SAMPLING):
                record["stage"] = SAMPLING
                self._save_state()
                self._ensure_weights(self._weights_of(iteration - 1))
                kept, stats = self._e_step(iteration)
                record.update(stage=FILTERED, e_step=stats)
                self._save_state()
                self.log({"restem/iteration": iteration, **{f"restem/{k}": v for k, v in stats.items()}})
            else:
                kept = self._broadcast(
                    read_jsonl(os.path.join(iteration_dir, "kept.jsonl")) if self._is_main else None
                )
            if self._is_main:  # the saved samples supersede the shards
                shutil.rmtree(os.path.join(iteration_dir, "shards"), ignore_errors=True)

            # M-step
            if record["stage"] in (FILTERED, TRAINING):
                if not kept:
                    logger.warning(
                        f"ReST^EM iteration {iteration}: the verifiers accepted none of the "
                        f"{int(record['e_step']['samples'])} samples, so there is nothing to fine-tune on; the model is "
                        "left unchanged."
                    )
                    record.update(stage=TRAINED, weights=self._weights_of(iteration - 1), train_loss=None, steps=0)
                else:
                    resume_checkpoint = self._last_checkpoint(iteration_dir) if record["stage"] == TRAINING else None
                    record["stage"] = TRAINING
                    self._save_state()
                    output = self._m_step(iteration, kept, resume_checkpoint, ignore_keys_for_eval)
                    record.update(
                        stage=TRAINED, weights=iteration, train_loss=output.training_loss, steps=output.global_step
                    )
                    self.log({"restem/iteration": iteration, "restem/train_loss": output.training_loss})
                self._save_state()

            # Validation and selection
            if self.eval_problems is not None:
                previous = self._record(iteration - 1) if iteration > 1 or args.evaluate_base else {}
                if record["weights"] == previous.get("weights") and "metrics" in previous:
                    metrics = dict(previous["metrics"])  # same weights as the previous iteration: same results
                else:
                    self._ensure_weights(record["weights"])
                    metrics = self.evaluate_accuracy(
                        seed=derive_seed(args.seed, "eval", iteration), description=f"Evaluating iteration {iteration}"
                    )
                record["metrics"] = metrics
                self.log({"restem/iteration": iteration, **{f"eval/{k}": v for k, v in metrics.items()}})
            record["stage"] = EVALUATED
            if self.eval_problems is not None:
                self._update_best(iteration)
            self._save_state()
            patience = args.early_stopping_patience
            if patience is not None and state["iterations_without_improvement"] >= patience:
                state["stopped_at"] = iteration
                self._save_state()
                logger.info(
                    f"ReST^EM: {args.selection_metric} has not improved for {patience} iteration(s); stopping after "
                    f"iteration {iteration}. Best: iteration {state['best_iteration']}."
                )

        return self._finish()

    def _finish(self) -> TrainOutput:
        state = self._restem_state
        last = max((int(i) for i, r in state["iterations"].items() if r.get("stage") == EVALUATED), default=0)
        final = state["best_iteration"] if state["best_iteration"] is not None else last
        self._ensure_weights(self._weights_of(final))
        self.best_iteration = state["best_iteration"]
        if self.best_iteration is not None:
            self._save_model_atomically(os.path.join(self.args.output_dir, "best"))
        state["finished"] = True
        self._save_state()
        self._plot()
        steps = sum(int(r.get("steps") or 0) for r in state["iterations"].values())
        losses = [
            r["train_loss"]
            for _, r in sorted(state["iterations"].items(), key=lambda x: int(x[0]))
            if r.get("train_loss") is not None
        ]
        metrics: dict[str, float] = {"restem/iterations": float(last)}
        if self.best_iteration is not None:
            metrics["restem/best_iteration"] = float(self.best_iteration)
            metrics.update({f"eval/{k}": v for k, v in self._record(self.best_iteration)["metrics"].items()})
        return TrainOutput(global_step=steps, training_loss=losses[-1] if losses else 0.0, metrics=metrics)

    # ------------------------------------------------------------------------------------------------------------------
    # E-step

    def _e_step(self, iteration: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
        args = self.args
        iteration_dir = self._iteration_dir(iteration)
        settings = SamplingSettings(
            args.num_samples_per_prompt,
            args.max_completion_length,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
        )
        payloads = run_sharded_generation(
            self.generation_backend,
            self._train_prompt_ids,
            settings,
            shard_size=args.generation_shard_size,
            seed=derive_seed(args.seed, "e-step", iteration),
            process_shard=partial(self._verify_shard, self.train_problems, with_answers=False),
            shard_dir=os.path.join(iteration_dir, "shards"),
            description=f"ReST^EM iteration {iteration}: sampling",
            show_progress=not args.disable_tqdm,
        )
        records = [record for payload in payloads for record in payload["samples"]]
        kept = select_solutions(
            records, args.max_solutions_per_prompt, args.deduplicate_solutions, seed=args.seed, iteration=iteration
        )
        stats = summarize_samples(records, kept)
        seconds_per_rank: dict[int, float] = {}
        for payload in payloads:
            seconds_per_rank[payload["rank"]] = seconds_per_rank.get(payload["rank"], 0.0) + payload["seconds"]
        wall = max(seconds_per_rank.values())
        stats["generation_tokens_per_s"] = stats["completion_tokens"] / wall if wall > 0 else 0.0
        prompts = self.train_problems["prompt"]
        kept_rows = [
            {
                "prompt_index": r["prompt_index"],
                "sample_index": r["sample_index"],
                "prompt": prompts[r["prompt_index"]],
                "completion": r["completion"],
            }
            for r in kept
        ]
        if self._is_main:
            kept_ids = {(r["prompt_index"], r["sample_index"]) for r in kept}
            atomic_write_jsonl(
                os.path.join(iteration_dir, "samples.jsonl"),
                (
                    {
                        **r,
                        "prompt": prompts[r["prompt_index"]],
                        "kept": (r["prompt_index"], r["sample_index"]) in kept_ids,
                    }
                    for r in records
                ),
            )
            atomic_write_jsonl(os.path.join(iteration_dir, "kept.jsonl"), kept_rows)
            atomic_write_json(os.path.join(iteration_dir, "summary.json"), {"iteration": iteration, **stats})
        self.accelerator.wait_for_everyone()
        return kept_rows, stats

    def _verify_shard(
        self,
        dataset: Dataset,
        shard: int,
        indices: list[int],
        completion_ids: list[list[list[int]]],
        with_answers: bool = False,
    ) -> dict[str, Any]:
        """Decodes and verifies the completions of one shard; returns `{"samples": [record, ...]}`."""
        rows = dataset[indices]
        eos_ids = self.generation_backend.eos_token_id()
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
        flat_ids = [list(ids) for samples in completion_ids for ids in samples]
        texts = self._tokenizer.batch_decode(flat_ids, skip_special_tokens=True)
        # every sample gets its problem's prompt and columns, as GRPOTrainer passes them to reward functions
        owner = [position for position, samples in enumerate(completion_ids) for _ in samples]
        prompts = [rows["prompt"][position] for position in owner]
        completions = [
            text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]
            for text, prompt in zip(texts, prompts, strict=True)
        ]
        columns = {
            key: [values[position] for position in owner]
            for key, values in rows.items()
            if key not in ("prompt", "completion")
        }
        verdicts = self.verifier_suite(prompts=prompts, completions=completions, completion_ids=flat_ids, **columns)
        samples, j = [], 0
        for position, per_prompt in enumerate(completion_ids):
            for sample_index, ids in enumerate(per_prompt):
                record = {
                    "prompt_index": indices[position],
                    "sample_index": sample_index,
                    "completion": texts[j],
                    "num_tokens": len(ids),
                    "finished": bool(ids) and ids[-1] in eos_ids,
                    "accepted": verdicts[j].accepted,
                    "scores": verdicts[j].scores,
                    "reason": verdicts[j].reason,
                }
                if with_answers:
                    record["answer"] = self.answer_extractor(texts[j])
                samples.append(record)
                j += 1
        return {"samples": samples}

    # ------------------------------------------------------------------------------------------------------------------
    # M-step

    def _m_step(
        self, iteration: int, kept: list[dict[str, Any]], resume_checkpoint: str | None, ignore_keys_for_eval
    ) -> TrainOutput:
        args = self.args
        rows = [
            {
                "prompt": r["prompt"],
                "completion": r["completion"]
                if isinstance(r["prompt"], str)
                else [{"role": "assistant", "content": r["completion"]}],
            }
            for r in kept
        ]
        dataset = Dataset.from_list(rows)
        self.train_dataset = self._prepare_dataset(
            dataset, self.processing_class, args, args.packing, None, f"iteration-{iteration}"
        )
        self._ensure_weights(0 if args.reset_to_base else self._weights_of(iteration - 1))
        # A fresh optimizer and learning-rate schedule (Trainer creates them when they are None), and a seed of its own
        # so that the M-step does not depend on what ran before it
        self.optimizer, self.lr_scheduler = None, None
        set_seed(derive_seed(args.seed, "m-step", iteration))
        self._m_step_output_dir = self._iteration_dir(iteration)
        if resume_checkpoint is not None:
            logger.info(f"ReST^EM iteration {iteration}: resuming the M-step from {resume_checkpoint}.")
        try:
            output = super().train(resume_from_checkpoint=resume_checkpoint, ignore_keys_for_eval=ignore_keys_for_eval)
        finally:
            self._m_step_output_dir = None
        self._current_weights = -1  # neither the base nor a saved iteration until saved below
        self._save_model_atomically(os.path.join(self._iteration_dir(iteration), "model"))
        self._current_weights = iteration
        if self._backend is not None:
            self._backend.update_weights()
        return output

    def _get_output_dir(self, trial) -> str:
        # M-step checkpoints go to output_dir/iteration-{i}/checkpoint-{step}
        if self._m_step_output_dir is not None:
            return self._m_step_output_dir
        return super()._get_output_dir(trial)

    @staticmethod
    def _last_checkpoint(directory: str) -> str | None:
        """The newest complete Trainer checkpoint in `directory` (its `trainer_state.json`, written last, is valid)."""
        if not os.path.isdir(directory):
            return None
        steps = []
        for name in os.listdir(directory):
            if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name.split("-")[-1].isdigit():
                if read_json(os.path.join(directory, name, "trainer_state.json")) is not None:
                    steps.append(int(name.split("-")[-1]))
        return os.path.join(directory, f"{PREFIX_CHECKPOINT_DIR}-{max(steps)}") if steps else None

    # ------------------------------------------------------------------------------------------------------------------
    # Weights

    def _trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        model = self.accelerator.unwrap_model(self.model)
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    def _snapshot_trainable_weights(self) -> dict[str, torch.Tensor]:
        with self._full_parameters(modify=False) as parameters:
            return {name: p.detach().to("cpu", copy=True) for name, p in parameters.items()}

    @torch.no_grad()
    def _restore_base_weights(self) -> None:
        with self._full_parameters(modify=True) as parameters:
            if set(parameters) != set(self._base_weights):
                raise RuntimeError(
                    "The model's trainable parameters changed since the trainer was created; cannot restore the base."
                )
            for name, p in parameters.items():
                value = self._base_weights[name]
                if _is_dtensor(p):
                    from torch.distributed.tensor import distribute_tensor

                    p.copy_(distribute_tensor(value.to(p.device, p.dtype), p.device_mesh, p.placements))
                else:
                    p.copy_(value.to(p.device, p.dtype))

    @contextlib.contextmanager
    def _full_parameters(self, modify: bool):
        """Yields the trainable parameters, gathered if DeepSpeed ZeRO-3 partitions them (FSDP2's DTensors are handled
        by the callers)."""
        parameters = self._trainable_parameters()
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None and plugin.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(parameters.values()), modifier_rank=0 if modify else None):
                yield parameters
        else:
            yield {n: (p.full_tensor() if _is_dtensor(p) and not modify else p) for n, p in parameters.items()}

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # an iteration's saved model leaves out weights tied to others (e.g. `lm_head.weight`); they are not missing
        model = self.accelerator.unwrap_model(self.model)
        tied = set(getattr(model, "all_tied_weights_keys", None) or {})
        missing = [key for key in load_result.missing_keys if key not in tied]
        super()._issue_warnings_after_load(type(load_result)(missing, load_result.unexpected_keys))

    def _ensure_weights(self, iteration: int) -> None:
        """Puts the weights of `iteration` (0: the base model) into `self.model`, if it does not hold them already."""
        if self._current_weights == iteration:
            return
        if iteration == 0:
            self._restore_base_weights()
        else:
            self._load_from_checkpoint(os.path.join(self._iteration_dir(iteration), "model"))
        self._current_weights = iteration
        if self._backend is not None:
            self._backend.update_weights()

    def _save_model_atomically(self, path: str) -> None:
        """Saves `self.model` (and the tokenizer) to `path` through a temporary directory renamed into place."""
        temporary = f"{path}.tmp"
        if self._is_main:
            shutil.rmtree(temporary, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.save_model(temporary, _internal_call=True)
        self.accelerator.wait_for_everyone()
        if self._is_main:
            shutil.rmtree(path, ignore_errors=True)
            os.replace(temporary, path)
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------------------------------------------------------
    # State, selection, logging

    @property
    def _is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _broadcast(self, obj: Any) -> Any:
        if self.accelerator.num_processes == 1:
            return obj
        return broadcast_object_list([obj], from_process=0)[0]

    def _iteration_dir(self, iteration: int) -> str:
        return os.path.join(self.args.output_dir, f"iteration-{iteration}")

    def _record(self, iteration: int) -> dict[str, Any]:
        return self._restem_state["iterations"].setdefault(str(iteration), {})

    def _weights_of(self, iteration: int) -> int:
        """Which saved weights iteration `iteration` ended with (an iteration that kept nothing keeps its input)."""
        return 0 if iteration == 0 else self._record(iteration)["weights"]

    def _fingerprint(self) -> dict[str, Any]:
        fingerprint = {name: getattr(self.args, name) for name in _FINGERPRINT_FIELDS}
        fingerprint["num_train_problems"] = len(self.train_problems)
        fingerprint["num_eval_problems"] = len(self.eval_problems) if self.eval_problems is not None else 0
        return fingerprint

    def _resolve_resume(self, resume_from_checkpoint: str | bool | None) -> bool:
        if isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("true", "false", "none", ""):
            return resume_from_checkpoint.lower() == "true"  # e.g. `--resume_from_checkpoint true` on a command line
        if isinstance(resume_from_checkpoint, str):
            output_dir = os.path.abspath(self.args.output_dir)
            path = os.path.abspath(resume_from_checkpoint)
            if os.path.commonpath([output_dir, path]) != output_dir:
                raise ValueError(
                    f"ReST^EM resumes the run saved in `output_dir` ({self.args.output_dir}); got "
                    f"resume_from_checkpoint={resume_from_checkpoint!r}. Pass `resume_from_checkpoint=True`, with the "
                    "`output_dir` of the interrupted run."
                )
            return True
        return bool(resume_from_checkpoint)

    def _start_or_resume(self, resume: bool) -> dict[str, Any]:
        path = os.path.join(self.args.output_dir, STATE_NAME)
        fingerprint = self._fingerprint()
        state = self._broadcast(read_json(path) if self._is_main else None)
        if resume:
            if state is None:
                raise ValueError(
                    f"No ReST^EM run to resume in {self.args.output_dir} (no readable {STATE_NAME}). Start a new run "
                    "with `resume_from_checkpoint=None`."
                )
            saved = state.get("fingerprint", {})
            different = {k: (saved.get(k), v) for k, v in fingerprint.items() if saved.get(k) != v}
            if different:
                details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in different.items())
                raise ValueError(
                    f"Cannot resume the ReST^EM run in {self.args.output_dir}: these settings differ from the "
                    f"interrupted run ({details}). Resume with the same settings, or start a new run in another "
                    "`output_dir`."
                )
            state["finished"] = False
            if state.get("stopped_at") is None:
                state["num_iterations"] = self.args.num_iterations
            self.history = self._history(state)
            logger.info(f"ReST^EM: resuming the run in {self.args.output_dir}.")
            return state
        existing = None
        if self._is_main and os.path.isdir(self.args.output_dir):
            names = [STATE_NAME, BEST_NAME, "best"]
            names += [name for name in os.listdir(self.args.output_dir) if name.startswith("iteration-")]
            existing = sorted(name for name in names if os.path.exists(os.path.join(self.args.output_dir, name)))
        existing = self._broadcast(existing)
        if existing:
            raise ValueError(
                f"{self.args.output_dir} holds a previous ReST^EM run ({', '.join(existing)}). Pass "
                "`resume_from_checkpoint=True` to continue it, or choose another `output_dir` (or delete those files) "
                "to start a new run; ReSTEMTrainer never overwrites a run's samples and models."
            )
        self.accelerator.wait_for_everyone()
        state = {
            "version": STATE_VERSION,
            "fingerprint": fingerprint,
            "num_iterations": self.args.num_iterations,
            "iterations": {},
            "best_iteration": None,
            "best_metric": None,
            "iterations_without_improvement": 0,
            "stopped_at": None,
            "finished": False,
        }
        self._restem_state = state
        self.history = []
        self._save_state()
        return state

    def _save_state(self) -> None:
        self.history = self._history(self._restem_state)
        if self._is_main:
            atomic_write_json(os.path.join(self.args.output_dir, STATE_NAME), self._restem_state)

    @staticmethod
    def _history(state: dict[str, Any]) -> list[dict[str, Any]]:
        history = []
        for key, record in sorted(state["iterations"].items(), key=lambda item: int(item[0])):
            if record.get("stage") != EVALUATED:
                continue
            row: dict[str, Any] = {"iteration": int(key)}
            row.update({f"restem/{k}": v for k, v in record.get("e_step", {}).items()})
            if record.get("train_loss") is not None:
                row["restem/train_loss"] = record["train_loss"]
            row.update({f"eval/{k}": v for k, v in record.get("metrics", {}).items()})
            history.append(row)
        return history

    def _update_best(self, iteration: int) -> None:
        state = self._restem_state
        value = self._record(iteration)["metrics"][self.args.selection_metric]
        if state["best_metric"] is None or value > state["best_metric"]:
            state.update(best_iteration=iteration, best_metric=value, iterations_without_improvement=0)
            if self._is_main:
                atomic_write_json(
                    os.path.join(self.args.output_dir, BEST_NAME),
                    {
                        "iteration": iteration,
                        "metric": self.args.selection_metric,
                        "value": value,
                        "weights": self._weights_of(iteration),
                    },
                )
        elif iteration > 0:
            state["iterations_without_improvement"] += 1

    def _plot(self) -> None:
        if self._is_main and self.history:
            plot_restem_metrics(self.history, os.path.join(self.args.output_dir, PLOT_NAME))


def _is_dtensor(tensor: torch.Tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(tensor, DTensor)
