# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Regret of mixing strategies against the best static mixture, on a five-skill set built to discriminate.

The skills (`trl_mos.tasks.make_mixing_regret_datasets`, sizes 2000:2000:400:150:50): `copy` (easy, learned early),
`echo` (a near-duplicate of `copy`), `reverse` (half of its train labels are random shuffles), `succ` (an easy
prerequisite) and `rsucc` (hard: reverse then succ). The tiny model (hidden 64) trains for `--max-steps` steps of
batch 32 with a stock `SFTTrainer` under each mixture.

1. **Reference: the best static mixture, found by search on the same budget.** Candidates are the simplex lattice
   w_i = (1 + n_i) / (5 + M) with Σ n_i = M (`--grid-units M`, default 3: 35 mixtures, every skill at least
   1/8) plus PROP, UNI and TEMP τ=2/5/10. Stage 1 trains every candidate with the first seed; stage 2 retrains the
   `--top` best on validation with every seed; the reference is the candidate with the best mean *validation*
   balanced accuracy. Its test numbers (mean ± sd over seeds) are the reference; the test split chooses nothing.
2. **Every strategy on the same budget** (through `MixtureOfSkillsCallback`, every seed): PROP, UNI, TEMP τ=2/5/10,
   MoS CosSim / CosSim+EMA / Diff / Diff+EMA, MoSpec (Diff+EMA, target `rsucc`), ODM, and MoS with documented
   options moved (`policy_learning_rate`, `update_steps`, `reward_exponent`) to see whether a policy that can move
   helps.
3. Reported per strategy: test balanced accuracy (mean over skills) and balanced held-out loss (mean over skills of
   the completion-token NLL), their regret against the reference (reference − method for accuracy, method −
   reference for loss), the first evaluated step where the mean curve reaches UNI's final test balanced accuracy,
   the final mixture, and for MoS the reward spread (max − min over skills) and the size of the policy's move per
   update.

    python benchmarks/mixing_regret.py                    # full run, writes mixing_regret.json and .png
    python benchmarks/mixing_regret.py --replot PATH.json # redraw the plot from saved results

MoS cadence: the paper updates every S=100 of ~4,850 steps (≈ 48 updates); here S = max_steps // 50 keeps ≈ 50
updates; every other policy setting is the paper's unless the method's name says otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


SKILLS = ("copy", "echo", "reverse", "succ", "rsucc")
STATIC = {
    "PROP": dict(strategy="proportional"),
    "UNI": dict(strategy="uniform"),
    "TEMP τ=2": dict(strategy="temperature", temperature=2.0),
    "TEMP τ=5": dict(strategy="temperature", temperature=5.0),
    "TEMP τ=10": dict(strategy="temperature", temperature=10.0),
}
LEARNED = {
    "MoS-CosSim": dict(strategy="mos", reward=["cossim"]),
    "MoS-CosSim+EMA": dict(strategy="mos", reward=["cossim"], use_ema=True),
    "MoS-Diff": dict(strategy="mos", reward=["diff"]),
    "MoS-Diff+EMA": dict(strategy="mos", reward=["diff"], use_ema=True),
    "MoSpec-Diff+EMA(rsucc)": dict(strategy="mospec", target_skill="rsucc", reward=["diff"], use_ema=True),
    "ODM": dict(strategy="odm"),
    # documented options moved, the rest of the method unchanged
    "MoS-Diff+EMA policy lr 1e-2": dict(strategy="mos", reward=["diff"], use_ema=True, policy_learning_rate=1e-2),
    "MoS-CosSim+EMA policy lr 1e-2": dict(strategy="mos", reward=["cossim"], use_ema=True, policy_learning_rate=1e-2),
    "MoS-Diff+EMA S=2": dict(strategy="mos", reward=["diff"], use_ema=True, update_steps=2),
    "MoS-Diff+EMA reward exponent 4": dict(strategy="mos", reward=["diff"], use_ema=True, reward_exponent=4.0),
    "MoS-Diff+EMA exponent 4, lr 1e-2, S=2": dict(
        strategy="mos", reward=["diff"], use_ema=True, reward_exponent=4.0, policy_learning_rate=1e-2, update_steps=2
    ),
}
METHODS = {**STATIC, **LEARNED}


