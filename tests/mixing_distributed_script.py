# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Run by test_mixing_distributed.py under `torchrun --nproc_per_node 2` (CPU, gloo).

Usage: mixing_distributed_script.py OUTPUT_DIR MODE [VARIANT]  with MODE in {full, first, resume} and VARIANT in
{one-epoch, epochs} (default one-epoch). Every rank writes OUTPUT_DIR/rank{r}-{MODE}.json with what it consumed and its
Mixture-of-Skills state.

- one-epoch: 146 rows, 12 draws per step (13 steps per epoch), 12 steps, stop and resume at step 6.
- epochs: 70 rows, 12 draws per step (6 steps per epoch), 15 steps (epoch boundaries after steps 6 and 12), stop at
  step 8 (mid-epoch 2), resume from checkpoint-8.
"""

import json
import os
import sys

import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
from trl_mos.tasks import make_skill_datasets
from trl_mos.testing import build_tiny_model, build_tiny_tokenizer, tiny_sft_config


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


VARIANTS = {
    "one-epoch": dict(sizes={"copy": 96, "reverse": 32, "sort": 12, "add": 6}, max_steps=12, stop=6, save_steps=6),
    "epochs": dict(sizes={"copy": 40, "reverse": 16, "sort": 8, "add": 6}, max_steps=15, stop=8, save_steps=4),
}


def main(output_dir: str, mode: str, variant: str = "one-epoch") -> None:
    setup = VARIANTS[variant]
    tokenizer = build_tiny_tokenizer(seed=0)
    train = make_skill_datasets(seed=0, sizes=setup["sizes"])["train"]
    args = tiny_sft_config(
        os.path.join(output_dir, "run-full" if mode == "full" else "run-split"),
        max_steps=setup["max_steps"],
        per_device_train_batch_size=3,
        gradient_accumulation_steps=2,
        ddp_backend="gloo",
        save_strategy="steps",
        save_steps=setup["save_steps"],
        logging_steps=3,
    )
    trainer = SFTTrainer(
        model=build_tiny_model(tokenizer, seed=0), args=args, train_dataset=train, processing_class=tokenizer
    )
    config = MoSConfig(
        reward=["cossim", "diff"],
        use_ema=True,
        update_steps=4,
        cossim_probe_size=5,
        diff_probe_size=3,
        probe_batch_size=2,
        policy_learning_rate=0.05,
        policy_inner_steps=10,
    )
    callback = MixtureOfSkillsCallback(trainer, config)
    trainer.add_callback(callback)
    if mode == "first":
        trainer.add_callback(StopAt(setup["stop"]))
    lookup = {}
    for row, ids in enumerate(trainer.train_dataset["input_ids"]):
        lookup.setdefault(tuple(ids), row)
    batches = []

    def record(module, args_, kwargs):
        if module.training and torch.is_grad_enabled():
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            batches.append([lookup[tuple(ids[i][mask[i].bool()].tolist())] for i in range(ids.shape[0])])

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    checkpoint = os.path.join(args.output_dir, f"checkpoint-{setup['stop']}") if mode == "resume" else None
    trainer.train(resume_from_checkpoint=checkpoint)
    rank = trainer.accelerator.process_index
    result = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "batches": batches,
        "stream": callback.sampler.rows_at(0, setup["max_steps"] * 12).tolist(),
        "epoch": trainer.state.epoch,
        "history": callback.sampler.history,
        "records": callback.records,
        "strategy": callback.strategy.state_dict(),
        "logged": [e for e in trainer.state.log_history if "loss" in e],
    }
    with open(os.path.join(output_dir, f"rank{rank}-{mode}.json"), "w") as f:
        json.dump(result, f)
    if torch.distributed.is_initialized():  # leave the process group: gloo's threads torn down at exit can abort
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
