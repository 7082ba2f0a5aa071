# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM validation: greedy accuracy (`pass@1`), pass@k and maj@k of the current policy on held-out problems,
computed with [`trl_mos.evaluation`], and the metric that selects the best iteration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..evaluation import evaluate_samples, majority_vote
from .filtering import derive_seed
from .generation import GenerationBackend, SamplingSettings
from .sharding import run_sharded_generation


def majority_correct(records: Sequence[dict[str, Any]], k: int, equivalence: str = "normalized") -> float:
    """maj@k of one problem: whether the most frequent answer among its first k samples (answers grouped with
    `equivalence`) belongs to a sample the verifiers accepted.

    Args:
        records (`Sequence[dict]`): the problem's sample records in sampling order, with `answer` and `accepted`.
        k (`int`): how many samples vote.
        equivalence (`str`, *optional*, defaults to `"normalized"`): see [`~trl_mos.evaluation.majority_vote`].
    """
    answers = [r["answer"] for r in records[:k]]
    winner, _ = majority_vote(answers, equivalence=equivalence)
    if winner is None:
        return 0.0
    return float(bool(next(r["accepted"] for r in records[:k] if r["answer"] == winner)))


def validation_metrics(
    greedy: Sequence[dict[str, Any]],
    sampled: Sequence[dict[str, Any]],
    eval_k: Sequence[int],
    equivalence: str = "normalized",
) -> dict[str, float]:
    """The validation metrics from sample records.

    Args:
        greedy (`Sequence[dict]`): one greedy record per problem (`accepted`).
        sampled (`Sequence[dict]`): the sampled records (`prompt_index`, `accepted`, `answer`), a problem's in
            sampling order; may be empty.
        eval_k (`Sequence[int]`): the k of pass@k and maj@k.
        equivalence (`str`, *optional*, defaults to `"normalized"`): maj@k's answer grouping.

    Returns:
        `dict[str, float]`: `pass@1` (greedy accuracy), and `pass@{k}`, `maj@{k}` for every k.
    """
    metrics = {"pass@1": sum(bool(r["accepted"]) for r in greedy) / len(greedy)}
    if not sampled or not eval_k:
        return metrics
    # a verifier error (accepted None) counts as not solved here, so that every problem keeps its n samples
    solved = [{"prompt_index": r["prompt_index"], "solved": bool(r["accepted"])} for r in sampled]
    result = evaluate_samples(solved, ks=list(eval_k), problem_key="prompt_index", correct_key="solved")
    per_prompt: dict[int, list[dict[str, Any]]] = {}
    for record in sampled:
        per_prompt.setdefault(record["prompt_index"], []).append(record)
    for k in eval_k:
        metrics[f"pass@{k}"] = result.metrics[f"pass@{k}"]
        metrics[f"maj@{k}"] = sum(majority_correct(r, k, equivalence) for r in per_prompt.values()) / len(per_prompt)
    return metrics


def evaluate_policy(
    backend: GenerationBackend,
    prompt_ids: list[list[int]],
    process_shard: Callable[[int, list[int], list[list[list[int]]]], dict[str, Any]],
    args: Any,
    seed: int,
    description: str = "Evaluating",
) -> dict[str, float]:
    """Generates for validation problems and measures them (see [`validation_metrics`]).

    Args:
        backend ([`GenerationBackend`]): generates with the current policy.
        prompt_ids (`list[list[int]]`): the tokenized problems.
        process_shard (`Callable`): verifies one shard with answers, `(shard, indices, completion_ids) ->
            {"samples": [...]}`.
        args ([`ReSTEMConfig`]): `max_completion_length`, `eval_num_samples`, `eval_k`, `eval_temperature`,
            `eval_top_p`, `eval_answer_equivalence`, `generation_shard_size`.
        seed (`int`): the sampling seed.
        description (`str`, *optional*, defaults to `"Evaluating"`): progress bar label.
    """

    def run(settings: SamplingSettings, seed: int, description: str) -> list[dict[str, Any]]:
        payloads = run_sharded_generation(
            backend,
            prompt_ids,
            settings,
            shard_size=args.generation_shard_size,
            seed=seed,
            process_shard=process_shard,
            description=description,
            show_progress=not args.disable_tqdm,
        )
        return [r for payload in payloads for r in payload["samples"]]

    greedy = run(SamplingSettings(1, args.max_completion_length, do_sample=False), seed, description)
    sampled = []
    if args.eval_num_samples > 0:
        settings = SamplingSettings(
            args.eval_num_samples, args.max_completion_length, temperature=args.eval_temperature, top_p=args.eval_top_p
        )
        sampled = run(settings, derive_seed(seed, "sampled"), f"{description} (sampled)")
    return validation_metrics(greedy, sampled, args.eval_k, args.eval_answer_equivalence)
