# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Host memory per rank that `ReSTEMTrainer` adds for its copy of the base model (issue 15, item 7).

Every rank builds the same model (the tiny kit's architecture, widened to `--hidden-size` and `--layers`, float32),
measures its resident set size (RSS), builds a `ReSTEMTrainer` around it and measures again; with `--train` it then
runs a short 2-iteration ReST^EM job and reports the peak RSS of the whole run too. The figure that matters is the
RSS added at construction against the model's size: a full CPU copy of the trainable parameters on every rank is
about 1x the model per rank (8 ranks of a 7B model in float32: 8 x 28 GB); "at most one copy per node" means the
ranks of a node add at most about 1x the model together.

    torchrun --standalone --nproc_per_node 2 benchmarks/restem_host_memory.py --hidden-size 512 --layers 8 \\
        --json benchmarks/results/restem_host_memory.json
    torchrun --standalone --nproc_per_node 2 benchmarks/restem_host_memory.py --engine fsdp2 --train ...

`--engine fsdp2` / `zero3` uses the CPU recipes of tests/_distributed_cpu.py (FSDP2 forced on, DeepSpeed with gloo).
Rank 0 prints a table and writes `--json`: per rank, the model's bytes, the RSS before and after construction, the
difference, and (with `--train`) the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile


def rss_bytes() -> int:
    """The process's resident set size now."""
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def first_token_even(prompts, completions, completion_ids, **kwargs):
    """A verifier that accepts roughly half of an untrained model's samples."""
    return [float(bool(ids) and ids[0] % 2 == 0) for ids in completion_ids]


def measure(hidden_size: int, layers: int, engine: str, train: bool, output_dir: str) -> dict:
    import gc

    import torch

    from trl_mos.rest_em import ReSTEMTrainer
    from trl_mos.rest_em.demo import tiny_restem_config
    from trl_mos.tasks import make_arithmetic_problems
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer

    engine_args = {}
    if engine != "single":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        from _distributed_cpu import engine_training_args, prepare_engine

        prepare_engine(engine)
        engine_args = engine_training_args(engine)
    tokenizer = build_tiny_tokenizer(seed=0)
    problems = make_arithmetic_problems(seed=0, num_train=4, num_validation=2, num_test=1)
    args = tiny_restem_config(
        output_dir,
        num_iterations=2,
        num_samples_per_prompt=2,
        max_completion_length=4,
        generation_shard_size=2,
        eval_num_samples=0,
        eval_k=[],
        max_steps=1,
        per_device_train_batch_size=2,
        **engine_args,
    )
    heads = max(2, hidden_size // 64)
    model = build_tiny_model(
        tokenizer, seed=0, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads
    )
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    gc.collect()
    before = rss_bytes()
    trainer = ReSTEMTrainer(
        model=model,
        args=args,
        train_dataset=problems["train"],
        eval_dataset=problems["validation"],
        processing_class=tokenizer,
        verifiers=[first_token_even],
    )
    gc.collect()
    after = rss_bytes()
    result = {
        "rank": int(os.environ.get("RANK", 0)),
        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "engine": engine,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_bytes": model_bytes,
        "rss_before_construction": before,
        "rss_after_construction": after,
        "construction_added": after - before,
    }
    if train:
        trainer.train()
        result["peak_rss"] = peak_rss_bytes()
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument(
        "--engine",
        choices=["single", "ddp", "fsdp2", "zero3"],
        default=None,
        help="defaults to ddp under torchrun, single otherwise",
    )
    parser.add_argument("--train", action="store_true", help="also run 2 short iterations and report the peak RSS")
    parser.add_argument("--output-dir", default=None, help="the ReST^EM run's directory (default: a temporary one)")
    parser.add_argument("--json", default=None, help="where rank 0 writes every rank's figures")
    cli = parser.parse_args()
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    engine = cli.engine or ("ddp" if distributed else "single")

    import torch

    torch.set_num_threads(1)
    # one directory for all ranks (torchrun gives them one run id); removed at the end unless given
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", str(os.getpid()))
    output_dir = cli.output_dir or os.path.join(tempfile.gettempdir(), f"restem-host-memory-{run_id}")
    result = measure(cli.hidden_size, cli.layers, engine, cli.train, output_dir)
    if distributed:
        results = [None] * int(os.environ["WORLD_SIZE"])
        torch.distributed.all_gather_object(results, result)
    else:
        results = [result]
    if cli.output_dir is None and result["rank"] == 0:
        shutil.rmtree(output_dir, ignore_errors=True)
    if result["rank"] == 0:
        mib = 2**20
        print(f"model: {result['parameters'] / 1e6:.1f} M parameters, {result['model_bytes'] / mib:.0f} MiB (float32)")
        print(
            "| rank | RSS before | RSS after construction | added | added / model |"
            + (" peak RSS |" if cli.train else "")
        )
        for r in results:
            row = (
                f"| {r['rank']} | {r['rss_before_construction'] / mib:.0f} MiB | {r['rss_after_construction'] / mib:.0f} MiB"
                f" | {r['construction_added'] / mib:.0f} MiB | {r['construction_added'] / r['model_bytes']:.2f} |"
            )
            print(row + (f" {r['peak_rss'] / mib:.0f} MiB |" if cli.train else ""))
        total = sum(r["construction_added"] for r in results)
        print(f"all ranks together: {total / mib:.0f} MiB = {total / result['model_bytes']:.2f} x the model")
        if cli.json:
            os.makedirs(os.path.dirname(os.path.abspath(cli.json)), exist_ok=True)
            with open(cli.json, "w") as f:
                json.dump(results, f, indent=1)
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
