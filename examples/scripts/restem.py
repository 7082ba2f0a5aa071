# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""
ReST^EM self-training (Singh et al., 2024): sample solutions, keep the verified ones, fine-tune the base model on them,
repeat; select the best iteration on a validation set.

On the offline tiny kit (CPU, no Hub, a few minutes): a tiny model warm-started on a few reference solutions of the
bundled arithmetic problems, then ReST^EM on other problems (answers only):

```bash
python examples/scripts/restem.py --tiny --output_dir out/restem-tiny \
    --num_iterations 3 --num_samples_per_prompt 16 --max_solutions_per_prompt 4 --max_completion_length 40 \
    --eval_num_samples 4 --eval_k 4 --max_steps 60 --per_device_train_batch_size 32 --learning_rate 3e-4 \
    --lr_scheduler_type cosine --warmup_steps 3 --max_length 128 \
    --use_cpu true --bf16 false --gradient_checkpointing false --save_strategy steps --save_steps 20
```

On a real model and dataset (Hub names or local `.json`/`.jsonl`/`.csv`/`.parquet` files or `save_to_disk` folders),
here MATH-style problems with the final answer in a `solution` column, checked with math-verify:

```bash
accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/scripts/restem.py \
    --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
    --dataset_name path/to/problems.jsonl --eval_dataset_name path/to/validation.jsonl \
    --prompt_column problem --solution_column answer --verifier math \
    --num_iterations 3 --num_samples_per_prompt 32 --max_completion_length 512 \
    --learning_rate 1e-5 --num_train_epochs 2 --per_device_train_batch_size 8 --gradient_accumulation_steps 4 \
    --save_strategy steps --save_steps 200 --output_dir out/restem
```

Faster sampling: add `--use_vllm true` (`pip install trl-mos[vllm]`; `--vllm_mode colocate`, or `server` with
`trl vllm-serve --model Qwen/Qwen2.5-0.5B-Instruct` running) or `--use_transformers_continuous_batching true`.

Several processes on a CPU-only machine (where `accelerate launch` starts only one):

```bash
torchrun --nproc_per_node 2 examples/scripts/restem.py --tiny --ddp_backend gloo --use_cpu true --bf16 false \
    --gradient_checkpointing false --output_dir out/restem-tiny-ddp --num_iterations 2 --num_samples_per_prompt 4 \
    --max_completion_length 40 --eval_num_samples 4 --eval_k 4 --max_steps 20
```

