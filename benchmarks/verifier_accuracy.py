# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Verifier accuracy: `math_verifier` on Math-Verify's own test cases, against math-verify's defaults and TRL's
`accuracy_reward`.

The 270 cases (gold answer, prediction, expected verdict, and the options the test passes) come from the tests of
https://github.com/huggingface/Math-Verify at a pinned commit (Apache-2.0), collected by
`benchmarks/collect_math_verify_cases.py` into `benchmarks/data/math_verify_cases.json`. Each system gets the
prediction as a completion and the gold answer as the solution; a case is correct when the system's verdict (1 for a
score of 1.0, else 0) is the expected one. A false positive is a 1 where the test expects 0.

Systems:
- `trl_mos`: `math_verifier` (defaults);
- `trl_mos_options`: `make_math_verifier` with the case's precision / strict / set-relation options;
- `math_verify_defaults`: `verify(parse(gold), parse(pred))`;
- `math_verify_tests`: math-verify called as its tests call it (their extraction targets and options);
- `trl_accuracy_reward`: `trl.rewards.accuracy_reward`.

    python benchmarks/verifier_accuracy.py
    python benchmarks/verifier_accuracy.py --timeout 30         # a loaded machine: no case lost to the 5 s timeout
    python benchmarks/verifier_accuracy.py --systems trl_mos math_verify_defaults --output results.json --show-errors
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import defaultdict


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "math_verify_cases.json")
SYSTEMS = ("trl_mos", "trl_mos_options", "math_verify_defaults", "math_verify_tests", "trl_accuracy_reward")


def _binary(score) -> int:
    return int(score is not None and float(score) >= 1.0)


def run_trl_mos(cases: list[dict], with_options: bool, timeout: float = 5.0) -> list[int]:
    from trl_mos.verifiers import make_math_verifier, math_verifier

    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, case in enumerate(cases):
        options = case["options"] if with_options else {}
        key = (
            options.get("precision", 6),
            options.get("strict", True),
            options.get("allow_set_relation_comp", False),
        )
        groups[key].append(index)
    verdicts = [0] * len(cases)
    for (precision, strict, set_relation), indices in groups.items():
        if with_options:
            verifier = make_math_verifier(
                timeout=timeout, float_rounding=precision, strict=strict, allow_set_relation_comp=set_relation
            )
        else:
            verifier = math_verifier if timeout == 5.0 else make_math_verifier(timeout=timeout)
        scores = verifier(
            prompts=[""] * len(indices),
            completions=[cases[i]["pred"] for i in indices],
            solution=[cases[i]["gold"] for i in indices],
        )
        for i, score in zip(indices, scores, strict=True):
            verdicts[i] = _binary(score)
    return verdicts


def run_math_verify(cases: list[dict], as_tests: bool) -> list[int]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    verdicts = []
    for case in cases:
        options = case["options"]
        if as_tests and case["call"] == "compare_strings":
            targets = {"latex": LatexExtractionConfig(boxed_match_priority=0), "expr": ExprExtractionConfig()}
            config = [targets[name] for name in options["match_types"]]
            result = verify(
                parse(case["gold"], config),
                parse(case["pred"], config),
                float_rounding=options["precision"],
                strict=options["strict"],
                allow_set_relation_comp=options["allow_set_relation_comp"],
            )
        else:
            result = verify(parse(case["gold"]), parse(case["pred"]))
        verdicts.append(int(bool(result)))
    return verdicts


def run_trl_accuracy_reward(cases: list[dict]) -> list[int]:
    from trl.rewards import accuracy_reward

    completions = [[{"role": "assistant", "content": case["pred"]}] for case in cases]
    return [_binary(s) for s in accuracy_reward(completions, [case["gold"] for case in cases])]


def run(system: str, cases: list[dict], timeout: float = 5.0) -> list[int]:
    if system in ("trl_mos", "trl_mos_options"):
        return run_trl_mos(cases, with_options=system == "trl_mos_options", timeout=timeout)
    if system in ("math_verify_defaults", "math_verify_tests"):
        return run_math_verify(cases, as_tests=system == "math_verify_tests")
    if system == "trl_accuracy_reward":
        return run_trl_accuracy_reward(cases)
    raise ValueError(f"unknown system {system!r}; choose from {SYSTEMS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--timeout", type=float, default=5.0, help="trl_mos's per-completion timeout (seconds)")
    parser.add_argument("--output", help="write the per-case verdicts and the summary to this JSON file")
    parser.add_argument("--show-errors", action="store_true", help="print the cases each system gets wrong")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    with open(args.data, encoding="utf-8") as handle:
        data = json.load(handle)
    cases = data["cases"]
    expected = [case["expected"] for case in cases]
    print(f"{len(cases)} cases from {data['source']} @ {data['commit'][:12]} ({sum(expected)} expected to verify)")
    summary, verdicts = {}, {}
    for system in args.systems:
        start = time.perf_counter()
        verdicts[system] = got = run(system, cases, args.timeout)
        seconds = time.perf_counter() - start
        summary[system] = {
            "correct": sum(g == e for g, e in zip(got, expected, strict=True)),
            "false_positives": sum(g == 1 and e == 0 for g, e in zip(got, expected, strict=True)),
            "false_negatives": sum(g == 0 and e == 1 for g, e in zip(got, expected, strict=True)),
            "seconds": round(seconds, 2),
        }
    print(f"| system | correct (of {len(cases)}) | false positives | false negatives | seconds |")
    print("|---|---|---|---|---|")
    for system, row in summary.items():
        print(
            f"| {system} | {row['correct']} | {row['false_positives']} | {row['false_negatives']} | {row['seconds']} |"
        )
    if args.show_errors:
        for system, got in verdicts.items():
            print(f"\n{system}: wrong on")
            for case, verdict in zip(cases, got, strict=True):
                if verdict != case["expected"]:
                    print(f"  {case['id']}: gold={case['gold']!r} pred={case['pred']!r} expected={case['expected']}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump({"summary": summary, "ids": [c["id"] for c in cases], "verdicts": verdicts}, handle, indent=1)


if __name__ == "__main__":
    main()
