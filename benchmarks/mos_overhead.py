# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Wall-clock overhead of `MixtureOfSkillsCallback` on SFT, measured side by side in one process.

Runs the same `SFTTrainer` job (tiny model, bundled four-skill set) without the callback and with it, alternating,
`--repeats` times each, and reports the fastest and the median wall-clock time of `trainer.train()` and their ratios
to the baseline.
The MoS configuration is the paper's cadence: 4 skills, an update every S=100 steps, probe sets of 64 (CosSim) and 16
(Diff) examples per skill, EMA on; the policy runs the published code's 200 Adam steps per update.

    python benchmarks/mos_overhead.py --steps 500 --repeats 3

Target: ratio ≤ 1.05 for MoS (the paper reports ≈ 1.20).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


CONFIGS = {
    "baseline (stock sampler)": None,
    "uniform (static, our sampler)": dict(strategy="uniform"),
    "MoS CosSim+Diff+EMA (S=100, 64/16)": dict(
        strategy="mos",
        reward=["cossim", "diff"],
        use_ema=True,
        update_steps=100,
        cossim_probe_size=64,
        diff_probe_size=16,
    ),
}


def timed_run(name: str, steps: int, batch_size: int, output_dir: str, seed: int) -> float:
    import transformers
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
    from trl_mos.tasks import make_skill_datasets
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer, tiny_sft_config

    transformers.logging.set_verbosity_error()
    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed)
    train = make_skill_datasets(seed=seed)["train"]
    args = tiny_sft_config(
        os.path.join(output_dir, "run"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        logging_steps=50,
        seed=seed,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    if CONFIGS[name] is not None:
        trainer.add_callback(MixtureOfSkillsCallback(trainer, MoSConfig(**CONFIGS[name], plot=False)))
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/mos_overhead.json")
    args = parser.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    work_dir = os.path.join(os.path.dirname(os.path.abspath(args.output)), "mos_overhead_runs")
    timed_run("baseline (stock sampler)", 20, args.batch_size, work_dir, seed=0)  # warm-up (imports, caches)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for repeat in range(args.repeats):
        for name in CONFIGS:  # interleaved, so that drifts of the machine's speed hit every configuration alike
            seconds = timed_run(name, args.steps, args.batch_size, work_dir, seed=repeat)
            times[name].append(seconds)
            print(f"repeat {repeat}  {name:<38} {seconds:7.2f}s", flush=True)
    # Interference from other work only ever adds time, so the fastest of the interleaved runs is the most faithful
    # figure for each configuration; the medians are printed beside it.
    base_min = min(times["baseline (stock sampler)"])
    base_median = statistics.median(times["baseline (stock sampler)"])
    print(f"\n{args.steps} steps × batch {args.batch_size}, {args.repeats} interleaved runs per configuration")
    print(f"{'configuration':<38} {'min s':>8} {'ratio':>7} {'median s':>9} {'ratio':>7}")
    rows = {}
    for name, values in times.items():
        fastest, median = min(values), statistics.median(values)
        rows[name] = {
            "seconds": values,
            "min": fastest,
            "ratio_min": fastest / base_min,
            "median": median,
            "ratio_median": median / base_median,
        }
        print(f"{name:<38} {fastest:8.2f} {fastest / base_min:7.3f} {median:9.2f} {median / base_median:7.3f}")
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "results": rows}, f, indent=1)
    print(f"\nresults: {args.output}")


if __name__ == "__main__":
    main()
