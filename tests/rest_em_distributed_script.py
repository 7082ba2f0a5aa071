# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Run by test_rest_em_distributed.py under `torchrun --nproc_per_node N` (CPU, gloo).

Usage: rest_em_distributed_script.py OUTPUT_DIR
(or `run(output_dir)` in-process, as a single process). Every rank writes OUTPUT_DIR/rank{r}.json with the prompts it sampled, the kept set and the M-step data it trained on,
its validation history and a fingerprint of its final weights.

The module also holds the helpers the ReST^EM test modules share (`first_token_even`, `single_thread`,
`small_config`).
"""

import contextlib
import hashlib
import json
import os
import sys

import torch

from trl_mos.rest_em import ReSTEMTrainer, sharding
from trl_mos.rest_em.demo import tiny_restem_config
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import build_tiny_model, build_tiny_tokenizer


def first_token_even(prompts, completions, completion_ids, **kwargs):
    """A verifier that accepts roughly half of an untrained model's samples."""
    return [float(bool(ids) and ids[0] % 2 == 0) for ids in completion_ids]


def small_config(output_dir, **overrides):
    """The tests' ReST^EM settings: 2 iterations, 4 samples of up to 8 tokens per problem, 2 M-step steps with a
    checkpoint after each, validation with 2 samples. The untrained tiny model hardly ever ends a completion within 8
    tokens, so the tests accept unfinished samples (`keep_unfinished=True`) to have something to train on."""
    settings = dict(
        keep_unfinished=True,
        max_steps=2,
        max_completion_length=8,
        eval_num_samples=2,
        eval_k=[2],
        generation_shard_size=4,
        save_strategy="steps",
        save_steps=1,
    )
    return tiny_restem_config(output_dir, **{**settings, **overrides})


@contextlib.contextmanager
def single_thread():
    """Runs the block on one torch thread: the tiny model is faster so, and much faster when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run(output_dir: str) -> dict:
    """Runs the tiny ReST^EM job in `output_dir/run` and returns what this process saw."""
    tokenizer = build_tiny_tokenizer(seed=0)
    problems = make_arithmetic_problems(seed=0, num_train=10, num_validation=4, num_test=4)
    args = small_config(
        os.path.join(output_dir, "run"),
        per_device_train_batch_size=4,
        generation_shard_size=3,  # 4 shards: 3 + 3 + 3 + 1 prompts
        save_strategy="no",
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    trainer = ReSTEMTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        args=args,
        train_dataset=problems["train"],
        eval_dataset=problems["validation"],
        processing_class=tokenizer,
        verifiers=[first_token_even],
    )
    sampled, kept_sets, train_data = [], [], []
    verify_shard, m_step = trainer._verify_shard, trainer._m_step

    def recording_verify(dataset, shard, indices, completion_ids, **kwargs):
        if dataset is trainer.train_problems:
            sampled.append(list(indices))
        return verify_shard(dataset, shard, indices, completion_ids, **kwargs)

    def recording_m_step(iteration, kept, *rest):
        kept_sets.append(kept)
        output = m_step(iteration, kept, *rest)
        train_data.append(list(trainer.train_dataset["input_ids"]))
        return output

    trainer._verify_shard, trainer._m_step = recording_verify, recording_m_step
    gathered = []  # what each E-step gather sends between the processes: (sample records, accepted among them)
    gather_object = sharding.gather_object

    def recording_gather(objects):
        records = [r for payload in objects for key in ("samples", "accepted") for r in payload.get(key, [])]
        if objects and "counts" in objects[0]:  # an E-step shard summary
            gathered.append((len(records), sum(p["counts"]["accepted"] for p in objects)))
        elif records and "answer" not in records[0]:  # E-step samples (validation samples carry their answers)
            gathered.append((len(records), sum(bool(r.get("accepted")) for r in records)))
        return gather_object(objects)

    sharding.gather_object = recording_gather
    try:
        trainer.train()
    finally:
        sharding.gather_object = gather_object
    weights = hashlib.sha256()
    for name, tensor in sorted(trainer.model.state_dict().items()):
        weights.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return {
        "rank": trainer.accelerator.process_index,
        "world_size": trainer.accelerator.num_processes,
        "sampled": sampled,
        "kept": kept_sets,
        "train_data": train_data,
        "history": [{k: v for k, v in row.items() if "tokens_per_s" not in k} for row in trainer.history],
        "weights": weights.hexdigest(),
        "gathered": gathered,
        "base_copy": trainer.base_weights.weights is not None,
    }


if __name__ == "__main__":
    with single_thread():
        result = run(sys.argv[1])
    with open(os.path.join(sys.argv[1], f"rank{result['rank']}.json"), "w") as f:
        json.dump(result, f)
    if torch.distributed.is_initialized():  # leave the process group: gloo's threads torn down at exit can abort
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
