# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Quality of mixing strategies on the bundled four-skill set (sizes 4000:1000:200:100).

Trains the tiny model (hidden 128) with a stock `SFTTrainer` for every method and seed, evaluates greedy held-out
exact-match accuracy per skill every `--eval-every` steps, and reports:

- the final per-skill and balanced accuracy (balanced = mean over skills), mean ± std over seeds;
- for MoSpec, the target skill's accuracy;
- the number of steps each method needs to reach the best baseline's final balanced accuracy (mean curve over seeds).

Results go to `--output` (JSON) and a plot of balanced accuracy over steps next to it.

    python benchmarks/mos_quality.py --seeds 0 1 2 --jobs 2

MoS settings: the paper updates the policy every S=100 steps for ~4,850 steps (≈48 updates, Adam lr 1e-4, 200 inner
steps in the published code). Our runs are 1,000 steps, so S=20 keeps the number of updates (50) and every other
policy setting of the paper; probes are the paper's 64 (CosSim) and 16 (Diff) examples per skill.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


BASELINES = ("UNI", "PROP", "TEMP")
MOS_COMMON = dict(update_steps=20, policy_learning_rate=1e-4, policy_inner_steps=200)
METHODS = {
    "UNI": dict(strategy="uniform"),
    "PROP": dict(strategy="proportional"),
    "TEMP": dict(strategy="temperature", temperature=10.0),
    "MoS-CosSim": dict(strategy="mos", reward=["cossim"], **MOS_COMMON),
    "MoS-CosSim+EMA": dict(strategy="mos", reward=["cossim"], use_ema=True, **MOS_COMMON),
    "MoS-Diff": dict(strategy="mos", reward=["diff"], **MOS_COMMON),
    "MoS-Diff+EMA": dict(strategy="mos", reward=["diff"], use_ema=True, **MOS_COMMON),
    "MoSpec-Diff+EMA(add)": dict(strategy="mospec", target_skill="add", reward=["diff"], use_ema=True, **MOS_COMMON),
    "ODM": dict(strategy="odm"),
    # probe sets (issue 11, item 5): the same MoS-Diff+EMA with probes redrawn at every update, and with held-out probes
    "MoS-Diff+EMA/per-update": dict(
        strategy="mos", reward=["diff"], use_ema=True, probe_resampling="per_update", **MOS_COMMON
    ),
    "MoS-Diff+EMA/held-out": dict(strategy="mos", reward=["diff"], use_ema=True, **MOS_COMMON),
}
HELD_OUT_PROBES = ("MoS-Diff+EMA/held-out",)  # rewards on rows generated apart from the train set (64 per skill)