def lattice(num_skills: int, units: int) -> list[tuple[float, ...]]:
    """Simplex lattice with a floor: w_i = (1 + n_i) / (K + M), n_i ≥ 0 integers summing to M."""
    points = []
    for n in itertools.product(range(units + 1), repeat=num_skills):
        if sum(n) == units:
            points.append(tuple((1 + k) / (num_skills + units) for k in n))
    return points


def completion_loss(model, tokenizer, dataset, batch_size: int = 100) -> dict[str, float]:
    """Mean NLL per completion token (completion + EOS, as SFT trains it) per skill, and their mean `"balanced"`."""
    import torch

    names = dataset.features["skill"].names
    totals = {name: [0.0, 0] for name in names}
    model.eval()
    rows = list(zip(dataset["prompt"], dataset["completion"], dataset["skill"], strict=True))
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            ids, labels = [], []
            for prompt, completion, _ in batch:
                p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                ids.append(p + c)
                labels.append([-100] * len(p) + c)
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in ids])
            label_ids = torch.tensor([x + [-100] * (width - len(x)) for x in labels])
            attention = (torch.arange(width)[None, :] < torch.tensor([len(x) for x in ids])[:, None]).long()
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
            target = label_ids[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), target, ignore_index=-100, reduction="none"
            )
            for row, (_, _, skill) in enumerate(batch):
                mask = target[row] != -100
                totals[names[skill]][0] += float(nll[row][mask].sum())
                totals[names[skill]][1] += int(mask.sum())
    scores = {name: total / count for name, (total, count) in totals.items() if count}
    scores["balanced"] = float(np.mean(list(scores.values())))
    return scores


