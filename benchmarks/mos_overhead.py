# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Wall-clock overhead of `MixtureOfSkillsCallback` on SFT, measured side by side in one process.

Runs the same `SFTTrainer` job (tiny model, bundled four-skill set) without the callback and with it, alternating,
`--repeats` times each, and reports the fastest and the median wall-clock time of `trainer.train()` and their ratios
to the baseline. Since a mixture changes which examples are trained on, and so the padded length of the batches, two
figures separate the callback's own cost from that of the data: the time spent inside the callback's event handlers
(probe evaluations, policy updates, bookkeeping; timed directly) as a share of the rest of the run, and the padded
tokens trained on. "proportional (our sampler)" draws the stock sampler's distribution through `SkillSampler`.
The MoS configuration is the paper's cadence: 4 skills, an update every S=100 steps, probe sets of 64 (CosSim) and 16
(Diff) examples per skill, EMA on; the policy runs the published code's 200 Adam steps per update.

    python benchmarks/mos_overhead.py --steps 500 --repeats 5    # results JSON and a PNG plot beside it

"MoS, frozen ..." runs MoS (rewards, policy updates, bookkeeping) but keeps the sampler at its initial uniform
distribution, so it trains on exactly the data of the matching "uniform ..." run (the same padded tokens, checked):
their paired ratio is the cost of learning the mixture alone. The padding-free and packed (within each skill)
configurations repeat that comparison with `padding_free=True` and with `packing=True`.

    python benchmarks/mos_overhead.py --steps 300 --repeats 3 --configs "MoS, frozen"   # frozen runs and references

