# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Run by test_fsdp_cpu.py and test_deepspeed_cpu.py under `torchrun --nproc_per_node 2` (CPU, gloo).

Usage: rest_em_engines_script.py OUTPUT_DIR ENGINE [--num-train N] [--backend {generate,continuous}]
with ENGINE in {ddp, fsdp2, zero3}.

A two-iteration ReST^EM run through the public API only (`ReSTEMTrainer`, `ReSTEMConfig`, the output files):
N training problems (default 6) in shards of 2, so 6 problems make 3 shards over 2 ranks (rank 0 samples two,
rank 1 one) and 8 problems 4 shards (two each); a validation verifier that accepts only while iteration 1 is being
evaluated, so that the best iteration is 1 and not the last, and has to be loaded at the end. Rank 0 writes
OUTPUT_DIR/result-{ENGINE}-{BACKEND}-{N}.json with the engine the model was prepared with, the validation history,
the best iteration and how far the weights in memory at the end are from every saved iteration; the run itself is in
OUTPUT_DIR/run-{ENGINE}-{BACKEND}-{N}. Every rank r appends each generate call it makes (under FSDP and ZeRO-3 each
is a collective) to OUTPUT_DIR/generate-calls-{ENGINE}-{BACKEND}-{N}-rank{r}.jsonl as it makes it.
"""

import argparse
import json
import os

import torch
from _distributed_cpu import engine_of, engine_training_args, prepare_engine
from transformers import TrainerCallback

from trl_mos.rest_em import ReSTEMTrainer
from trl_mos.rest_em.demo import tiny_restem_config
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import build_tiny_model, build_tiny_tokenizer


SHARD_SIZE, NUM_VALIDATION = 2, 4
BEST = 1


class IterationTracker(TrainerCallback):
    """Follows which ReST^EM iteration the run is in, from the `restem/iteration` it logs after every E-step (before
    that iteration's validation)."""

    def __init__(self):
        self.iteration = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "restem/iteration" in logs:
            self.iteration = int(logs["restem/iteration"])


def make_verifier(tracker: IterationTracker):
    def verifier(prompts, completions, completion_ids, split, **kwargs):
        """Training problems: accepts a completion whose first token is even (about half of an untrained model's).
        Validation problems: accepts everything while iteration `BEST` is evaluated, nothing otherwise."""
        return [
            float(tracker.iteration == BEST) if s == "validation" else float(bool(ids) and ids[0] % 2 == 0)
            for s, ids in zip(split, completion_ids, strict=True)
        ]

    return verifier


def count_generate_calls(model, path: str) -> None:
    """Appends to `path` a line when a `model.generate` / `model.generate_batch` call starts (its number of prompts
    and `synced_gpus` argument) and one when it ends (the forward passes it ran), written at once so that they survive
    a crash."""
    forwards = [0]
    model.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))

    def write(line):
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")

    for method in ("generate", "generate_batch"):
        original = getattr(model, method)

        def counting(*args, _original=original, _method=method, **kwargs):
            inputs = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
            write({"start": _method, "prompts": len(inputs), "synced_gpus": kwargs.get("synced_gpus")})
            start = forwards[0]
            output = _original(*args, **kwargs)
            write({"end": _method, "forwards": forwards[0] - start})
            return output

        setattr(model, method, counting)


def main(output_dir: str, engine: str, num_train: int = 6, backend: str = "generate") -> None:
    prepare_engine(engine)
    tokenizer = build_tiny_tokenizer(seed=0)
    problems = make_arithmetic_problems(seed=0, num_train=num_train, num_validation=NUM_VALIDATION, num_test=1)
    train = problems["train"].add_column("split", ["train"] * num_train)
    validation = problems["validation"].add_column("split", ["validation"] * NUM_VALIDATION)
    name = f"{engine}-{backend}-{num_train}"
    run_dir = os.path.join(output_dir, f"run-{name}")
    args = tiny_restem_config(
        run_dir,
        num_iterations=2,
        num_samples_per_prompt=4,
        max_solutions_per_prompt=2,
        max_completion_length=8,
        generation_shard_size=SHARD_SIZE,
        eval_num_samples=2,
        eval_k=[2],
        max_steps=2,
        per_device_train_batch_size=4,
        use_transformers_continuous_batching=backend == "continuous",
        keep_unfinished=True,  # the untrained tiny model hardly ever ends a completion within 8 tokens
        **engine_training_args(engine),
    )
    tracker = IterationTracker()
    model = build_tiny_model(tokenizer, seed=0)
    count_generate_calls(
        model, os.path.join(output_dir, f"generate-calls-{name}-rank{os.environ.get('RANK', 0)}.jsonl")
    )
    trainer = ReSTEMTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        verifiers=[make_verifier(tracker)],
        callbacks=[tracker],
    )
    trainer.train()
    # a collective under FSDP and ZeRO-3; under ZeRO-3 it needs the DeepSpeed engine, as with a stock Trainer
    final = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if trainer.accelerator.is_main_process:
        from safetensors.torch import load_file

        distance = {}
        for saved_name in ["iteration-1/model", "iteration-2/model", "best"]:
            saved = load_file(os.path.join(run_dir, saved_name, "model.safetensors"))
            distance[saved_name] = max((final[k].float() - v.float()).abs().max().item() for k, v in saved.items())
        result = {
            "world_size": trainer.accelerator.num_processes,
            "engine": engine_of(trainer),
            "best_iteration": trainer.best_iteration,
            "history": [{k: v for k, v in row.items() if k.startswith("eval/")} for row in trainer.history],
            "final_weights_distance": distance,
        }
        with open(os.path.join(output_dir, f"result-{name}.json"), "w") as f:
            json.dump(result, f)
    if torch.distributed.is_initialized():  # leave the process group: gloo's threads torn down at exit can abort
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("engine", choices=["ddp", "fsdp2", "zero3"])
    parser.add_argument("--num-train", type=int, default=6)
    parser.add_argument("--backend", choices=["generate", "continuous"], default="generate")
    cli = parser.parse_args()
    main(cli.output_dir, cli.engine, cli.num_train, cli.backend)