def run_one(spec: dict, seed: int, args: dict, threads: int) -> dict:
    """One training run: `spec` is {"name", "mos": MoSConfig kwargs} or {"name", "weights": [...]} (a static
    mixture drawn up front)."""
    import torch

    torch.set_num_threads(threads)
    import datasets
    import transformers
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTTrainer

    from trl_mos.demo import DemoConfig
    from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig
    from trl_mos.tasks import evaluate_skill_accuracy, make_mixing_regret_datasets, sample_static_mixture
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    max_steps, batch = args["max_steps"], 32
    demo = DemoConfig(
        output_dir=args["work_dir"], seed=seed, max_steps=max_steps, hidden_size=args["hidden_size"],
        batch_size=batch, show_progress=False,
    )  # fmt: skip
    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed, hidden_size=demo.hidden_size)
    data = make_mixing_regret_datasets(seed=seed)
    run_name = f"{spec['name']}-seed{seed}".replace(" ", "_").replace("/", "_")
    if "weights" in spec:
        train = sample_static_mixture(
            data["train"], dict(zip(SKILLS, spec["weights"], strict=True)), max_steps * batch, seed=seed
        )
    else:
        train = data["train"]
    trainer = SFTTrainer(model=model, args=demo.sft_config(run_name), train_dataset=train, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    callback = None
    if "mos" in spec:
        update_steps = max(1, max_steps // 50)
        kwargs = dict(spec["mos"])
        if kwargs["strategy"] in ("mos", "mospec"):
            kwargs.setdefault("update_steps", update_steps)
        callback = MixtureOfSkillsCallback(trainer, MoSConfig(**kwargs, plot=False, history_file=None))
        trainer.add_callback(callback)
    curve = []
    eval_every = args["eval_every"] if spec.get("curve") else max_steps

    def evaluate(split: str) -> dict:
        accuracy = evaluate_skill_accuracy(trainer.model, tokenizer, data[split], max_new_tokens=12)
        loss = completion_loss(trainer.model, tokenizer, data[split])
        trainer.model.train()
        return {"accuracy": accuracy, "loss": loss}

    class Evaluate(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            if state.global_step % eval_every == 0 and state.global_step < max_steps:
                curve.append({"step": state.global_step, **evaluate("test")})

    trainer.add_callback(Evaluate())
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    final = {"validation": evaluate("validation"), "test": evaluate("test")}
    curve.append({"step": max_steps, **final["test"]})
    result = {"name": spec["name"], "seed": seed, "seconds": seconds, "final": final, "curve": curve}
    if "weights" in spec:
        result["weights"] = list(spec["weights"])
    if callback is not None:
        records = callback.records
        names = list(callback.skill_index.names)
        result["trajectory"] = [
            {"step": r["step"], "probabilities": [r["probabilities"][n] for n in names]} for r in records
        ]
        result["rewards"] = [[r["reward"][n] for n in names] if "reward" in r else None for r in records]
    return result


def _run_all(specs, seeds, args, jobs) -> list[dict]:
    threads = max(1, (os.cpu_count() or 2) // jobs)
    results = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, spec, seed, args, threads) for seed in seeds for spec in specs]
        for future in futures:
            r = future.result()
            results.append(r)
            print(
                f"{r['name']:<34} seed {r['seed']}: val {100 * r['final']['validation']['accuracy']['balanced']:.1f} "
                f"test {100 * r['final']['test']['accuracy']['balanced']:.1f} "
                f"loss {r['final']['test']['loss']['balanced']:.3f} ({r['seconds']:.0f}s)",
                flush=True,
            )
    return results


def _stats(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mos_diagnostics(runs: list[dict]) -> dict | None:
    """Reward spread (max − min over skills) per update and the L1 move of the distribution per update."""
    spreads, moves, final = [], [], []
    for r in runs:
        if not r.get("trajectory"):
            return None
        probabilities = [np.asarray(t["probabilities"]) for t in r["trajectory"]]
        moves += [float(np.abs(b - a).sum()) for a, b in itertools.pairwise(probabilities)]
        final.append(probabilities[-1])
        for values in r["rewards"]:  # the reward (after EMA) per skill at every update; ODM: its loss signal
            if values is not None and np.all(np.isfinite(values)):
                spreads.append(float(np.ptp(np.asarray(values, dtype=float))))
    return {
        "reward_spread_mean": float(np.mean(spreads)) if spreads else None,
        "move_per_update_mean": float(np.mean(moves)) if moves else None,
        "final_probabilities_mean": np.mean(final, axis=0).tolist(),
        "max_distance_from_start": float(
            max(
                np.abs(np.asarray(t["probabilities"]) - np.asarray(r["trajectory"][0]["probabilities"])).sum()
                for r in runs
                for t in r["trajectory"]
            )
        ),  # fmt: skip
    }


def summarize(grid: list[dict], methods: list[dict], reference_name: str) -> dict:
    def group(results):
        names = list(dict.fromkeys(r["name"] for r in results))
        return {n: [r for r in results if r["name"] == n] for n in names}

    ref_runs = [r for r in grid if r["name"] == reference_name]
    ref_acc = _stats([r["final"]["test"]["accuracy"]["balanced"] for r in ref_runs])
    ref_loss = _stats([r["final"]["test"]["loss"]["balanced"] for r in ref_runs])
    by_method = group(methods)
    uni_final = None
    if "UNI" in by_method:
        uni_final = float(np.mean([r["final"]["test"]["accuracy"]["balanced"] for r in by_method["UNI"]]))
    summary = {
        "reference": {
            "name": reference_name,
            "weights": ref_runs[0].get("weights"),
            "seeds": len(ref_runs),
            "test_balanced_accuracy": ref_acc,
            "test_balanced_loss": ref_loss,
            "test_accuracy_per_skill": {
                s: _stats([r["final"]["test"]["accuracy"][s] for r in ref_runs]) for s in SKILLS
            },
            "validation_balanced_accuracy": _stats(
                [r["final"]["validation"]["accuracy"]["balanced"] for r in ref_runs]
            ),
        },
        "uni_final_test_balanced_accuracy": uni_final,
        "methods": {},
    }
    for name, runs in by_method.items():
        acc = [r["final"]["test"]["accuracy"]["balanced"] for r in runs]
        loss = [r["final"]["test"]["loss"]["balanced"] for r in runs]
        steps = [p["step"] for p in runs[0]["curve"]]
        curve = np.mean([[p["accuracy"]["balanced"] for p in r["curve"]] for r in runs], axis=0)
        curve_sd = (
            np.std([[p["accuracy"]["balanced"] for p in r["curve"]] for r in runs], axis=0, ddof=1)
            if len(runs) > 1
            else np.zeros(len(steps))
        )
        reached = None
        if uni_final is not None:
            hits = [s for s, v in zip(steps, curve, strict=True) if v >= uni_final - 1e-9]
            reached = hits[0] if hits else None
        summary["methods"][name] = {
            "seeds": len(runs),
            "test_balanced_accuracy": _stats(acc),
            "test_balanced_loss": _stats(loss),
            "accuracy_regret": _stats([ref_acc[0] - a for a in acc]),
            "loss_regret": _stats([v - ref_loss[0] for v in loss]),
            "test_accuracy_per_skill": {s: _stats([r["final"]["test"]["accuracy"][s] for r in runs]) for s in SKILLS},
            "steps_to_uni_final": reached,
            "curve": {"steps": steps, "mean": curve.tolist(), "sd": curve_sd.tolist()},
            "mos": _mos_diagnostics(runs),
            "seconds_mean": float(np.mean([r["seconds"] for r in runs])),
        }
    return summary


def print_table(summary: dict) -> None:
    ref = summary["reference"]
    weights = ", ".join(f"{w:.3f}" for w in ref["weights"]) if ref["weights"] else ref["name"]
    print(
        f"\nreference (best static on validation): {ref['name']} [{weights}] — test balanced accuracy "
        f"{100 * ref['test_balanced_accuracy'][0]:.1f} ± {100 * ref['test_balanced_accuracy'][1]:.1f}, loss "
        f"{ref['test_balanced_loss'][0]:.3f} ± {ref['test_balanced_loss'][1]:.3f} ({ref['seeds']} seeds)\n"
    )
    print("| method | " + " | ".join(SKILLS) + " | balanced acc | acc regret | balanced loss | loss regret | "
          "steps to UNI final | final mixture |")  # fmt: skip
    print("|---" * (len(SKILLS) + 7) + "|")
    for name, m in summary["methods"].items():
        skills = " | ".join(f"{100 * m['test_accuracy_per_skill'][s][0]:.0f}" for s in SKILLS)
        mixture = ""
        if m["mos"]:
            mixture = "/".join(f"{p:.2f}" for p in m["mos"]["final_probabilities_mean"])
        reach = m["steps_to_uni_final"]
        print(
            f"| {name} | {skills} | {100 * m['test_balanced_accuracy'][0]:.1f} ± {100 * m['test_balanced_accuracy'][1]:.1f}"
            f" | {100 * m['accuracy_regret'][0]:+.1f} | {m['test_balanced_loss'][0]:.3f} ± {m['test_balanced_loss'][1]:.3f}"
            f" | {m['loss_regret'][0]:+.3f} | {'never' if reach is None else reach} | {mixture} |"
        )
    print("\nMoS diagnostics (reward spread = max − min over skills per update; move = L1 change per update):")
    for name, m in summary["methods"].items():
        if m["mos"]:
            d = m["mos"]
            spread, move = (
                "n/a" if d[key] is None else f"{d[key]:.4f}" for key in ("reward_spread_mean", "move_per_update_mean")
            )  # a static strategy has one record: no update, no move
            print(
                f"  {name}: reward spread {spread}, move/update {move}, "
                f"max L1 from start {d['max_distance_from_start']:.3f}"
            )


def plot(saved: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = saved["summary"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for name, m in summary["methods"].items():
        steps, mean, sd = (np.asarray(m["curve"][k]) for k in ("steps", "mean", "sd"))
        line = left.plot(steps, 100 * mean, label=name, linestyle="--" if name in STATIC else "-")[0]
        left.fill_between(steps, 100 * (mean - sd), 100 * (mean + sd), color=line.get_color(), alpha=0.12)
    ref = summary["reference"]["test_balanced_accuracy"]
    left.axhspan(100 * (ref[0] - ref[1]), 100 * (ref[0] + ref[1]), color="grey", alpha=0.25)
    left.axhline(100 * ref[0], color="black", linewidth=1, label="best static (reference, ± sd)")
    left.set_xlabel("optimizer step")
    left.set_ylabel("balanced test accuracy (%)")
    left.set_title("Mean ± sd over seeds")
    left.legend(fontsize=6.5, ncol=2)
    # mixture trajectories of the learned strategies (mean over seeds)
    for run_name in (n for n, m in summary["methods"].items() if m["mos"]):
        runs = [r for r in saved["methods"] if r["name"] == run_name]
        steps = [t["step"] for t in runs[0]["trajectory"]]
        probabilities = np.mean([[t["probabilities"] for t in r["trajectory"]] for r in runs], axis=0)
        if run_name in ("MoS-Diff+EMA", "MoS-Diff+EMA policy lr 1e-2", "ODM"):
            for i, skill in enumerate(SKILLS):
                style = {"MoS-Diff+EMA": "-", "MoS-Diff+EMA policy lr 1e-2": "--", "ODM": ":"}[run_name]
                right.plot(steps, probabilities[:, i], style, color=f"C{i}", label=f"{run_name}: {skill}")
    if summary["reference"]["weights"]:
        for i, w in enumerate(summary["reference"]["weights"]):
            right.axhline(w, color=f"C{i}", linewidth=3, alpha=0.3)
    right.set_xlabel("optimizer step")
    right.set_ylabel("sampling probability")
    right.set_title("Mixture trajectories (thick: best static mixture)")
    right.legend(fontsize=6, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--grid-units", type=int, default=3, help="M of the simplex lattice (3: 35 mixtures)")
    parser.add_argument("--top", type=int, default=4, help="stage-1 candidates retrained with every seed")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each gets cpu_count // jobs threads)")
    parser.add_argument("--output", default="benchmarks/results/mixing_regret.json")
    parser.add_argument("--replot", default=None, help="redraw the plot of a saved JSON and exit")
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as f:
            saved = json.load(f)
        plot(saved, os.path.splitext(args.replot)[0] + ".png")
        print_table(saved["summary"])
        return
    if args.max_steps < args.eval_every or args.max_steps % args.eval_every:
        parser.error("--max-steps must be a positive multiple of --eval-every")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    run_args = dict(
        max_steps=args.max_steps, eval_every=args.eval_every, hidden_size=args.hidden_size,
        work_dir=os.path.join(os.path.dirname(os.path.abspath(args.output)), "mixing_regret_runs"),
    )  # fmt: skip
    start = time.perf_counter()

    # 1. the reference: search over static mixtures (stage 1: first seed; stage 2: the best on validation, all seeds)
    candidates = [{"name": "grid " + "/".join(f"{w:.3f}" for w in p), "weights": p}
                  for p in lattice(len(SKILLS), args.grid_units)]  # fmt: skip
    sizes = np.array([2000, 2000, 400, 150, 50], dtype=float)
    for name, tau in (("PROP", 1.0), ("UNI", np.inf), ("TEMP τ=2", 2.0), ("TEMP τ=5", 5.0), ("TEMP τ=10", 10.0)):
        weights = np.ones_like(sizes) if np.isinf(tau) else sizes ** (1 / tau)
        candidates.append({"name": f"static {name}", "weights": tuple((weights / weights.sum()).tolist())})
    print(f"stage 1: {len(candidates)} static mixtures, seed {args.seeds[0]}", flush=True)
    stage1 = _run_all(candidates, args.seeds[:1], run_args, args.jobs)
    ranked = sorted(stage1, key=lambda r: -r["final"]["validation"]["accuracy"]["balanced"])
    finalists = [c for c in candidates if c["name"] in {r["name"] for r in ranked[: args.top]}]
    print(f"stage 2: {[c['name'] for c in finalists]} on seeds {args.seeds[1:]}", flush=True)
    stage2 = _run_all(finalists, args.seeds[1:], run_args, args.jobs)
    finalist_runs = [r for r in stage1 + stage2 if r["name"] in {c["name"] for c in finalists}]
    reference = max(
        (c["name"] for c in finalists),
        key=lambda n: np.mean(
            [r["final"]["validation"]["accuracy"]["balanced"] for r in finalist_runs if r["name"] == n]
        ),
    )

    # 2. every strategy through the callback, every seed, with test curves
    specs = [{"name": name, "mos": METHODS[name], "curve": True} for name in args.methods]
    methods = _run_all(specs, args.seeds, run_args, args.jobs)
    summary = summarize(finalist_runs, methods, reference)
    summary["seconds"] = time.perf_counter() - start
    saved = {"args": vars(args), "summary": summary, "grid": stage1 + stage2, "methods": methods}
    with open(args.output, "w") as f:
        json.dump(saved, f, indent=1)
    print_table(summary)
    plot_path = os.path.splitext(args.output)[0] + ".png"
    plot(saved, plot_path)
    print(f"\ntotal {summary['seconds']:.0f} s; results: {args.output}; plot: {plot_path}")


if __name__ == "__main__":
    main()
