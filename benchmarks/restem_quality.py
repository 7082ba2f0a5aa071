# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Held-out quality of ReST^EM on the tiny kit, against one-round rejection-sampling fine-tuning (RFT) and the
continue-from-last-iterate variant, over several seeds.

Tasks (`--task`):

- `sorting` (default): digit sorting, 5–8 digits (`trl_mos.tasks.make_sorting_problems`), exact-match verifier. The
  tiny model (hidden 128) is warm-started by `--warm-start-steps` (100) SFT steps at a constant 1e-3 on 128
  reference solutions of 4–7 digits, which leaves it with a low greedy pass@1 and a much higher pass@16 (measured
  on validation, seed 0: 9.4 % vs 26.6 %): self-training has room.
- `arithmetic`: the bundled word problems with `math_verifier`, warm start of 200 steps on 128 solutions (the
  earlier benchmark; the tiny model learns little there).

From the warm-start model, on 256 other problems (answers only), with the demo's ReST^EM settings
(`arithmetic_restem_config`: 16 samples per problem at T=0.7, top-k 40, at most 4 kept per problem, M-steps of 60
steps at 3e-4, selection on 128 validation problems by greedy pass@1):

- `ReST^EM`: `--iterations` iterations, every M-step from the warm-start model (the paper);
- `continue from last iterate`: the same, every M-step from the previous iterate (`reset_to_base=False`, as
  RAFT / OpenRLHF / trlx do);
- `RFT (1 round, same samples)`: one iteration with `iterations`× the samples per problem — the same sampling budget.

Every iteration is measured on the 128 held-out test problems (greedy pass@1; pass@k and maj@k for k in 4, 16 from
16 samples at T=1.0, top-p 0.95) and on 128 of the training problems (greedy pass@1: the train–test gap). The
summary gives mean and sd over seeds, and the gain of the selected iteration over the warm start per seed, with its
mean / sd ("gain in sd").

    python benchmarks/restem_quality.py --seeds 0 1 2                    # sorting
    python benchmarks/restem_quality.py --task arithmetic --seeds 0 1 2
    python benchmarks/restem_quality.py --replot DIR/results.json

