# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Configuration of [`ReSTEMTrainer`]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments
from trl import SFTConfig


VERIFIER_MODES = ("all", "any")
VLLM_MODES = ("colocate", "server")
KEEP_MODELS = ("all", "best_and_last")
ERROR_POLICIES = ("exclude", "reject")


@dataclass
class ReSTEMConfig(SFTConfig):
    r"""
    Configuration class for the [`ReSTEMTrainer`]: ReST^EM self-training (Singh et al., 2024, "Beyond Human Data").

    Each iteration samples `num_samples_per_prompt` solutions per training problem from the current policy (E-step),
    keeps at most `max_solutions_per_prompt` of the ones the verifiers accept, fine-tunes **the base model** on them
    (M-step, loss on the completion tokens only) and evaluates the result on the validation set. This class only holds
    the ReST^EM parameters; the M-step is a stock SFT run controlled by every other [`~trl.SFTConfig`] /
    [`~transformers.TrainingArguments`] field (`learning_rate`, `num_train_epochs`, `max_steps`,
    `per_device_train_batch_size`, `save_steps`, ...), started afresh in every iteration.

    Using [`~transformers.HfArgumentParser`] we can turn this class into
    [argparse](https://docs.python.org/3/library/argparse#module-argparse) arguments that can be specified on the
    command line.

    Parameters:
        > Parameters that control the iterations

        num_iterations (`int`, *optional*, defaults to `3`):
            Number of E-step/M-step iterations (the paper's I; MATH improved for 3 iterations).
        reset_to_base (`bool`, *optional*, defaults to `True`):
            Fine-tune the base model in every M-step, as the paper does: the base weights are restored exactly (full
            fine-tuning) or a fresh adapter with the initial weights is put on the untouched base model (PEFT). Set to
            `False` for the continue-from-last-iterate variant (RAFT, OpenRLHF, trlx), for comparison.
        early_stopping_patience (`int` or `None`, *optional*, defaults to `None`):
            Stop when `selection_metric` on `eval_dataset` has not improved for this many iterations in a row.
            `None` runs all `num_iterations`. The best iteration is selected either way.

        > Parameters that control generation (E-step)

        num_samples_per_prompt (`int`, *optional*, defaults to `32`):
            Solutions sampled per training problem in each E-step (the paper's N: 32 for MATH, 64 for APPS).
        max_completion_length (`int`, *optional*, defaults to `256`):
            Maximum number of generated tokens per solution (E-step and evaluation).
        temperature (`float`, *optional*, defaults to `0.7`):
            Sampling temperature of the E-step (paper: 0.7).
        top_k (`int`, *optional*, defaults to `40`):
            Top-k filtering of the E-step (paper: 40). `0` disables it.
        top_p (`float`, *optional*, defaults to `1.0`):
            Nucleus filtering of the E-step. `1.0` disables it.
        generation_batch_size (`int`, *optional*, defaults to `512`):
            Completions per generation call of the default backend (`model.generate`): prompts are batched
            `max(1, generation_batch_size // num_samples_per_prompt)` at a time. Lower it if generation runs out of
            memory.
        generation_shard_size (`int`, *optional*, defaults to `64`):
            Prompts per E-step shard. Shards are distributed over the processes, each one sampled with its own seed
            (so the samples do not depend on the number of processes) and saved as soon as it is done, so that an
            interrupted E-step resumes from the last saved shard.

        > Parameters that control filtering

        max_solutions_per_prompt (`int` or `None`, *optional*, defaults to `10`):
            Keep at most this many accepted solutions per problem (paper: 10), chosen uniformly at random with a seed
            derived from `seed`, the iteration and the problem. `None` keeps all.
        deduplicate_solutions (`bool`, *optional*, defaults to `False`):
            Drop exact duplicates among a problem's accepted solutions before capping.
        verifier_threshold (`float`, *optional*, defaults to `1.0`):
            A verifier accepts a solution when its score is at least this value (binary rewards: 1 = correct).
        verifier_mode (`str`, *optional*, defaults to `"all"`):
            With several verifiers, accept a solution when `"all"` of them or `"any"` of them accept it. Verifiers
            that return `None` (not applicable to this problem) are ignored; a solution no verifier applies to is
            rejected.

        keep_unfinished (`bool`, *optional*, defaults to `False`):
            Accept solutions that did not end with an end-of-sequence token within `max_completion_length` (cut off).
            By default they are rejected whatever the verifiers say (a cut-off "...so far is 72 and then" must not
            pass for the answer 72, nor be trained on with an end-of-sequence token appended) and counted in
            `restem/unfinished`. Applies to the E-step and to validation.
        verifier_error_policy (`str`, *optional*, defaults to `"exclude"`):
            What a verifier error (a timeout or crash of the verifier, not of the solution: a verdict with status
            `"error"`) counts as: `"exclude"` — neither accepted nor rejected, left out of `restem/correct_rate` and
            never kept; `"reject"` — a wrong solution. Either way errors are counted in `restem/verifier_errors`.
            (Counting them as accepted is not offered: under optimisation pressure the policy would learn to provoke
            errors.) In validation an excluded error counts as not solved.
        keep_iteration_models (`str`, *optional*, defaults to `"all"`):
            Which iterations' final weights (`output_dir/iteration-{i}/model`) stay on disk: `"all"`, or
            `"best_and_last"` (the best iteration's so far and the last one's; the others are deleted as soon as they
            are neither, and cannot be loaded with `load_iteration` afterwards). M-step checkpoints follow
            `save_total_limit` over the whole run: at most that many, the newest, across all iterations.

        > Parameters that control validation and selection

        eval_num_samples (`int`, *optional*, defaults to `16`):
            Solutions sampled per validation problem for pass@k and maj@k (n of the unbiased pass@k estimator). `0`
            measures greedy accuracy only.
        eval_k (`list[int]`, *optional*, defaults to `[4, 16]`):
            The k of the logged `eval/pass@{k}` and `eval/maj@{k}` (each at least 2 and at most `eval_num_samples`;
            `eval/pass@1` is the greedy accuracy).
        eval_temperature (`float`, *optional*, defaults to `1.0`):
            Sampling temperature for pass@k and maj@k (paper: 1.0).
        eval_top_p (`float`, *optional*, defaults to `0.95`):
            Nucleus filtering for pass@k and maj@k (paper: 0.95).
        eval_answer_equivalence (`str`, *optional*, defaults to `"normalized"`):
            How maj@k groups the final answers of the samples: `"normalized"` (equal text after normalisation),
            `"exact"` or `"math"` (equal according to math-verify). maj@k votes among the first k samples; the vote is
            correct when the winning answer's sample was accepted by the verifiers.
        selection_metric (`str`, *optional*, defaults to `"pass@1"`):
            Validation metric that selects the best iteration and drives early stopping: `"pass@1"` (greedy accuracy)
            or `"pass@{k}"` / `"maj@{k}"` with k in `eval_k`. Higher is better.
        evaluate_base (`bool`, *optional*, defaults to `True`):
            Evaluate the base model before the first iteration, as iteration 0. The base model can then be selected
            as the best "iteration" when no iteration improves on it.

        > Parameters that control generation acceleration powered by vLLM

        use_vllm (`bool`, *optional*, defaults to `False`):
            Generate with vLLM instead of `model.generate`. Requires `pip install trl-mos[vllm]`.
        vllm_mode (`str`, *optional*, defaults to `"colocate"`):
            `"colocate"`: a vLLM engine in every training process, sharing its GPU. `"server"`: requests go to a
            separate `trl vllm-serve` server.
        vllm_model_impl (`str`, *optional*, defaults to `"vllm"`):
            Model implementation used by vLLM: `"vllm"` or `"transformers"`.
        vllm_server_base_url (`str` or `None`, *optional*, defaults to `None`):
            Base URL of the vLLM server (e.g. `"http://localhost:8000"`). If set, `vllm_server_host` and
            `vllm_server_port` are ignored.
        vllm_server_host (`str`, *optional*, defaults to `"0.0.0.0"`):
            Host of the vLLM server.
        vllm_server_port (`int`, *optional*, defaults to `8000`):
            Port of the vLLM server.
        vllm_server_timeout (`float`, *optional*, defaults to `240.0`):
            Seconds to wait for the vLLM server to come up.
        vllm_group_port (`int`, *optional*, defaults to `51216`):
            Port of the weight-update group of the vLLM server.
        vllm_gpu_memory_utilization (`float`, *optional*, defaults to `0.3`):
            Fraction of GPU memory the colocated vLLM engine may use.
        vllm_tensor_parallel_size (`int`, *optional*, defaults to `1`):
            Tensor-parallel size of the colocated vLLM engine.
        vllm_max_model_length (`int` or `None`, *optional*, defaults to `None`):
            Context length of the colocated vLLM engine (prompt + completion); inferred from the model by default.
        vllm_enable_sleep_mode (`bool`, *optional*, defaults to `False`):
            Let the colocated engine release its GPU memory while the M-step trains.
        vllm_enforce_eager (`bool`, *optional*, defaults to `False`):
            Run the colocated engine without CUDA graphs / compilation: a faster start (≈ 3 s instead of ≈ 40 s on a
            CPU), slower generation.
        weight_sync_check (`bool`, *optional*, defaults to `True`):
            After every weight push into the generation engine (vLLM, or transformers continuous batching), compare
            the engine's greedy completions of a few fixed probe prompts, and its log-probabilities of the
            training model's greedy completions, with the training model's, and raise `WeightSyncError` saying what
            differs if they do not match (a stale policy).
        weight_sync_max_new_tokens (`int`, *optional*, defaults to `16`):
            Length of the check's greedy completions.
        weight_sync_tolerance (`float` or `None`, *optional*, defaults to `None`):
            Largest per-token log-prob gap the check accepts; `None` means `1e-3` for a float32 model and `0.5` for a
            16-bit one.

        > Parameters that control generation acceleration powered by transformers continuous batching

        use_transformers_continuous_batching (`bool`, *optional*, defaults to `False`):
            Generate with transformers' continuous batching engine (`model.generate_batch`).
        transformers_continuous_batching_config (`dict` or `None`, *optional*, defaults to `None`):
            Keyword arguments of `transformers.generation.ContinuousBatchingConfig`.

    Example:

    ```python
    >>> from trl_mos import ReSTEMConfig
    >>> args = ReSTEMConfig(output_dir="restem-out", num_iterations=3, num_samples_per_prompt=32)
    >>> args.max_solutions_per_prompt, args.temperature, args.top_k
    (10, 0.7, 40)
    ```
    """

    _VALID_DICT_FIELDS = SFTConfig._VALID_DICT_FIELDS + ["transformers_continuous_batching_config"]

    # Iterations
    num_iterations: int = field(default=3, metadata={"help": "Number of E-step/M-step iterations."})
    reset_to_base: bool = field(
        default=True,
        metadata={
            "help": "Fine-tune the base model in every M-step (the paper). False: continue from the last iterate."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many iterations without improvement of selection_metric (None: never)."},
    )

    # E-step
    num_samples_per_prompt: int = field(default=32, metadata={"help": "Solutions sampled per problem (paper: 32)."})
    max_completion_length: int = field(default=256, metadata={"help": "Maximum generated tokens per solution."})
    temperature: float = field(default=0.7, metadata={"help": "E-step sampling temperature (paper: 0.7)."})
    top_k: int = field(default=40, metadata={"help": "E-step top-k filtering (paper: 40; 0 disables it)."})
    top_p: float = field(default=1.0, metadata={"help": "E-step nucleus filtering (1.0 disables it)."})
    generation_batch_size: int = field(
        default=512, metadata={"help": "Completions per model.generate call (prompts x samples)."}
    )
    generation_shard_size: int = field(
        default=64, metadata={"help": "Prompts per E-step shard (unit of distribution, seeding and resumption)."}
    )

    # Filtering
    max_solutions_per_prompt: int | None = field(
        default=10, metadata={"help": "Keep at most this many accepted solutions per problem (paper: 10)."}
    )
    deduplicate_solutions: bool = field(
        default=False, metadata={"help": "Drop exact duplicates among a problem's accepted solutions."}
    )
    verifier_threshold: float = field(
        default=1.0, metadata={"help": "A verifier accepts a solution whose score is at least this value."}
    )
    verifier_mode: str = field(
        default="all",
        metadata={"help": "Accept when all or any of the verifiers accept.", "choices": list(VERIFIER_MODES)},
    )

    keep_unfinished: bool = field(
        default=False,
        metadata={"help": "Accept solutions cut off at max_completion_length (no end-of-sequence token)."},
    )
    verifier_error_policy: str = field(
        default="exclude",
        metadata={
            "help": "What a verifier error counts as: exclude (neither accepted nor rejected) or reject.",
            "choices": list(ERROR_POLICIES),
        },
    )
    keep_iteration_models: str = field(
        default="all",
        metadata={
            "help": "Which iterations' final weights stay on disk: all, or the best and the last.",
            "choices": list(KEEP_MODELS),
        },
    )

    # Validation and selection
    eval_num_samples: int = field(
        default=16, metadata={"help": "Samples per validation problem for pass@k and maj@k (0: greedy only)."}
    )
    eval_k: list[int] = field(
        default_factory=lambda: [4, 16],
        metadata={"help": "The k of eval/pass@k and eval/maj@k (2 <= k <= eval_num_samples)."},
    )
    eval_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of pass@k/maj@k."})
    eval_top_p: float = field(default=0.95, metadata={"help": "Nucleus filtering of pass@k/maj@k."})
    eval_answer_equivalence: str = field(
        default="normalized",
        metadata={"help": "How maj@k groups answers.", "choices": ["normalized", "exact", "math"]},
    )
    selection_metric: str = field(
        default="pass@1",
        metadata={
            "help": "Metric that selects the best iteration: pass@1 (greedy), pass@k or maj@k with k in eval_k."
        },
    )
    evaluate_base: bool = field(
        default=True, metadata={"help": "Evaluate the base model as iteration 0 before the first iteration."}
    )

    # vLLM
    use_vllm: bool = field(
        default=False, metadata={"help": "Generate with vLLM (pip install trl-mos[vllm]) instead of model.generate."}
    )
    vllm_mode: str = field(
        default="colocate",
        metadata={"help": "vLLM in the training processes or on a server.", "choices": list(VLLM_MODES)},
    )
    vllm_model_impl: str = field(
        default="vllm", metadata={"help": "vLLM model implementation.", "choices": ["vllm", "transformers"]}
    )
    vllm_server_base_url: str | None = field(
        default=None, metadata={"help": "Base URL of the vLLM server (overrides host and port)."}
    )
    vllm_server_host: str = field(default="0.0.0.0", metadata={"help": "Host of the vLLM server."})
    vllm_server_port: int = field(default=8000, metadata={"help": "Port of the vLLM server."})
    vllm_server_timeout: float = field(default=240.0, metadata={"help": "Seconds to wait for the vLLM server."})
    vllm_group_port: int = field(default=51216, metadata={"help": "Port of the vLLM weight-update group."})
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "GPU memory fraction of the colocated vLLM engine."}
    )
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "Tensor-parallel size of colocated vLLM."})
    vllm_max_model_length: int | None = field(
        default=None, metadata={"help": "Context length of the colocated vLLM engine."}
    )
    vllm_enable_sleep_mode: bool = field(
        default=False, metadata={"help": "Release the colocated engine's GPU memory during the M-step."}
    )
    vllm_enforce_eager: bool = field(
        default=False, metadata={"help": "Colocated vLLM without CUDA graphs or compilation (faster start)."}
    )
    weight_sync_check: bool = field(
        default=True,
        metadata={"help": "After every weight push, check that the generation engine matches the training model."},
    )
    weight_sync_max_new_tokens: int = field(
        default=16, metadata={"help": "Length of the weight-sync check's greedy completions."}
    )
    weight_sync_tolerance: float | None = field(
        default=None,
        metadata={
            "help": "Largest log-prob gap the weight-sync check accepts (None: 1e-3 in float32, 0.5 in 16-bit)."
        },
    )

    # Continuous batching
    use_transformers_continuous_batching: bool = field(
        default=False, metadata={"help": "Generate with transformers' continuous batching (model.generate_batch)."}
    )
    transformers_continuous_batching_config: dict[str, Any] | str | None = field(
        default=None, metadata={"help": "Keyword arguments of transformers' ContinuousBatchingConfig."}
    )

    @classmethod
    def from_args(cls, args: TrainingArguments | None, model: Any = None) -> ReSTEMConfig:
        """`args` as a `ReSTEMConfig`: itself, a copy of another `TrainingArguments` (e.g. an `SFTConfig`) with the
        ReST^EM defaults, or, for `None`, the default config with `output_dir="{model name}-ReSTEM"`."""
        if isinstance(args, cls):
            return args
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            return cls(f"{model_name.split('/')[-1]}-ReSTEM")
        dict_args = args.to_dict()
        for key in dict_args:
            if key.endswith("_token"):  # to_dict hides these (hub_token, and SFTConfig's eos_token, pad_token)
                dict_args[key] = getattr(args, key)
        return cls(**dict_args)

    def __post_init__(self):
        super().__post_init__()
        positive = {
            "num_iterations": self.num_iterations,
            "num_samples_per_prompt": self.num_samples_per_prompt,
            "max_completion_length": self.max_completion_length,
            "generation_batch_size": self.generation_batch_size,
            "generation_shard_size": self.generation_shard_size,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.max_solutions_per_prompt is not None and self.max_solutions_per_prompt < 1:
            raise ValueError(
                f"`max_solutions_per_prompt` must be at least 1 (or None to keep every accepted solution), got "
                f"{self.max_solutions_per_prompt}."
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(
                f"`early_stopping_patience` must be at least 1 (or None to run every iteration), got "
                f"{self.early_stopping_patience}."
            )
        if not self.temperature > 0 or not self.eval_temperature > 0:
            raise ValueError(
                f"`temperature` and `eval_temperature` must be positive (ReST^EM samples), got {self.temperature} and "
                f"{self.eval_temperature}."
            )
        if not 0 < self.top_p <= 1 or not 0 < self.eval_top_p <= 1:
            raise ValueError(f"`top_p` and `eval_top_p` must be in (0, 1], got {self.top_p} and {self.eval_top_p}.")
        if self.top_k < 0:
            raise ValueError(f"`top_k` must be non-negative (0 disables it), got {self.top_k}.")
        if self.verifier_error_policy not in ERROR_POLICIES:
            raise ValueError(
                f"`verifier_error_policy` must be one of {list(ERROR_POLICIES)}, got {self.verifier_error_policy!r} "
                "(counting verifier errors as accepted is not offered: the policy would learn to provoke them)."
            )
        if self.keep_iteration_models not in KEEP_MODELS:
            raise ValueError(
                f"`keep_iteration_models` must be one of {list(KEEP_MODELS)}, got {self.keep_iteration_models!r}."
            )
        if self.verifier_mode not in VERIFIER_MODES:
            raise ValueError(f"`verifier_mode` must be one of {list(VERIFIER_MODES)}, got {self.verifier_mode!r}.")

        # Validation metrics
        if isinstance(self.eval_k, int):
            self.eval_k = [self.eval_k]
        self.eval_k = sorted({int(k) for k in self.eval_k})
        if self.eval_num_samples < 0:
            raise ValueError(f"`eval_num_samples` must be non-negative (0: greedy only), got {self.eval_num_samples}.")
        if any(k < 2 for k in self.eval_k):
            raise ValueError(
                f"Every k in `eval_k` must be at least 2, got {self.eval_k}: eval/pass@1 is always measured, as the "
                "greedy accuracy."
            )
        if self.eval_k and max(self.eval_k) > self.eval_num_samples:
            raise ValueError(
                f"pass@k and maj@k need at least k samples per problem, but eval_k={self.eval_k} and "
                f"eval_num_samples={self.eval_num_samples}. Raise `eval_num_samples` to at least {max(self.eval_k)} "
                f"or drop the larger k from `eval_k`."
            )
        if self.eval_answer_equivalence not in ("normalized", "exact", "math"):
            raise ValueError(
                "`eval_answer_equivalence` must be 'normalized', 'exact' or 'math', got "
                f"{self.eval_answer_equivalence!r}."
            )
        allowed = ["pass@1"] + [f"{name}@{k}" for k in self.eval_k for name in ("pass", "maj")]
        if self.selection_metric not in allowed:
            raise ValueError(
                f"`selection_metric` must be one of {allowed} (the metrics `eval_k` makes available), got "
                f"{self.selection_metric!r}."
            )

        # The M-step is a plain SFT run; validation is by generation, after each iteration
        if self.eval_strategy != "no":
            raise ValueError(
                "ReST^EM validates by generation after every iteration (on the trainer's `eval_dataset`); Trainer's "
                f"loss evaluation during the M-step is not supported. Leave `eval_strategy='no'` (got "
                f"{str(self.eval_strategy)!r})."
            )
        if self.load_best_model_at_end:
            raise ValueError(
                "`load_best_model_at_end` does not apply to ReST^EM: the trainer selects the best iteration by "
                "`selection_metric` and loads it at the end of `train()` by itself. Leave it `False`."
            )

        # Generation backends
        if self.use_vllm and self.use_transformers_continuous_batching:
            raise ValueError("Choose one generation backend: `use_vllm` or `use_transformers_continuous_batching`.")
        if self.weight_sync_max_new_tokens < 1:
            raise ValueError(
                f"`weight_sync_max_new_tokens` must be at least 1, got {self.weight_sync_max_new_tokens}; set "
                "`weight_sync_check=False` to turn the check off."
            )
        if self.vllm_mode not in VLLM_MODES:
            raise ValueError(f"`vllm_mode` must be one of {list(VLLM_MODES)}, got {self.vllm_mode!r}.")
