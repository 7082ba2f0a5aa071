# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The weight-sync check without vLLM: an engine in sync passes, a stale one fails with what differs, and the
continuous-batching backend runs the check before generating after a weight change."""

import pytest
import torch
from accelerate import Accelerator

from trl_mos.rest_em.generation import ContinuousBatchingBackend, SamplingSettings
from trl_mos.rest_em.weight_sync import (
    WeightSyncCheck,
    WeightSyncError,
    check_weight_sync,
    reference_greedy,
    reference_logprobs,
)
from trl_mos.testing import build_tiny_model


PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]


def test_in_sync_engine_passes_and_stale_one_fails(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=0).eval()
    stale = build_tiny_model(tiny_tokenizer, seed=1).eval()
    eos = tiny_tokenizer.eos_token_id

    def greedy(engine_model):
        return lambda ids, n: reference_greedy(engine_model, ids, n, eos)

    same = check_weight_sync(model, PROMPTS, greedy(model), eos)
    assert same.in_sync and same.greedy_matches == 3

    def logprobs_of(engine_model):
        def score(ids, completions):
            return [
                [
                    float(lp)
                    for lp in reference_logprobs(engine_model, [p], [c])[0].gather(-1, torch.tensor(c)[:, None])
                ]
                for p, c in zip(ids, completions, strict=True)
            ]

        return score

    assert check_weight_sync(model, PROMPTS, greedy(model), eos, logprobs_of(model)).max_logprob_gap < 1e-5
    # a stale engine: its greedy completions may agree with the model's (tiny tied models repeat the last token), its
    # log-probabilities do not
    with pytest.raises(WeightSyncError, match=r"greedy completions equal.*\n  - prompt \d: log-prob of token"):
        check_weight_sync(model, PROMPTS, greedy(stale), eos, logprobs_of(stale))


def test_continuous_batching_backend_checks_after_a_weight_change(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=0)
    check = WeightSyncCheck(PROMPTS, max_new_tokens=6)
    backend = ContinuousBatchingBackend(
        model, tiny_tokenizer, Accelerator(cpu=True), config={"num_blocks": 16, "max_batch_tokens": 256},
        weight_sync=check,
    )  # fmt: skip
    backend.generate(PROMPTS[:1], SamplingSettings(1, 4, do_sample=False), seed=0)
    assert backend.last_sync_report.in_sync and backend.last_sync_report.greedy_matches == 3
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)
    backend.update_weights(model)
    backend.last_sync_report = None
    backend.generate(PROMPTS[:1], SamplingSettings(1, 4, do_sample=False), seed=0)
    assert backend.last_sync_report is not None and backend.last_sync_report.in_sync
