# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Collects the answer-verification test cases of Math-Verify (https://github.com/huggingface/Math-Verify,
Apache-2.0) into `benchmarks/data/math_verify_cases.json`, the data file of `verifier_accuracy.py`.

Only the cases are copied (gold, prediction, expected verdict, and the options the test passes), read from the
`pytest.mark.parametrize` lists of its tests with `ast`; none of its code. Expressions that are not plain literals
(a few f-strings such as `f"{math.sqrt(17):.15f}"`) are evaluated with `math` only and no builtins.

    git clone https://github.com/huggingface/Math-Verify && git -C Math-Verify checkout 5d148cfaaf99214c2e4ffb4bc497ab042c592a7a
    python benchmarks/collect_math_verify_cases.py Math-Verify --commit 5d148cfaaf99214c2e4ffb4bc497ab042c592a7a
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os


OPTION_NAMES = ("match_types", "precision", "strict", "allow_set_relation_comp")


def _value(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(compile(ast.Expression(node), "<case>", "eval"), {"__builtins__": {}, "math": math})  # noqa: S307


def _cases_of(function: ast.FunctionDef) -> tuple[list[str], list] | None:
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("mark.parametrize"):
            names = [name.strip() for name in ast.literal_eval(decorator.args[0]).split(",")]
            if not {"gold", "pred"} <= set(names):
                return None  # e.g. string extraction (no gold answer)
            return names, [_value(element) for element in decorator.args[1].elts]
    return None


def _call_options(function: ast.FunctionDef) -> tuple[str, dict]:
    """How the test calls math-verify: `compare_strings(gold, pred, **options)` or `verify(parse(gold), parse(pred))`,
    with each option a constant or the name of a parametrized argument."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "compare_strings":
            options = {}
            for keyword in node.keywords:
                value = keyword.value
                options[keyword.arg] = ("arg", value.id) if isinstance(value, ast.Name) else ast.literal_eval(value)
            return "compare_strings", options
    return "parse_verify", {}


_HELPER_DEFAULTS = {"match_types": ["latex", "expr"], "precision": 6, "strict": True, "allow_set_relation_comp": False}


def _direct_cases(filename: str, function: ast.FunctionDef) -> list[dict]:
    """Cases written out in a test body: `assert compare_strings("gold", "pred", ...) == expected`."""
    cases = []
    for node in ast.walk(function):
        if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and len(node.comparators) == 1):
            continue
        call = node.left
        if not (isinstance(call.func, ast.Name) and call.func.id == "compare_strings" and len(call.args) == 2):
            continue
        options = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
        cases.append(
            {
                "id": f"{filename}::{function.name}[{len(cases)}]",
                "gold": ast.literal_eval(call.args[0]),
                "pred": ast.literal_eval(call.args[1]),
                "expected": int(ast.literal_eval(node.comparators[0])),
                "call": "compare_strings",
                "options": {**_HELPER_DEFAULTS, **options},
            }
        )
    return cases


def collect(checkout: str) -> list[dict]:
    cases = []
    tests = os.path.join(checkout, "tests")
    for filename in sorted(os.listdir(tests)):
        if not filename.startswith("test_") or not filename.endswith(".py"):
            continue
        with open(os.path.join(tests, filename), encoding="utf-8") as handle:
            module = ast.parse(handle.read())
        for function in module.body:
            if not isinstance(function, ast.FunctionDef):
                continue
            found = _cases_of(function)
            if found is None:
                cases += _direct_cases(filename, function)
                continue
            names, rows = found
            expected_name = "expected" if "expected" in names else "result"
            style, options = _call_options(function)
            for index, row in enumerate(rows):
                row = dict(zip(names, row if isinstance(row, (tuple, list)) else (row,), strict=True))
                case_options = {
                    key: row[value[1]] if isinstance(value, tuple) else value for key, value in options.items()
                }
                if style == "compare_strings":  # the defaults of the tests' `compare_strings` helper
                    case_options = {**_HELPER_DEFAULTS, **case_options}
                cases.append(
                    {
                        "id": f"{filename}::{function.name}[{index}]",
                        "gold": row["gold"],
                        "pred": row["pred"],
                        "expected": int(row[expected_name]),
                        "call": style,
                        "options": case_options,
                    }
                )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of huggingface/Math-Verify")
    parser.add_argument("--commit", required=True, help="the commit of that checkout (recorded in the file)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "data", "math_verify_cases.json"))
    args = parser.parse_args()
    cases = collect(args.checkout)
    data = {
        "source": "https://github.com/huggingface/Math-Verify",
        "commit": args.commit,
        "license": "Apache-2.0 (LICENCE of huggingface/Math-Verify; Copyright 2024 The HuggingFace Team). "
        "Test cases only, collected by benchmarks/collect_math_verify_cases.py.",
        "cases": cases,
    }
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(f"{len(cases)} cases -> {args.output}")


if __name__ == "__main__":
    main()
