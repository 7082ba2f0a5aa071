# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The `trl-mos` command line (also `python -m trl_mos`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__


class _ArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line on stderr and exit code 2, with no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value!r}")
    return number


DEMO_PARTS = ["sft", "mos", "restem"]


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="trl-mos",
        description="Mixture-of-Skills data mixing and ReST^EM self-training for Hugging Face trainers.",
    )
    parser.add_argument("--version", action="version", version=f"trl-mos {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)

    demo = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded default: a tiny model on the bundled tasks, CPU, no Hub",
        description="Trains a tiny model built in-process on the bundled synthetic tasks and prints held-out "
        "results as tables. Needs no GPU and no network.",
    )
    demo.add_argument("--part", choices=["all", *DEMO_PARTS], default="all", help="which part to run (default: all)")
    demo.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of model, data and training (default: 0)"
    )
    demo.add_argument(
        "--max-steps", type=_positive_int, default=1000, help="optimizer steps per SFT run (default: 1000)"
    )
    demo.add_argument(
        "--restem-task",
        choices=["sorting", "arithmetic"],
        default="sorting",
        help="ReST^EM task: digit sorting, where the warm start has low pass@1 and much higher pass@16 so "
        "self-training has room (default), or the arithmetic word problems",
    )
    demo.add_argument("--output-dir", default="trl-mos-demo", help="where logs and plots go (default: ./trl-mos-demo)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    tiny = subparsers.add_parser(
        "tiny-model",
        help="save the offline tiny model and tokenizer to a directory",
        description="Builds the tiny tokenizer and model from a seed and saves both, ready for "
        "`AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.",
    )
    tiny.add_argument("output_dir", metavar="DIR", help="directory to write")
    tiny.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default: 0)")
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never needs the Hub
    from .demo import DemoConfig, format_table, run_mos_demo, run_sft_demo

    if args.no_progress:  # also the bars of dataset preparation and model saving, not only the Trainer's
        import datasets
        from transformers.utils import logging

        datasets.disable_progress_bars()
        logging.disable_progress_bar()

    config = DemoConfig(
        output_dir=args.output_dir, seed=args.seed, max_steps=args.max_steps, show_progress=not args.no_progress
    )
    parts = DEMO_PARTS if args.part == "all" else [args.part]
    title = "Held-out exact-match accuracy (%)"
    rows: dict[str, dict[str, float]] = {}
    if "sft" in parts:
        print(f"[sft] stock SFTTrainer, {config.max_steps} steps on the bundled skills (sizes 4000:1000:200:100)")
        rows["PROP (stock SFTTrainer)"] = run_sft_demo(config)
        print(format_table(rows, title=title))
    if "mos" in parts:
        print(f"[mos] uniform, temperature and Mixture-of-Skills sampling, {config.max_steps} steps each")
        mixtures, plot_path = run_mos_demo(config)
        rows.update(mixtures)
        print(format_table(rows, title=title))
        print(f"MoS sampling probabilities over training: {plot_path}")
    if "restem" in parts:
        from .rest_em.demo import format_restem_table, run_restem_demo

        task = {"sorting": "digit-sorting problems", "arithmetic": "arithmetic word problems"}[args.restem_task]
        print(f"[restem] short SFT warm start, then ReST^EM iterations on the bundled {task}")
        result = run_restem_demo(config, task=args.restem_task)
        print("ReST^EM: held-out (test) and validation results per iteration (%)")
        print(format_restem_table(result))
        print(f"ReST^EM part took {result['seconds'] / 60:.1f} min")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        return _run_demo(args)
    if args.command == "tiny-model":
        from .testing import save_tiny_model

        path = save_tiny_model(args.output_dir, seed=args.seed)
        print(f"Saved the tiny model and tokenizer to {path}")
        return 0
    parser.error(f"unknown command {args.command!r}")  # unreachable: argparse rejects unknown commands
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
