# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""E-step generation throughput of `ReSTEMTrainer`'s backends against a bare `model.generate` loop.

Same prompts, same model, same sampling settings (temperature 0.7, top-k 40, N samples per prompt, `max_new_tokens`)
for every method; generated tokens are counted up to and including the first end-of-sequence token:

- `bare generate loop`: the loop one writes by hand — left-padded batches of prompts in dataset order,
  `model.generate(num_return_sequences=N)`, nothing else;
- `ReST^EM backend (generate)`: the default backend's `generate` (prompts grouped by length, explicit sampling
  settings, per-shard seeding, outputs cut at the end-of-sequence token);
- `ReST^EM E-step (generate + verify + save)`: the whole sharded E-step — generation, decoding, `math_verifier`,
  atomic shard files — i.e. what `restem/generation_tokens_per_s` covers plus verification and saving;
- `continuous batching backend`: `use_transformers_continuous_batching=True` (with a small paged cache on a CPU);
- `vLLM backend` (`--vllm`, where vLLM is installed): the colocated engine, each prompt sent once with `n=N`; the
  weight push and the weight-sync check run once, in the warm-up round. With `--vllm` every method uses the tiny model
  with 2 attention heads (head dimension 32, which vLLM's CPU attention needs) instead of 4;
- `one sequence at a time` / `one prompt at a time`: `generate` with a batch of one sequence, or of one prompt with
  its N samples (measured on a subset, as a rate).

Methods alternate round by round; the table gives the median over `--rounds`.

    python benchmarks/generation_throughput.py --rounds 3 --json benchmarks/results/generation_throughput.json
    python benchmarks/generation_throughput.py --rounds 3 --vllm  # in an environment with vLLM (.ci/vllm builds one)

Targets: the ReST^EM pipeline ≥ 0.9× the bare loop; batched ≥ 20× one-at-a-time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from functools import partial


def build(args):
    import transformers

    from trl_mos.rest_em import ReSTEMTrainer
    from trl_mos.rest_em.demo import tiny_restem_config
    from trl_mos.tasks import make_arithmetic_problems
    from trl_mos.testing import VLLM_TINY_MODEL_KWARGS, build_tiny_model, build_tiny_tokenizer
    from trl_mos.verifiers import math_verifier

    transformers.logging.set_verbosity_error()
    tokenizer = build_tiny_tokenizer(seed=0)
    # vLLM's CPU attention needs a head dimension of at least 32: with --vllm every method uses that model
    shape = VLLM_TINY_MODEL_KWARGS if args.vllm else {}
    model = build_tiny_model(tokenizer, seed=0, hidden_size=args.hidden_size, **shape)
    problems = make_arithmetic_problems(seed=0, num_train=args.num_prompts)["train"]
    config = tiny_restem_config(
        tempfile.mkdtemp(prefix="restem-throughput-"),
        num_samples_per_prompt=args.num_samples,
        max_completion_length=args.max_new_tokens,
        generation_batch_size=args.batch_size * args.num_samples,
        generation_shard_size=args.shard_size,
        transformers_continuous_batching_config={"num_blocks": 64, "max_batch_tokens": 1024},
        use_vllm=args.vllm,
        vllm_max_model_length=256,
    )
    trainer = ReSTEMTrainer(
        model=model, args=config, train_dataset=problems, processing_class=tokenizer, verifiers=[math_verifier]
    )
    return trainer, problems


def count(completions, eos):
    total = 0
    for per_prompt in completions:
        for ids in per_prompt:
            ids = list(ids)
            total += ids.index(eos) + 1 if eos in ids else len(ids)
    return total


def bare_loop(model, tokenizer, prompts, config, batch_size):
    """The hand-written loop: left-padded batches in dataset order, one `generate` call per batch."""
    import torch

    tokenizer.padding_side = "left"
    outputs = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
            generated = model.generate(**batch, generation_config=config)
            new = generated[:, batch["input_ids"].shape[1] :].tolist()
            n = config.num_return_sequences
            outputs += [new[i * n : (i + 1) * n] for i in range(len(new) // n)]
    return outputs


def plot(rates: dict[str, list[float]], path: str, title: str) -> None:
    """Bars of the median tokens/s per method on a log scale, whiskers from the slowest to the fastest round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rates)
    medians = [statistics.median(rates[name]) for name in names]
    errors = [[m - min(rates[n]) for m, n in zip(medians, names, strict=True)],
              [max(rates[n]) - m for m, n in zip(medians, names, strict=True)]]  # fmt: skip
    figure, axes = plt.subplots(figsize=(8, 3.8))
    positions = range(len(names))
    axes.barh(positions, medians, xerr=errors, color="#9ecae1", capsize=4)
    axes.set_xscale("log")
    axes.set_yticks(list(positions), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("generated tokens per second (median round; whiskers: slowest to fastest)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_prompts", type=int, default=128)
    parser.add_argument("--num_samples", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per generate call")
    parser.add_argument("--shard_size", type=int, default=64, help="prompts per E-step shard")
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--single_subset", type=int, default=8, help="prompts for the one-at-a-time rates")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--vllm", action="store_true", help="also measure the vLLM backend")
    parser.add_argument("--json", default=None, help="write the results to this file, and a PNG plot beside it")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the results in --json")
    args = parser.parse_args()
    if args.replot:
        if not args.json:
            parser.error("--replot needs --json")
        with open(args.json) as f:
            saved = json.load(f)
        plot(
            saved["rates"], os.path.splitext(args.json)[0] + ".png", saved.get("title", "E-step generation throughput")
        )
        return

    import torch

    from trl_mos.rest_em.filtering import derive_seed
    from trl_mos.rest_em.generation import ContinuousBatchingBackend, SamplingSettings, TransformersBackend
    from trl_mos.rest_em.sharding import run_sharded_generation

    if args.threads:
        torch.set_num_threads(args.threads)
    trainer, problems = build(args)
    model, tokenizer = trainer.model, trainer.processing_class
    model.eval()
    prompts = problems["prompt"]
    from trl_mos.generation import tokenize_prompts

    prompt_ids = tokenize_prompts(tokenizer, prompts)
    settings = SamplingSettings(args.num_samples, args.max_new_tokens, temperature=0.7, top_k=40)
    eos = tokenizer.eos_token_id
    config = settings.generation_config(eos, tokenizer.pad_token_id)
    single = settings.generation_config(eos, tokenizer.pad_token_id)
    single.num_return_sequences = 1
    backend = TransformersBackend(model, tokenizer, trainer.accelerator, batch_size=trainer.args.generation_batch_size)

    def e_step(directory):
        payloads = run_sharded_generation(
            backend,
            prompt_ids,
            settings,
            args.shard_size,
            seed=1,
            process_shard=partial(trainer._verify_shard, problems),
            shard_dir=directory,
            show_progress=False,
        )
        return sum(p["num_tokens"] for p in payloads)

    subset = prompts[: args.single_subset]
    methods = {
        "bare generate loop": lambda: count(bare_loop(model, tokenizer, prompts, config, args.batch_size), eos),
        "ReST^EM backend (generate)": lambda: count(backend.generate(prompt_ids, settings, seed=1), eos),
        "ReST^EM E-step (generate + verify + save)": lambda: e_step(tempfile.mkdtemp(prefix="shards-")),
        "continuous batching backend": lambda: count(
            ContinuousBatchingBackend(
                model, tokenizer, trainer.accelerator, config=trainer.args.transformers_continuous_batching_config
            ).generate(prompt_ids, settings, seed=1),
            eos,
        ),
        "one prompt at a time (N samples per call)": lambda: count(
            bare_loop(model, tokenizer, subset, config, 1), eos
        ),
        "one sequence at a time": lambda: count(
            [[s[0] for s in bare_loop(model, tokenizer, subset * args.num_samples, single, 1)]], eos
        ),
    }
    if args.vllm:
        from trl_mos.rest_em.vllm_backend import VLLMBackend

        vllm_backend = VLLMBackend(model, tokenizer, trainer.accelerator, trainer.args)
        methods["vLLM backend"] = lambda: count(vllm_backend.generate(prompt_ids, settings, seed=1), eos)

    rates: dict[str, list[float]] = {name: [] for name in methods}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, method in methods.items():
            torch.manual_seed(derive_seed(0, name, round_index))
            start = time.perf_counter()
            tokens = method()
            seconds = time.perf_counter() - start
            if round_index > 0:
                rates[name].append(tokens / seconds)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    bare = medians["bare generate loop"]
    one_at_a_time = medians["one sequence at a time"]
    title = (
        f"{args.num_prompts} prompts x {args.num_samples} samples, max_new_tokens={args.max_new_tokens}, "
        f"{args.batch_size} prompts per call, tiny model hidden={args.hidden_size}, torch threads="
        f"{torch.get_num_threads()}"
    )
    print(f"{title}, load average {os.getloadavg()[0]:.2f}, median of {args.rounds} rounds")
    print("| method | tokens/s | vs bare loop | vs one sequence at a time | rounds |")
    print("|---|---|---|---|---|")
    for name, value in medians.items():
        rounds = ", ".join(f"{v:.0f}" for v in rates[name])
        print(f"| {name} | {value:.0f} | {value / bare:.2f}x | {value / one_at_a_time:.1f}x | {rounds} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "title": title, "rates": rates, "medians": medians}, f, indent=2)
        plot(rates, os.path.splitext(args.json)[0] + ".png", title)


if __name__ == "__main__":
    main()
