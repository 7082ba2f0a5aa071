# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Draws per second of `SkillSampler` against torch's `RandomSampler`, measured side by side in one process.

Every configuration iterates `--draws` indices from a sampler over `--rows` rows split into four skills (40/30/20/10 %)
and keeps the fastest of `--repeats` runs, alternating configurations. Times are CPU seconds of this process
(`time.process_time`), so that other jobs on a shared machine do not count; draws per second are per CPU-second.

- `RandomSampler`: torch's sampler (what the Trainer uses without Mixture-of-Skills);
- `SkillSampler`: a fixed distribution; `... change every 10k draws`: `set_probabilities` while iterating, far more
  often than MoS does (every `update_steps` optimizer steps);
- `SkillSampler, per-draw loop (v0.x)`: the previous implementation (one `np.cumsum` and `searchsorted` per draw),
  kept here only as the reference the vectorised one is measured against (run on `--draws / 10` draws);
- `... rank 0 of 8`: inside `BatchSampler` + accelerate's `BatchSamplerShard`, as in an 8-process run, counting the
  rank's own indices per second (every rank walks the whole shared stream).

    python benchmarks/sampler_throughput.py --draws 2000000 --repeats 3    # results JSON and a PNG plot beside it

Target: ≥ 2 M draws/s for `SkillSampler`, and no slower than `RandomSampler`.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import time

import numpy as np


def _legacy_iterate(sampler, start: int, end: int):
    """The per-draw loop of trl-mos v0.x (same stream), for reference."""
    counts = sampler.skill_counts(0, start) if start > 0 else np.zeros(sampler.skill_index.num_skills, dtype=np.int64)
    sizes = [len(rows) for rows in sampler._rows]
    positions, probabilities = sampler._history_positions, sampler._history_probabilities
    for position, u in zip(range(start, end), sampler._uniforms(start, end), strict=True):
        p = probabilities[bisect.bisect_right(positions, position) - 1]
        skill = min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)
        round_, offset = divmod(int(counts[skill]), sizes[skill])
        counts[skill] += 1
        yield int(sampler._permutation(skill, round_)[offset])


def _configurations(rows: int, draws: int, seed: int) -> dict:
    """`name -> (draws, make)`, where `make()` returns a fresh iterable over the configuration's indices."""
    import torch
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, RandomSampler

    from trl_mos.mixing import SkillIndex, SkillSampler

    fractions = np.array([0.4, 0.3, 0.2, 0.1])
    sizes = np.floor(fractions * rows).astype(int)
    index = SkillIndex(names=["a", "b", "c", "d"], skill_ids=np.repeat(np.arange(4), sizes))
    probabilities = [0.1, 0.2, 0.3, 0.4]

    def skill_sampler():
        return SkillSampler(index, probabilities, seed=seed, epoch_length=draws)

    def changing():
        sampler = skill_sampler()
        rng = np.random.default_rng(seed)

        def iterate():
            iterator = iter(sampler)
            while chunk := list(itertools.islice(iterator, 10_000)):
                yield chunk
                sampler.set_probabilities(rng.dirichlet(np.ones(4)))

        return itertools.chain.from_iterable(iterate())

    def random_sampler():
        generator = torch.Generator().manual_seed(seed)
        return RandomSampler(range(int(sizes.sum())), num_samples=draws, generator=generator)

    def sharded(make):
        def build():
            shard = BatchSamplerShard(BatchSampler(make(), 16, drop_last=False), num_processes=8, process_index=0)
            return itertools.chain.from_iterable(shard)

        return build

    return {
        "RandomSampler": (draws, random_sampler),
        "SkillSampler": (draws, skill_sampler),
        "SkillSampler, change every 10k draws": (draws, changing),
        "SkillSampler, per-draw loop (v0.x)": (draws // 10, lambda: _legacy_iterate(skill_sampler(), 0, draws // 10)),
        "RandomSampler, rank 0 of 8": (draws // 8, sharded(random_sampler)),
        "SkillSampler, rank 0 of 8": (draws // 8, sharded(skill_sampler)),
    }


def measure(rows: int, draws: int, repeats: int, seed: int) -> list[dict]:
    draws = max(draws // 1280, 1) * 1280  # whole batches of 16 for 8 ranks, and a tenth of that for v0.x
    configurations = _configurations(rows, draws, seed)
    best = {name: float("inf") for name in configurations}
    for _ in range(repeats):
        for name, (count, make) in configurations.items():
            iterable = make()
            start = time.process_time()
            seen = len(list(iterable))  # consumed at C speed: what is timed is the sampler
            best[name] = min(best[name], time.process_time() - start)
            assert seen == count, (name, seen, count)
    baseline = configurations["RandomSampler"][0] / best["RandomSampler"]
    return [
        {
            "configuration": name,
            "draws": count,
            "seconds": best[name],
            "draws_per_second": count / best[name],
            "vs_RandomSampler": count / best[name] / baseline,
        }
        for name, (count, _) in configurations.items()
    ]


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.6))
    names = [r["configuration"] for r in results]
    values = [r["draws_per_second"] / 1e6 for r in results]
    colors = ["tab:gray" if n.startswith("RandomSampler") else "tab:blue" for n in names]
    axis.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, value in enumerate(values[::-1]):
        axis.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    axis.axvline(2.0, color="tab:red", linestyle="--", linewidth=1, label="target 2 M/s")
    axis.set_xlabel("million indices per second (rank 0 of 8: the rank's own indices)")
    axis.set_title("Sampler throughput per CPU-second (best of repeats)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="dataset rows (four skills)")
    parser.add_argument("--draws", type=int, default=2_000_000, help="indices per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/sampler_throughput.json")
    parser.add_argument("--plot", default="docs/images/sampler_throughput.png")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the results in --output")
    args = parser.parse_args()
    if args.replot:
        with open(args.output) as f:
            plot(json.load(f)["results"], args.plot)
        return
    results = measure(args.rows, args.draws, args.repeats, args.seed)
    print(f"{'configuration':40s} {'draws':>10s} {'seconds':>8s} {'M draws/s':>10s} {'vs Random':>10s}")
    for r in results:
        print(
            f"{r['configuration']:40s} {r['draws']:>10d} {r['seconds']:>8.3f} {r['draws_per_second'] / 1e6:>10.2f} "
            f"{r['vs_RandomSampler']:>10.2f}"
        )
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    plot(results, args.plot)
    print(f"\nresults: {args.output}\nplot: {args.plot}")


if __name__ == "__main__":
    main()