After an interruption, run the same command with `--resume_from_checkpoint true`: finished iterations are kept, a
half-done E-step resumes from its saved shards and an interrupted M-step from its last checkpoint.
"""

import os
from dataclasses import dataclass, field

from datasets import Dataset, load_dataset, load_from_disk
from trl import ModelConfig, TrlParser, get_peft_config

from trl_mos import ReSTEMConfig, ReSTEMTrainer


@dataclass
class ReSTEMScriptArguments:
    """
    Arguments of this script.

    Args:
        dataset_name (`str` or `None`, *optional*, defaults to `None`):
            Training problems: a Hub dataset name, a local `save_to_disk` folder, or a local
            `.json`/`.jsonl`/`.csv`/`.parquet` file.
        dataset_config (`str` or `None`, *optional*, defaults to `None`):
            Configuration name of a Hub dataset.
        dataset_train_split (`str`, *optional*, defaults to `"train"`):
            Split of the training problems.
        eval_dataset_name (`str` or `None`, *optional*, defaults to `None`):
            Validation problems (same forms as `dataset_name`). Defaults to `dataset_name` with `dataset_test_split`.
        dataset_test_split (`str` or `None`, *optional*, defaults to `None`):
            Validation split; with neither it nor `eval_dataset_name` there is no validation (the last iteration is
            the result).
        prompt_column (`str`, *optional*, defaults to `"prompt"`):
            Column with the problem statement (renamed to `"prompt"`).
        solution_column (`str`, *optional*, defaults to `"solution"`):
            Column with the reference final answer (renamed to `"solution"`, which `--verifier math` reads).
        verifier (`str`, *optional*, defaults to `"math"`):
            `"math"` ([`~trl_mos.verifiers.math_verifier`]: the final answer against `solution`, with math-verify) or
            `"code"` ([`~trl_mos.verifiers.code_verifier`]: runs the program against `test` or `inputs`/`outputs` in a
            sandbox).
        max_train_problems (`int` or `None`, *optional*, defaults to `None`):
            Use at most this many training problems (the first ones).
        max_eval_problems (`int` or `None`, *optional*, defaults to `None`):
            Use at most this many validation problems (the first ones).
        tiny (`bool`, *optional*, defaults to `False`):
            Ignore the model and dataset arguments and run on the offline tiny kit: a tiny model warm-started on 128
            reference solutions of the bundled arithmetic problems, then ReST^EM on 256 others.
        tiny_warm_start_steps (`int`, *optional*, defaults to `200`):
            Optimizer steps of the `--tiny` warm start.
    """

    dataset_name: str | None = field(default=None, metadata={"help": "Training problems (Hub name or local path)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of a Hub dataset."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split of the training problems."})
    eval_dataset_name: str | None = field(default=None, metadata={"help": "Validation problems (Hub name or path)."})
    dataset_test_split: str | None = field(default=None, metadata={"help": "Split of the validation problems."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column with the problem statement."})
    solution_column: str = field(default="solution", metadata={"help": "Column with the reference final answer."})
    verifier: str = field(default="math", metadata={"help": "Verifier.", "choices": ["math", "code"]})
    max_train_problems: int | None = field(default=None, metadata={"help": "Use at most N training problems."})
    max_eval_problems: int | None = field(default=None, metadata={"help": "Use at most N validation problems."})
    tiny: bool = field(default=False, metadata={"help": "Run on the offline tiny kit (CPU, no Hub)."})
    tiny_warm_start_steps: int = field(default=200, metadata={"help": "Optimizer steps of the --tiny warm start."})


def load_problems(source: str, split: str, config: str | None = None) -> Dataset:
    """Loads problems from a Hub dataset, a `save_to_disk` folder or a local data file."""
    extension = os.path.splitext(source)[1].lower()
    if os.path.isdir(source) and os.path.exists(os.path.join(source, "dataset_info.json")):
        return load_from_disk(source)
    if extension in (".json", ".jsonl", ".csv", ".parquet"):
        return load_dataset({".jsonl": "json"}.get(extension, extension[1:]), data_files=source, split="train")
    return load_dataset(source, config, split=split)


def prepare(dataset: Dataset, script_args: ReSTEMScriptArguments, limit: int | None) -> Dataset:
    """Renames the prompt and solution columns and keeps the first `limit` problems."""
    renames = {script_args.prompt_column: "prompt", script_args.solution_column: "solution"}
    for old, new in renames.items():
        if old != new and old in dataset.column_names:
            dataset = dataset.rename_column(old, new)
    return dataset.select(range(min(len(dataset), limit))) if limit is not None else dataset


def main(script_args: ReSTEMScriptArguments, training_args: ReSTEMConfig, model_args: ModelConfig):
    if script_args.verifier == "code":
        from trl_mos.verifiers import code_verifier as verifier
    else:
        from trl_mos.verifiers import math_verifier as verifier

    if script_args.tiny:
        from trl_mos.rest_em.demo import warm_start_tiny_model
        from trl_mos.tasks import make_arithmetic_problems

        problems = make_arithmetic_problems(seed=training_args.seed, num_validation=128)
        model, tokenizer = warm_start_tiny_model(
            problems["train"].select(range(128)),
            os.path.join(training_args.output_dir, "warm-start"),
            max_steps=script_args.tiny_warm_start_steps,
            seed=training_args.seed,
        )
        train_dataset = problems["train"].select(range(128, 128 + 256)).select_columns(["prompt", "solution"])
        eval_dataset = problems["validation"].select_columns(["prompt", "solution"])
    else:
        if not model_args.model_name_or_path or not script_args.dataset_name:
            raise ValueError("Pass --model_name_or_path and --dataset_name (or use --tiny).")
        train_dataset = load_problems(
            script_args.dataset_name, script_args.dataset_train_split, script_args.dataset_config
        )
        train_dataset = prepare(train_dataset, script_args, script_args.max_train_problems)
        eval_dataset = None
        if script_args.eval_dataset_name or script_args.dataset_test_split:
            eval_dataset = load_problems(
                script_args.eval_dataset_name or script_args.dataset_name,
                script_args.dataset_test_split or "validation",
                script_args.dataset_config,
            )
            eval_dataset = prepare(eval_dataset, script_args, script_args.max_eval_problems)
        # ReSTEMTrainer loads the model (and its tokenizer) from the name or path, as TRL's scripts do
        training_args.model_init_kwargs = {
            "revision": model_args.model_revision,
            "dtype": model_args.dtype,
            "attn_implementation": model_args.attn_implementation,
            **(training_args.model_init_kwargs or {}),
        }
        model, tokenizer = model_args.model_name_or_path, None

    trainer = ReSTEMTrainer(
        model=model,
        verifiers=[verifier],
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    for row in trainer.history:
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in row.items() if k.startswith("eval/"))
        trainer.accelerator.print(f"iteration {row['iteration']}: {metrics}")
    trainer.accelerator.print(
        f"Best iteration: {trainer.best_iteration}; model saved to {training_args.output_dir}; metrics plotted in "
        f"{os.path.join(training_args.output_dir, 'restem_metrics.png')}."
    )


if __name__ == "__main__":
    parser = TrlParser((ReSTEMScriptArguments, ReSTEMConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