def run_one(method: str, seed: int, max_steps: int, eval_every: int, output_dir: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import datasets
    import transformers
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTTrainer

    from trl_mos.demo import DemoConfig
    from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
    from trl_mos.tasks import evaluate_skill_accuracy, make_skill_datasets
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    demo = DemoConfig(output_dir=output_dir, seed=seed, max_steps=max_steps, show_progress=False)
    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed, hidden_size=demo.hidden_size)
    data = make_skill_datasets(seed=seed)
    trainer = SFTTrainer(
        model=model,
        args=demo.sft_config(f"{method}-seed{seed}"),
        train_dataset=data["train"],
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # keep the benchmark's output to its own lines
    probe_dataset = None
    if method in HELD_OUT_PROBES:  # another draw of the generator, without any prompt of the train or test split
        seen = set(data["train"]["prompt"]) | set(data["test"]["prompt"])
        extra = make_skill_datasets(seed=seed + 1000, sizes={n: 200 for n in data["train"].features["skill"].names})
        fresh = extra["train"].filter(lambda row: row["prompt"] not in seen)
        skills = np.asarray(fresh["skill"])
        keep = [int(i) for s in range(len(set(skills))) for i in np.flatnonzero(skills == s)[:64]]
        probe_dataset = fresh.select(keep)
    callback = MixtureOfSkillsCallback(trainer, MoSConfig(**METHODS[method], plot=False), probe_dataset=probe_dataset)
    trainer.add_callback(callback)
    curve = []

    class Evaluate(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % eval_every == 0:
                curve.append(
                    {"step": state.global_step, **evaluate_skill_accuracy(trainer.model, tokenizer, data["test"])}
                )

    trainer.add_callback(Evaluate())
    start = time.perf_counter()
    trainer.train()
    return {
        "method": method,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "curve": curve,
        "final": curve[-1],
        "probabilities": [record["probabilities"] for record in callback.records],
        "record_steps": [record["step"] for record in callback.records],
    }


def summarize(results: list[dict]) -> dict:
    methods = list(dict.fromkeys(r["method"] for r in results))
    summary = {}
    for method in methods:
        runs = [r for r in results if r["method"] == method]
        skills = [k for k in runs[0]["final"] if k != "step"]
        steps = [point["step"] for point in runs[0]["curve"]]
        curve = np.mean([[point["balanced"] for point in r["curve"]] for r in runs], axis=0)
        summary[method] = {
            "seeds": len(runs),
            "final_mean": {k: float(np.mean([r["final"][k] for r in runs])) for k in skills},
            "final_std": {k: float(np.std([r["final"][k] for r in runs])) for k in skills},
            "balanced_curve": {"steps": steps, "mean": curve.tolist()},
            "seconds_mean": float(np.mean([r["seconds"] for r in runs])),
        }
    baselines = [m for m in methods if m in BASELINES]
    if baselines:
        best = max(baselines, key=lambda m: summary[m]["final_mean"]["balanced"])
        target = summary[best]["final_mean"]["balanced"]
        for method in methods:
            curve = summary[method]["balanced_curve"]
            reached = [s for s, v in zip(curve["steps"], curve["mean"], strict=True) if v >= target - 1e-9]
            summary[method]["steps_to_best_baseline"] = reached[0] if reached else None
        summary["_best_baseline"] = {"method": best, "balanced": target}
    return summary


def print_table(summary: dict) -> None:
    methods = [m for m in summary if not m.startswith("_")]
    skills = list(summary[methods[0]]["final_mean"])
    header = ["method"] + skills + ["steps→best baseline", "s/run"]
    rows = []
    for m in methods:
        s = summary[m]
        cells = [f"{100 * s['final_mean'][k]:.1f}±{100 * s['final_std'][k]:.1f}" for k in skills]
        reach = s.get("steps_to_best_baseline")
        rows.append([m] + cells + ["never" if reach is None else str(reach), f"{s['seconds_mean']:.0f}"])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if "_best_baseline" in summary:
        best = summary["_best_baseline"]
        print(
            f"\nbest baseline: {best['method']} (balanced {100 * best['balanced']:.1f}); accuracy in %, mean±std over seeds"
        )


def plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for method in (m for m in summary if not m.startswith("_")):
        curve = summary[method]["balanced_curve"]
        axes.plot(
            curve["steps"],
            [100 * v for v in curve["mean"]],
            label=method,
            linestyle="--" if method in BASELINES else "-",
        )
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("balanced held-out accuracy (%)")
    axes.set_title("Mixing strategies on the bundled skills (mean over seeds)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets 2 // jobs threads, min 1)")
    parser.add_argument("--output", default="benchmarks/results/mos_quality.json")
    args = parser.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    work_dir = os.path.join(os.path.dirname(os.path.abspath(args.output)), "mos_quality_runs")
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, m, s, args.max_steps, args.eval_every, work_dir, threads) for m, s in jobs]
        for future in futures:
            result = future.result()
            results.append(result)
            print(
                f"{result['method']:<24} seed {result['seed']}: balanced {100 * result['final']['balanced']:.1f} "
                f"({result['seconds']:.0f}s)",
                flush=True,
            )
    summary = summarize(results)
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "summary": summary, "runs": results}, f, indent=1)
    print()
    print_table(summary)
    plot_path = os.path.splitext(args.output)[0] + ".png"
    plot(summary, plot_path)
    print(f"\nresults: {args.output}\nplot: {plot_path}")


if __name__ == "__main__":
    main()
