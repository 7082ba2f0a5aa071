# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Held-out quality of ReST^EM on the tiny kit, against one-round rejection-sampling fine-tuning (RFT) and the
continue-from-last-iterate variant, over several seeds.

For every seed: the bundled arithmetic problems; the tiny model (hidden 128) warm-started by a short SFT (200 steps)
on 128 reference solutions (`trl_mos.rest_em.demo.warm_start_tiny_model`); then, from that same warm-start model, on
256 other problems (answers only) with the demo's settings (`arithmetic_restem_config`: 16 samples per problem at
T=0.7, top-k 40, at most 4 kept per problem, M-steps of 60 steps at 3e-4, selection on 128 validation problems by
greedy pass@1):

- `ReST^EM`: 3 iterations, every M-step from the warm-start model (the paper);
- `continue from last iterate`: 3 iterations, every M-step from the previous iterate (`reset_to_base=False`, as
  RAFT / OpenRLHF / trlx do);
- `RFT (1 round, 3x samples)`: one iteration with 48 samples per problem — the same sampling budget as 3 iterations.

Every iteration is measured on the 128 held-out test problems: greedy pass@1, and pass@4 / maj@4 from 4 samples at
T=1.0, top-p 0.95. The table gives the mean and standard deviation over seeds; `selected` is the iteration each run
picked on the validation set.

    python benchmarks/restem_quality.py --seeds 0 1 2

Writes `results.json` and `restem_quality.png` to `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time


VARIANTS = {
    "ReST^EM": dict(),
    "continue from last iterate": dict(reset_to_base=False),
    "RFT (1 round, 3x samples)": dict(num_iterations=1, num_samples_per_prompt=48),
}
METRICS = ("pass@1", "pass@4", "maj@4")


def run_seed(seed: int, output_dir: str, variants: list[str], num_train_problems: int, threads: int | None) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_mos.rest_em import ReSTEMTrainer
    from trl_mos.rest_em.demo import arithmetic_restem_config, evaluate_iterations, warm_start_tiny_model
    from trl_mos.tasks import make_arithmetic_problems
    from trl_mos.verifiers import math_verifier

    if threads:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    problems = make_arithmetic_problems(seed=seed, num_validation=128)
    warm_dir = os.path.join(output_dir, f"seed-{seed}", "warm-start-model")
    start = time.perf_counter()
    model, tokenizer = warm_start_tiny_model(
        problems["train"].select(range(128)),
        os.path.join(output_dir, f"seed-{seed}", "warm-start"),
        max_steps=200,
        seed=seed,
    )
    model.save_pretrained(warm_dir)
    tokenizer.save_pretrained(warm_dir)
    results = {"warm_start_seconds": time.perf_counter() - start, "variants": {}}
    train = problems["train"].select(range(128, 128 + num_train_problems)).select_columns(["prompt", "solution"])
    for name in variants:
        start = time.perf_counter()
        run_dir = os.path.join(output_dir, f"seed-{seed}", name.split(" (")[0].replace(" ", "-").replace("^", ""))
        shutil.rmtree(run_dir, ignore_errors=True)  # the benchmark's own scratch space: a rerun starts afresh
        trainer = ReSTEMTrainer(
            model=AutoModelForCausalLM.from_pretrained(warm_dir),
            args=arithmetic_restem_config(run_dir, seed=seed, **VARIANTS[name]),
            train_dataset=train,
            eval_dataset=problems["validation"],
            processing_class=AutoTokenizer.from_pretrained(warm_dir),
            verifiers=[math_verifier],
        )
        trainer.train()
        test = evaluate_iterations(trainer, problems["test"])
        results["variants"][name] = {
            "test": {str(i): m for i, m in test.items()},
            "history": trainer.history,
            "selected": trainer.best_iteration,
            "seconds": time.perf_counter() - start,
        }
        print(f"seed {seed} {name}: " + ", ".join(f"it{i} {m['pass@1']:.3f}" for i, m in test.items()), flush=True)
    return results


def summarize(
    all_results: dict[int, dict], variants: list[str]
) -> list[tuple[str, str, dict[str, tuple[float, float]]]]:
    def stats(values):
        return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    seeds = sorted(all_results)
    rows = []
    warm = {m: stats([all_results[s]["variants"][variants[0]]["test"]["0"][m] for s in seeds]) for m in METRICS}
    rows.append(("warm-start model", "0", warm))
    for name in variants:
        iterations = sorted(int(i) for i in all_results[seeds[0]]["variants"][name]["test"] if i != "0")
        for i in iterations:
            values = {m: stats([all_results[s]["variants"][name]["test"][str(i)][m] for s in seeds]) for m in METRICS}
            rows.append((name, str(i), values))
        selected = {
            m: stats(
                [
                    all_results[s]["variants"][name]["test"][str(all_results[s]["variants"][name]["selected"])][m]
                    for s in seeds
                ]
            )
            for m in METRICS
        }
        picks = ",".join(str(all_results[s]["variants"][name]["selected"]) for s in seeds)
        rows.append((name, f"selected ({picks})", selected))
    return rows


def plot(all_results: dict[int, dict], variants: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted(all_results)
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4.5 * len(METRICS), 3.6))
    for axis, metric in zip(axes, METRICS, strict=True):
        for name in variants:
            iterations = sorted(int(i) for i in all_results[seeds[0]]["variants"][name]["test"])
            values = [[all_results[s]["variants"][name]["test"][str(i)][metric] for s in seeds] for i in iterations]
            means = [statistics.mean(v) for v in values]
            errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            axis.errorbar(iterations, means, yerr=errors, marker="o", capsize=3, label=name)
        axis.set_title(f"test {metric} (mean ± sd, {len(seeds)} seeds)")
        axis.set_xlabel("iteration (0: warm start)")
        axis.set_xticks(range(4))
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--num_train_problems", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output_dir", default="benchmarks/results/restem_quality")
    args = parser.parse_args()

    os.makedirs(args.output_dir, exist_ok=True)
    start = time.perf_counter()
    all_results = {
        seed: run_seed(seed, args.output_dir, args.variants, args.num_train_problems, args.threads)
        for seed in args.seeds
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": all_results}, f, indent=2)
    plot(all_results, args.variants, os.path.join(args.output_dir, "restem_quality.png"))
    print(f"\nHeld-out test set (128 problems), mean ± sd over seeds {args.seeds}, in %:\n")
    print("| method | iteration | " + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for name, iteration, values in summarize(all_results, args.variants):
        cells = " | ".join(f"{100 * mean:.1f} ± {100 * sd:.1f}" for mean, sd in (values[m] for m in METRICS))
        print(f"| {name} | {iteration} | {cells} |")
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s; plot: {args.output_dir}/restem_quality.png")


if __name__ == "__main__":
    main()