"MoS, frozen at uniform" uses the heaviest rewards (CosSim+Diff, as in the paper's table); "defaults (CosSim)" and
"Diff+EMA" (the paper's best variant, 16 probes per skill) run the lighter ones on the same data.

Configurations run interleaved, in alternating order from one repeat to the next (ABBA); each run's wall-clock and
process CPU time are recorded, and the paired ratios of both are printed.

Target: ≤ 1.02× of the frozen MoS runs against uniform (ADO reports ≈ 1.004, the paper ≈ 1.20).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time


PAPER_MOS = dict(
    strategy="mos", reward=["cossim", "diff"], use_ema=True, update_steps=100, cossim_probe_size=64, diff_probe_size=16
)
PADDING_FREE = dict(padding_free=True, max_length=None)
PACKED = dict(packing=True, dataset_kwargs={"skip_prepare_dataset": True})  # packed within each skill by the callback

# name: the MoSConfig (None: no callback), the SFTConfig changes, whether the distribution is frozen (the policy learns
# but the sampler keeps its initial, uniform distribution: the data of "uniform", so only the learning costs differ),
# and the configuration it is compared with
CONFIGS = {
    "baseline (stock sampler)": dict(mos=None),
    "proportional (our sampler)": dict(mos=dict(strategy="proportional")),
    "uniform (static, our sampler)": dict(mos=dict(strategy="uniform")),
    "MoS CosSim+Diff+EMA (S=100, 64/16)": dict(mos=PAPER_MOS),
    "MoS, frozen at uniform": dict(mos=PAPER_MOS, frozen=True, reference="uniform (static, our sampler)"),
    "MoS, frozen at uniform, defaults (CosSim)": dict(
        mos=dict(strategy="mos"), frozen=True, reference="uniform (static, our sampler)"
    ),
    "MoS, frozen at uniform, Diff+EMA": dict(
        mos=dict(strategy="mos", reward=["diff"], use_ema=True), frozen=True, reference="uniform (static, our sampler)"
    ),
    "uniform, padding-free": dict(mos=dict(strategy="uniform"), sft=PADDING_FREE),
    "MoS, frozen, padding-free": dict(mos=PAPER_MOS, sft=PADDING_FREE, frozen=True, reference="uniform, padding-free"),
    "uniform, packed per skill": dict(mos=dict(strategy="uniform"), sft=PACKED),
    "MoS, frozen, packed per skill": dict(
        mos=PAPER_MOS, sft=PACKED, frozen=True, reference="uniform, packed per skill"
    ),
}
PARTS = ("rewards", "policy", "base", "logging")  # where the time inside the handlers goes


def _time_calls(owner, name: str, timers: dict[str, float], key: str) -> None:
    method = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            timers[key] += time.perf_counter() - start

    setattr(owner, name, timed)


def _time_handlers(callback, timer: list[float]) -> None:
    """Wraps every `on_*` event handler of `callback` (an instance) so that `timer[0]` accumulates their run time."""
    for event in [name for name in dir(callback) if name.startswith("on_")]:
        handler = getattr(callback, event)

        def timed(*args, _handler=handler, **kwargs):
            start = time.perf_counter()
            try:
                return _handler(*args, **kwargs)
            finally:
                timer[0] += time.perf_counter() - start

        setattr(callback, event, timed)


def paired_ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """The geometric mean of paired ratios and its 95 % confidence interval (Student's t on the log ratios).

    The t quantile comes from the Cornish-Fisher expansion around the normal one (within 0.3 % of the exact value
    from 4 degrees of freedom up, 3 % at 2); with a single pair the interval is unbounded.
    """
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), 0.0, math.inf
    df, z = len(logs) - 1, statistics.NormalDist().inv_cdf(0.975)
    t = (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def timed_run(name: str, steps: int, batch_size: int, output_dir: str, seed: int) -> dict[str, float]:
    """One training run: `{"seconds": wall clock of train(), "handler_seconds": time in the callback's handlers,
    "padded_tokens": input positions trained on, padding included, and the handler time per part}`."""
    import datasets
    import transformers
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
    from trl_mos.tasks import make_skill_datasets
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer, tiny_sft_config

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    spec = CONFIGS[name]
    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed)
    train = make_skill_datasets(seed=seed)["train"]
    args = tiny_sft_config(
        os.path.join(output_dir, "run"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        logging_steps=50,
        seed=seed,
        **spec.get("sft", {}),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    handler_time, padded_tokens = [0.0], [0]
    parts = dict.fromkeys(PARTS, 0.0)
    if spec["mos"] is not None:
        callback = MixtureOfSkillsCallback(trainer, MoSConfig(**spec["mos"], plot=False))
        _time_handlers(callback, handler_time)
        if callback.rewards is not None:
            _time_calls(callback.rewards, "compute", parts, "rewards")
            _time_calls(callback.rewards, "compute_base", parts, "base")
        _time_calls(callback.strategy, "update", parts, "policy")
        _time_calls(callback, "_metrics", parts, "logging")
        if spec.get("frozen"):  # the policy learns, the sampler keeps its distribution
            original = callback._get_train_sampler

            def frozen_sampler(*args, **kwargs):
                sampler = original(*args, **kwargs)
                sampler.set_probabilities = lambda probabilities, position=None: position
                return sampler

            callback._get_train_sampler = frozen_sampler
            trainer._get_train_sampler = frozen_sampler
        trainer.add_callback(callback)
    training_step = trainer.training_step

    def counting_step(model, inputs, *args, **kwargs):
        padded_tokens[0] += inputs["input_ids"].numel()
        return training_step(model, inputs, *args, **kwargs)

    trainer.training_step = counting_step
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "handler_seconds": handler_time[0],
        "padded_tokens": padded_tokens[0],
        **parts,
    }


def plot(rows: dict[str, dict], path: str) -> None:
    """Bars of the median wall-clock time per configuration (the callback handlers' share darker), whiskers from the
    fastest to the slowest run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    medians = [rows[name]["median"] for name in names]
    handlers = [rows[name]["handler_seconds_median"] for name in names]
    seconds = [[run["seconds"] for run in rows[name]["runs"]] for name in names]
    errors = [[m - min(v) for m, v in zip(medians, seconds, strict=True)],
              [max(v) - m for m, v in zip(medians, seconds, strict=True)]]  # fmt: skip
    figure, axes = plt.subplots(figsize=(8, 4))
    positions = range(len(names))
    axes.barh(positions, medians, xerr=errors, color="#9ecae1", capsize=4, label="training (median run)")
    axes.barh(positions, handlers, color="#08519c", label="inside the callback's handlers")
    axes.set_yticks(list(positions), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds for trainer.train() (whiskers: fastest to slowest run)")
    axes.set_title("Mixture-of-Skills overhead")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/mos_overhead.json")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the results in --output")
    parser.add_argument(
        "--configs", nargs="*", default=None, help="configurations to run: names, or prefixes of names"
    )
    args = parser.parse_args()
    names = [
        n
        for n in CONFIGS
        if args.configs is None or n in args.configs or any(n.startswith(c) and c not in CONFIGS for c in args.configs)
    ]
    names = list(dict.fromkeys(["baseline (stock sampler)"] + [CONFIGS[n].get("reference", n) for n in names] + names))
    names = [n for n in CONFIGS if n in names]
    plot_path = os.path.splitext(args.output)[0] + ".png"
    if args.replot:
        with open(args.output) as f:
            plot(json.load(f)["results"], plot_path)
        print(f"plot: {plot_path}")
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    work_dir = os.path.join(os.path.dirname(os.path.abspath(args.output)), "mos_overhead_runs")
    timed_run("baseline (stock sampler)", 20, args.batch_size, work_dir, seed=0)  # warm-up (imports, caches)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        # interleaved, in alternating order (ABBA), so that drifts of the machine's speed hit every configuration alike
        for name in names if repeat % 2 == 0 else names[::-1]:
            run = timed_run(name, args.steps, args.batch_size, work_dir, seed=repeat)
            runs[name].append(run)
            print(
                f"repeat {repeat}  {name:<38} {run['seconds']:7.2f}s  CPU {run['cpu_seconds']:7.2f}s  "
                f"handlers {run['handler_seconds']:6.2f}s  "
                f"{run['padded_tokens'] / 1e6:.2f}M padded tokens",
                flush=True,
            )
    # Interference from other work only ever adds time, so the fastest of the interleaved runs is the most faithful
    # figure for each configuration; the medians are printed beside it.
    base = [run["seconds"] for run in runs["baseline (stock sampler)"]]
    base_min, base_median = min(base), statistics.median(base)
    print(f"\n{args.steps} steps × batch {args.batch_size}, {args.repeats} interleaved runs per configuration")
    print(
        f"{'configuration':<38} {'min s':>7} {'ratio':>6} {'median s':>8} {'ratio':>6} "
        f"{'handlers s':>10} {'handlers/rest':>13} {'padded tok':>10} {'vs reference (median, spread)':>30}"
    )
    rows = {}
    for name, values in runs.items():
        seconds = [run["seconds"] for run in values]
        fastest, median = min(seconds), statistics.median(seconds)
        handlers = statistics.median(run["handler_seconds"] for run in values)
        share = statistics.median(run["handler_seconds"] / (run["seconds"] - run["handler_seconds"]) for run in values)
        tokens = statistics.median(run["padded_tokens"] for run in values)
        reference = CONFIGS[name].get("reference")
        against = {}
        if reference is not None:  # paired by repeat: run r of both used the same seed, one after the other
            ratios = [a["seconds"] / b["seconds"] for a, b in zip(values, runs[reference], strict=True)]
            cpu_ratios = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in zip(values, runs[reference], strict=True)]
            mean, low, high = paired_ratio_interval(ratios)
            against = {
                "reference": reference,
                "paired_ratios": ratios,
                "paired_ratio_median": statistics.median(ratios),
                "paired_ratio_mean": mean,  # geometric
                "paired_ratio_ci95": [low, high],
                "paired_cpu_ratios": cpu_ratios,
                "paired_cpu_ratio_median": statistics.median(cpu_ratios),
                "same_tokens": [
                    a["padded_tokens"] == b["padded_tokens"] for a, b in zip(values, runs[reference], strict=True)
                ],
            }
        parts = {part: statistics.median(run[part] for run in values) for part in PARTS}
        rows[name] = {
            **against,
            "parts_median": parts,
            "runs": values,
            "min": fastest,
            "ratio_min": fastest / base_min,
            "median": median,
            "ratio_median": median / base_median,
            "handler_seconds_median": handlers,
            "handler_share_median": share,
            "padded_tokens_median": tokens,
        }
        print(
            f"{name:<38} {fastest:7.2f} {fastest / base_min:6.3f} {median:8.2f} {median / base_median:6.3f} "
            f"{handlers:10.2f} {share:13.3f} {tokens / 1e3:9.0f}k"
            + (
                f"   ×{against['paired_ratio_median']:.3f} ({min(against['paired_ratios']):.3f}–"
                f"{max(against['paired_ratios']):.3f}; mean ×{against['paired_ratio_mean']:.3f}, 95 % CI "
                f"{against['paired_ratio_ci95'][0]:.3f}–{against['paired_ratio_ci95'][1]:.3f}), "
                f"CPU time ×{against['paired_cpu_ratio_median']:.3f} "
                f"({min(against['paired_cpu_ratios']):.3f}–{max(against['paired_cpu_ratios']):.3f}), "
                f"same data: {all(against['same_tokens'])}"
                if against
                else ""
            )
        )
        if handlers > 0:
            print(" " * 40 + "handlers: " + ", ".join(f"{part} {parts[part]:.2f}s" for part in PARTS))
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "results": rows}, f, indent=1)
    plot(rows, plot_path)
    print(f"\nresults: {args.output}\nplot: {plot_path}")


if __name__ == "__main__":
    main()