Writes `results.json` and `restem_quality.png` to `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed


METRICS = ("pass@1", "pass@4", "pass@16", "maj@16")


def variants(iterations: int) -> dict[str, dict]:
    return {
        "ReST^EM": dict(num_iterations=iterations),
        "continue from last iterate": dict(num_iterations=iterations, reset_to_base=False),
        "RFT (1 round, same samples)": dict(num_iterations=1, num_samples_per_prompt=16 * iterations),
    }


def run_seed(seed: int, options: dict) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_mos.rest_em import ReSTEMTrainer
    from trl_mos.rest_em.demo import arithmetic_restem_config, evaluate_iterations, warm_start_tiny_model

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    transformers.logging.set_verbosity_error()
    output_dir = options["output_dir"]
    if options["task"] == "sorting":
        from trl_mos.tasks import make_sorting_problems
        from trl_mos.tasks.skills import normalize_answer
        from trl_mos.verifiers import make_exact_match_verifier

        problems = make_sorting_problems(seed=seed, num_train=options["num_train_problems"])
        warm_data, train_all = problems["warm_start"], problems["train"]
        verifiers = [make_exact_match_verifier(column="solution", normalize=normalize_answer)]
        extra = dict(answer_extractor=normalize_answer)
        overrides = dict(max_completion_length=20, max_length=64)
        warm_steps = options["warm_start_steps"] or 100
        warm_options = dict(lr_scheduler_type="constant", max_length=64)
    else:
        from trl_mos.tasks import make_arithmetic_problems
        from trl_mos.verifiers import math_verifier

        problems = make_arithmetic_problems(seed=seed, num_validation=128)
        warm_data = problems["train"].select(range(128))
        train_all = problems["train"].select(range(128, 128 + options["num_train_problems"]))
        verifiers, extra, overrides, warm_options = [math_verifier], {}, {}, {}
        warm_steps = options["warm_start_steps"] or 200
    warm_dir = os.path.join(output_dir, f"seed-{seed}", "warm-start-model")
    start = time.perf_counter()
    model, tokenizer = warm_start_tiny_model(
        warm_data,
        os.path.join(output_dir, f"seed-{seed}", "warm-start"),
        max_steps=warm_steps,
        seed=seed,
        **warm_options,
    )
    model.save_pretrained(warm_dir)
    tokenizer.save_pretrained(warm_dir)
    results = {"warm_start_seconds": time.perf_counter() - start, "warm_start_steps": warm_steps, "variants": {}}
    train = train_all.select_columns(["prompt", "solution"])
    train_probe = train.select(range(min(128, len(train))))
    for name in options["variants"]:
        start = time.perf_counter()
        run_dir = os.path.join(output_dir, f"seed-{seed}", name.split(" (")[0].replace(" ", "-").replace("^", ""))
        shutil.rmtree(run_dir, ignore_errors=True)  # the benchmark's own scratch space: a rerun starts afresh
        trainer = ReSTEMTrainer(
            model=AutoModelForCausalLM.from_pretrained(warm_dir),
            args=arithmetic_restem_config(
                run_dir,
                seed=seed,
                eval_num_samples=16,
                eval_k=[4, 16],
                **overrides,
                **variants(options["iterations"])[name],
            ),  # fmt: skip
            train_dataset=train,
            eval_dataset=problems["validation"],
            processing_class=AutoTokenizer.from_pretrained(warm_dir),
            verifiers=verifiers,
            **extra,
        )
        trainer.train()
        test = evaluate_iterations(trainer, problems["test"])
        train_pass = {}
        for record in trainer.history:  # greedy pass@1 on training problems: the train-test gap
            trainer.load_iteration(record["iteration"])
            train_pass[str(record["iteration"])] = trainer.evaluate_accuracy(train_probe, description="train")[
                "pass@1"
            ]
        results["variants"][name] = {
            "test": {str(i): m for i, m in test.items()},
            "train_pass@1": train_pass,
            "history": trainer.history,
            "selected": trainer.best_iteration,
            "seconds": time.perf_counter() - start,
        }
        print(
            f"seed {seed} {name}: "
            + ", ".join(f"it{i} {m['pass@1']:.3f}/{m['pass@16']:.3f}" for i, m in test.items())
            + f" (test pass@1/pass@16; {time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    return results


def _stats(values):
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(all_results: dict, names: list[str]) -> dict:
    seeds = sorted(all_results)
    first = all_results[seeds[0]]["variants"]
    rows = []
    warm = {m: _stats([all_results[s]["variants"][names[0]]["test"]["0"][m] for s in seeds]) for m in METRICS}
    warm_train = _stats([all_results[s]["variants"][names[0]]["train_pass@1"]["0"] for s in seeds])
    rows.append({"method": "warm-start model", "iteration": "0", "test": warm, "train_pass@1": warm_train})
    gains = {}
    for name in names:
        for i in sorted(int(i) for i in first[name]["test"] if i != "0"):
            rows.append({
                "method": name,
                "iteration": str(i),
                "test": {m: _stats([all_results[s]["variants"][name]["test"][str(i)][m] for s in seeds]) for m in METRICS},
                "train_pass@1": _stats([all_results[s]["variants"][name]["train_pass@1"][str(i)] for s in seeds]),
            })  # fmt: skip
        picks = [str(all_results[s]["variants"][name]["selected"]) for s in seeds]
        selected = {
            m: [all_results[s]["variants"][name]["test"][p][m] for s, p in zip(seeds, picks, strict=True)]
            for m in METRICS
        }
        rows.append({
            "method": name,
            "iteration": f"selected ({','.join(picks)})",
            "test": {m: _stats(v) for m, v in selected.items()},
            "train_pass@1": _stats(
                [all_results[s]["variants"][name]["train_pass@1"][p] for s, p in zip(seeds, picks, strict=True)]
            ),
        })  # fmt: skip
        per_seed = [
            selected["pass@1"][j] - all_results[s]["variants"][name]["test"]["0"]["pass@1"]
            for j, s in enumerate(seeds)
        ]
        mean, sd = _stats(per_seed)
        gains[name] = {"per_seed": per_seed, "mean": mean, "sd": sd, "mean_over_sd": mean / sd if sd > 0 else None}
    return {"rows": rows, "gains": gains, "seeds": seeds}


def print_summary(summary: dict) -> None:
    print(f"\nMean ± sd over seeds {summary['seeds']}, in %:\n")
    print("| method | iteration | " + " | ".join(f"test {m}" for m in METRICS) + " | train pass@1 |")
    print("|---|---|" + "---|" * (len(METRICS) + 1))
    for row in summary["rows"]:
        cells = " | ".join(f"{100 * row['test'][m][0]:.1f} ± {100 * row['test'][m][1]:.1f}" for m in METRICS)
        train = row["train_pass@1"]
        print(f"| {row['method']} | {row['iteration']} | {cells} | {100 * train[0]:.1f} ± {100 * train[1]:.1f} |")
    print("\nTest pass@1 gain of the selected iteration over the warm start (points, per seed; mean / sd):")
    for name, g in summary["gains"].items():
        ratio = "n/a" if g["mean_over_sd"] is None else f"{g['mean_over_sd']:.1f}"
        per_seed = ", ".join(f"{100 * v:+.1f}" for v in g["per_seed"])
        print(f"  {name}: {per_seed}; mean {100 * g['mean']:+.1f} ± {100 * g['sd']:.1f} → {ratio} sd")


def plot(all_results: dict, names: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted(all_results)
    panels = [*METRICS, "train pass@1"]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for axis, metric in zip(axes, panels, strict=True):
        for k, name in enumerate(names):
            runs = [all_results[s]["variants"][name] for s in seeds]
            iterations = sorted(int(i) for i in runs[0]["test"])
            if metric == "train pass@1":
                values = [[r["train_pass@1"][str(i)] for r in runs] for i in iterations]
            else:
                values = [[r["test"][str(i)][metric] for r in runs] for i in iterations]
            means = [100 * statistics.mean(v) for v in values]
            sds = [100 * statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            axis.plot(iterations, means, marker="o", color=f"C{k}", label=name)
            axis.fill_between(
                iterations, [m - s for m, s in zip(means, sds, strict=True)],
                [m + s for m, s in zip(means, sds, strict=True)], color=f"C{k}", alpha=0.15,
            )  # fmt: skip
        axis.set_title(f"{'' if metric.startswith('train') else 'test '}{metric} (mean ± sd, {len(seeds)} seeds)")
        axis.set_xlabel("iteration (0: warm start)")
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["sorting", "arithmetic"], default="sorting")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(variants(3)), choices=list(variants(3)))
    parser.add_argument("--num_train_problems", type=int, default=256)
    parser.add_argument("--warm-start-steps", type=int, default=None, help="default: 100 (sorting), 200 (arithmetic)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, or cores // jobs)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel, each in its own process")
    parser.add_argument("--output_dir", default=None, help="default: benchmarks/results/restem_quality[_TASK]")
    parser.add_argument("--replot", default=None, help="redraw plot and table from a saved results.json and exit")
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as f:
            saved = json.load(f)
        results = {int(s): r for s, r in saved["results"].items()}
        plot(results, saved["args"]["variants"], os.path.join(os.path.dirname(args.replot), "restem_quality.png"))
        print_summary(summarize(results, saved["args"]["variants"]))
        return
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.output_dir is None:
        suffix = "" if args.task == "sorting" else "_arithmetic"
        args.output_dir = f"benchmarks/results/restem_quality{suffix}"
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.perf_counter()
    all_results = {}
    if args.jobs > 1 and args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as executor:
        futures = {executor.submit(run_seed, seed, vars(args)): seed for seed in args.seeds}
        for future in as_completed(futures):
            all_results[futures[future]] = future.result()
            all_results = dict(sorted(all_results.items()))
            with open(os.path.join(args.output_dir, "results.json"), "w") as f:  # after every seed: partial results
                json.dump({"args": vars(args), "results": all_results}, f, indent=2)
    summary = summarize(all_results, args.variants)
    summary["seconds"] = time.perf_counter() - start
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "summary": summary, "results": all_results}, f, indent=2)
    plot(all_results, args.variants, os.path.join(args.output_dir, "restem_quality.png"))
    print_summary(summary)
    print(f"\nTotal time: {summary['seconds']:.0f} s; plot: {args.output_dir}/restem_quality.png")


if __name__ == "__main__":
    main()
