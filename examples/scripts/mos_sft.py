# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""
Supervised fine-tuning on several datasets ("skills") with Mixture-of-Skills data mixing.

A stock TRL `SFTTrainer` script plus two lines: `concatenate_skills` and `MixtureOfSkillsCallback`.

On the offline tiny kit (CPU, no Hub, about a minute):

```bash
python examples/scripts/mos_sft.py --tiny --output_dir out/mos-tiny --max_steps 300 --update_steps 50
```

On real models and datasets (names on the Hub or local paths; `name=path[:split]`, local `.json`/`.jsonl`/`.csv`/
`.parquet` files and `save_to_disk` folders are read too). Every dataset needs the same columns, e.g. TRL's
prompt–completion or conversational format:

```bash
accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/scripts/mos_sft.py \
    --model_name_or_path Qwen/Qwen2.5-0.5B \
    --skills math=path/to/math.jsonl med=path/to/med.jsonl chat=path/to/chat.jsonl \
    --strategy mos --reward diff --use_ema true --update_steps 100 \
    --learning_rate 1e-5 --num_train_epochs 3 --per_device_train_batch_size 8 \
    --save_strategy steps --save_steps 500 --output_dir out/mos
```

Several processes on a CPU-only machine (where `accelerate launch` starts only one):

```bash
torchrun --nproc_per_node 2 examples/scripts/mos_sft.py --tiny --ddp_backend gloo --use_cpu true \
    --output_dir out/mos-tiny-ddp --max_steps 100
```

Resume after an interruption with `--resume_from_checkpoint out/mos/checkpoint-500`: the mixing state is restored
from the checkpoint with no extra step.
"""

import os
from dataclasses import dataclass, field

from datasets import Dataset, load_dataset, load_from_disk
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config

from trl_mos import MixtureOfSkillsCallback, MoSConfig, concatenate_skills


@dataclass
class MoSScriptArguments:
    """
    Arguments of this script.

    Args:
        skills (`list[str]`):
            One `name=dataset[:split]` per skill: a Hub dataset name, a local `save_to_disk` folder, or a local
            `.json`/`.jsonl`/`.csv`/`.parquet` file.
        max_examples_per_skill (`int` or `None`, *optional*, defaults to `None`):
            Keep at most this many examples of each skill (the first ones).
        tiny (`bool`, *optional*, defaults to `False`):
            Ignore `--model_name_or_path` and `--skills` and run on the offline tiny kit: a tiny model built
            in-process and the bundled four-skill set.
    """

    skills: list[str] = field(default_factory=list, metadata={"help": "One `name=dataset[:split]` per skill."})
    max_examples_per_skill: int | None = field(default=None, metadata={"help": "Keep at most N examples per skill."})
    tiny: bool = field(default=False, metadata={"help": "Run on the offline tiny kit (CPU, no Hub)."})


def load_skill(spec: str) -> tuple[str, Dataset]:
    """Loads one `name=dataset[:split]` skill."""
    if "=" not in spec:
        raise ValueError(f"--skills entries look like `name=dataset[:split]`; got {spec!r}.")
    name, source = spec.split("=", 1)
    split = "train"
    if ":" in source and not os.path.exists(source):
        source, split = source.rsplit(":", 1)
    extension = os.path.splitext(source)[1].lower()
    if os.path.isdir(source) and os.path.exists(os.path.join(source, "dataset_info.json")):
        dataset = load_from_disk(source)
    elif extension in (".json", ".jsonl", ".csv", ".parquet"):
        builder = {".jsonl": "json"}.get(extension, extension[1:])
        dataset = load_dataset(builder, data_files=source, split="train")
    else:
        dataset = load_dataset(source, split=split)
    return name, dataset


def main(script_args: MoSScriptArguments, training_args: SFTConfig, model_args: ModelConfig, mos_config: MoSConfig):
    if script_args.tiny:
        from trl_mos.tasks import make_skill_datasets
        from trl_mos.testing import build_tiny_model, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer(seed=training_args.seed)
        model = build_tiny_model(tokenizer, seed=training_args.seed, hidden_size=128)
        train_dataset = make_skill_datasets(seed=training_args.seed)["train"]
    else:
        if not model_args.model_name_or_path or len(script_args.skills) < 2:
            raise ValueError("Pass --model_name_or_path and at least two --skills name=dataset (or use --tiny).")
        skills = dict(load_skill(spec) for spec in script_args.skills)
        if script_args.max_examples_per_skill is not None:
            skills = {
                name: data.select(range(min(len(data), script_args.max_examples_per_skill)))
                for name, data in skills.items()
            }
        train_dataset = concatenate_skills(skills, skill_column=mos_config.skill_column)
        # SFTTrainer loads the model (and its tokenizer) from the name or path, as TRL's own sft script does
        training_args.model_init_kwargs = {
            "revision": model_args.model_revision,
            "dtype": model_args.dtype,
            "attn_implementation": model_args.attn_implementation,
            **(training_args.model_init_kwargs or {}),
        }
        model, tokenizer = model_args.model_name_or_path, None

    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.add_callback(MixtureOfSkillsCallback(trainer, mos_config))
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}.")


if __name__ == "__main__":
    parser = TrlParser((MoSScriptArguments, SFTConfig, ModelConfig, MoSConfig))
    script_args, training_args, model_args, mos_config = parser.parse_args_and_config()
    main(script_args, training_args, model_args, mos_config)
