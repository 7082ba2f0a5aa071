# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Run by test_fsdp_cpu.py and test_deepspeed_cpu.py under `torchrun --nproc_per_node 2` (CPU, gloo).

Usage: mixing_engines_script.py OUTPUT_DIR ENGINE  with ENGINE in {ddp, fsdp2, zero3}.
SFT with the Mixture-of-Skills callback (CosSim + Diff rewards, probe sets that split into an odd number of probe
batches, so one rank runs one more real batch than the other). Every rank writes OUTPUT_DIR/rank{r}-{ENGINE}.json
with the engine its model was prepared with, the rows it trained on and the callback's state.
"""

import json
import os
import sys

import torch
from _distributed_cpu import engine_of, engine_training_args, prepare_engine
from trl import SFTTrainer

from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
from trl_mos.tasks import make_skill_datasets
from trl_mos.testing import build_tiny_model, build_tiny_tokenizer, tiny_sft_config


STEPS = 8
# 4 skills x 5 CosSim probes = 20 probe rows in batches of 3: 7 batches, 4 on rank 0 and 3 on rank 1
PROBE_SIZE, PROBE_BATCH_SIZE = 5, 3


def main(output_dir: str, engine: str) -> None:
    prepare_engine(engine)
    tokenizer = build_tiny_tokenizer(seed=0)
    train = make_skill_datasets(seed=0, sizes={"copy": 96, "reverse": 32, "sort": 12, "add": 6})["train"]
    args = tiny_sft_config(
        os.path.join(output_dir, f"run-{engine}"),
        max_steps=STEPS,
        per_device_train_batch_size=3,
        gradient_accumulation_steps=2,
        logging_steps=2,
        **engine_training_args(engine),
    )
    trainer = SFTTrainer(
        model=build_tiny_model(tokenizer, seed=0), args=args, train_dataset=train, processing_class=tokenizer
    )
    config = MoSConfig(
        reward=["cossim", "diff"],
        use_ema=True,
        update_steps=2,
        cossim_probe_size=PROBE_SIZE,
        diff_probe_size=3,
        probe_batch_size=PROBE_BATCH_SIZE,
        policy_learning_rate=0.05,
        policy_inner_steps=10,
    )
    callback = MixtureOfSkillsCallback(trainer, config)
    trainer.add_callback(callback)
    lookup = {}
    for row, ids in enumerate(trainer.train_dataset["input_ids"]):
        lookup.setdefault(tuple(ids), row)
    batches = []

    def record(module, args_, kwargs):
        if module.training and torch.is_grad_enabled():
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            batches.append([lookup[tuple(ids[i][mask[i].bool()].tolist())] for i in range(ids.shape[0])])

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    trainer.train()
    rank = trainer.accelerator.process_index
    result = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "engine": engine_of(trainer),
        "batches": batches,
        "history": callback.sampler.history,
        "records": callback.records,
        "logged": [e for e in trainer.state.log_history if "loss" in e],
    }
    with open(os.path.join(output_dir, f"rank{rank}-{engine}.json"), "w") as f:
        json.dump(result, f)
    if torch.distributed.is_initialized():  # leave the process group: gloo's threads torn down at exit can abort
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2])
