# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Run by test_mixing_packing.py under `torchrun --nproc_per_node 2` (CPU, gloo): MoS with packed rows.

Usage: mixing_packing_script.py OUTPUT_DIR  runs MODE = full, first (stopped at step 4) and resume, one after the
other in the same processes; every rank writes OUTPUT_DIR/rank{r}-{MODE}.json with the tokens it trained on and its
Mixture-of-Skills state.
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


def main(output_dir: str, mode: str) -> None:
    tokenizer = build_tiny_tokenizer(seed=0)
    train = make_skill_datasets(seed=0, sizes={"copy": 48, "reverse": 24, "sort": 12, "add": 8})["train"]
    args = tiny_sft_config(
        os.path.join(output_dir, "run-full" if mode == "full" else "run-split"),
        max_steps=8,
        per_device_train_batch_size=2,
        packing=True,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=48,
        ddp_backend="gloo",
        save_strategy="steps",
        save_steps=4,
        logging_steps=4,
    )
    trainer = SFTTrainer(
        model=build_tiny_model(tokenizer, seed=0), args=args, train_dataset=train, processing_class=tokenizer
    )
    config = MoSConfig(
        reward=["cossim", "diff"],
        update_steps=3,
        cossim_probe_size=4,
        diff_probe_size=2,
        probe_batch_size=2,
        policy_learning_rate=0.05,
        policy_inner_steps=10,
    )
    callback = MixtureOfSkillsCallback(trainer, config)
    trainer.add_callback(callback)
    if mode == "first":
        trainer.add_callback(StopAt(4))
    skill_of_row = {
        tuple(ids): int(s)
        for ids, s in zip(trainer.train_dataset["input_ids"], callback.skill_index.skill_ids, strict=True)
    }
    batches, row_skills = [], []

    def record(module, args_, kwargs):
        if module.training and torch.is_grad_enabled():
            ids = kwargs["input_ids"][0].tolist()
            batches.append(ids)
            # the flattened batch is whole packed rows one after the other: recover them, and their skills
            skills = []
            position = 0
            while position < len(ids):
                match = next(row for row in skill_of_row if tuple(ids[position : position + len(row)]) == row)
                skills.append(skill_of_row[match])
                position += len(match)
            row_skills.append(skills)

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    checkpoint = os.path.join(args.output_dir, "checkpoint-4") if mode == "resume" else None
    trainer.train(resume_from_checkpoint=checkpoint)
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    first_step, batch = (4 if mode == "resume" else 0), args.per_device_train_batch_size
    # rank r's j-th batch is global batch (step * world + r) of the shared stream
    starts = [((first_step + j) * world + rank) * batch for j in range(len(batches))]
    result = {
        "stream_skills": [callback.sampler.skills_at(start, start + batch).tolist() for start in starts],
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "batches": batches,
        "row_skills": row_skills,
        "records": callback.records,
        "logged": [
            {k: v for k, v in e.items() if k.startswith("mos/")} for e in trainer.state.log_history if "loss" in e
        ],
    }
    with open(os.path.join(output_dir, f"rank{rank}-{mode}.json"), "w") as f:
        json.dump(result, f)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


if __name__ == "__main__":
    for mode in ("full", "first", "resume"):
        main(sys.argv[1], mode)
    if torch.distributed.is_initialized():  # leave the process group: gloo's threads torn down at exit can abort
        torch.distributed.destroy_process_group()
