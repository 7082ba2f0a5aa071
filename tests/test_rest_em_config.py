# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReSTEMConfig: the paper's defaults, validation messages, command-line parsing."""

import pytest
from transformers import HfArgumentParser

from trl_mos.rest_em import ReSTEMConfig


def _config(tmp_path, **kwargs):
    return ReSTEMConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


def test_defaults_are_the_papers(tmp_path):
    args = _config(tmp_path)
    assert (args.num_iterations, args.num_samples_per_prompt, args.max_solutions_per_prompt) == (3, 32, 10)
    assert (args.temperature, args.top_k, args.top_p) == (0.7, 40, 1.0)
    assert (args.eval_temperature, args.eval_top_p) == (1.0, 0.95)
    assert args.reset_to_base and args.selection_metric == "pass@1" and args.eval_k == [4, 16]
    assert not args.use_vllm and not args.use_transformers_continuous_batching and args.vllm_mode == "colocate"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eval_k": [4, 32], "eval_num_samples": 16}, "Raise `eval_num_samples` to at least 32"),
        ({"eval_k": [1]}, "eval/pass@1 is always measured"),
        ({"num_samples_per_prompt": 0}, "`num_samples_per_prompt` must be a positive integer"),
        ({"max_solutions_per_prompt": 0}, "`max_solutions_per_prompt` must be at least 1"),
        ({"num_iterations": 0}, "`num_iterations` must be a positive integer"),
        ({"early_stopping_patience": 0}, "`early_stopping_patience` must be at least 1"),
        ({"temperature": 0.0}, "must be positive"),
        ({"top_p": 0.0}, "must be in (0, 1]"),
        ({"verifier_mode": "most"}, "`verifier_mode` must be one of ['all', 'any']"),
        ({"selection_metric": "maj@8"}, "`selection_metric` must be one of ['pass@1', 'pass@4', 'maj@4'"),
        ({"eval_strategy": "steps"}, "Leave `eval_strategy='no'`"),
        ({"use_vllm": True, "use_transformers_continuous_batching": True}, "Choose one generation backend"),
        ({"vllm_mode": "remote"}, "`vllm_mode` must be one of ['colocate', 'server']"),
    ],
)
def test_invalid_settings_say_how_to_fix_them(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        _config(tmp_path, **kwargs)
    assert message in str(error.value)


def test_greedy_only_evaluation_and_selection_on_sampled_metrics(tmp_path):
    assert _config(tmp_path, eval_num_samples=0, eval_k=[]).eval_k == []
    assert _config(tmp_path, eval_num_samples=8, eval_k=[8, 2, 8], selection_metric="maj@8").eval_k == [2, 8]


def test_parses_from_the_command_line(tmp_path):
    parser = HfArgumentParser(ReSTEMConfig)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--use_cpu", "--num_iterations", "2", "--eval_k", "2", "8",
         "--eval_num_samples", "8", "--reset_to_base", "false", "--transformers_continuous_batching_config",
         '{"max_batch_tokens": 256}']
    )  # fmt: skip
    assert args.num_iterations == 2 and args.eval_k == [2, 8] and args.reset_to_base is False
    assert args.transformers_continuous_batching_config == {"max_batch_tokens": 256}
