# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The ReST^EM E-step: sample solutions for every problem (sharded over the processes, with the configured backend),
verify them, keep the accepted ones (capped per problem) and write the iteration's samples to disk."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from datasets import Dataset

from ..verifiers import VerifierSuite
from .filtering import (
    atomic_write_json,
    atomic_write_jsonl,
    count_samples,
    derive_seed,
    select_solutions,
    summarize_counts,
)
from .generation import ContinuousBatchingBackend, GenerationBackend, SamplingSettings, TransformersBackend
from .sharding import read_shard, run_sharded_generation, shard_path
from .weight_sync import WeightSyncCheck


PROMPTS_NAME = "prompts.jsonl"


def build_backend(args: Any, model: Any, tokenizer: Any, accelerator: Any) -> GenerationBackend:
    """The generation backend `args` asks for.

    Args:
        args ([`ReSTEMConfig`]): `use_vllm`, `use_transformers_continuous_batching` and the backends' settings.
        model: the policy as the trainer holds it (possibly wrapped).
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer.
        accelerator ([`~accelerate.Accelerator`]): the processes.
    """
    checkpointing_kwargs = getattr(args, "activation_checkpointing_kwargs", None)
    if checkpointing_kwargs is None:
        checkpointing_kwargs = getattr(args, "gradient_checkpointing_kwargs", None)
    if args.use_vllm:
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model, tokenizer, accelerator, args)
    if args.use_transformers_continuous_batching:
        return ContinuousBatchingBackend(
            model,
            tokenizer,
            accelerator,
            config=args.transformers_continuous_batching_config,
            gradient_checkpointing_kwargs=checkpointing_kwargs,
            weight_sync=WeightSyncCheck.from_args(args, tokenizer),
        )
    return TransformersBackend(
        model,
        tokenizer,
        accelerator,
        batch_size=args.generation_batch_size,
        gradient_checkpointing_kwargs=checkpointing_kwargs,
    )


class SampleVerifier:
    """Decodes and verifies completions into sample records (see [`~trl_mos.rest_em.filtering`]).

    A record's `status` is the verdict's (`"accepted"`, `"rejected"` or `"error"`: the verifier could not judge), and
    `accepted` what ReST^EM makes of it: `True`, `False`, or `None` for an error excluded from both (see
    `verifier_error_policy`). An unfinished sample (no end-of-sequence token) is rejected unless `keep_unfinished`.

    Args:
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): decodes the completions.
        suite ([`~trl_mos.verifiers.VerifierSuite`]): scores them.
        answer_extractor (`Callable[[str], str | None]`): extracts a completion's final answer (for maj@k).
        keep_unfinished (`bool`, *optional*, defaults to `False`): accept unfinished samples the verifiers accept.
        error_policy (`str`, *optional*, defaults to `"exclude"`): `"exclude"` or `"reject"` verifier errors.
    """

    def __init__(
        self,
        tokenizer: Any,
        suite: VerifierSuite,
        answer_extractor: Callable[[str], str | None],
        keep_unfinished: bool = False,
        error_policy: str = "exclude",
    ):
        self.tokenizer = tokenizer
        self.suite = suite
        self.answer_extractor = answer_extractor
        self.keep_unfinished = keep_unfinished
        self.error_policy = error_policy

    def __call__(
        self,
        dataset: Dataset,
        indices: list[int],
        completion_ids: list[list[list[int]]],
        eos_token_ids: Sequence[int],
        with_answers: bool = False,
    ) -> list[dict[str, Any]]:
        """The records of the completions of the problems `indices` of `dataset` (`completion_ids[i]`: the samples of
        problem `indices[i]`); with `with_answers`, each gets its extracted `answer`."""
        rows = dataset[indices]
        eos_ids = set(eos_token_ids)
        flat_ids = [list(ids) for samples in completion_ids for ids in samples]
        texts = self.tokenizer.batch_decode(flat_ids, skip_special_tokens=True)
        # every sample gets its problem's prompt and columns, as GRPOTrainer passes them to reward functions
        owner = [position for position, samples in enumerate(completion_ids) for _ in samples]
        prompts = [rows["prompt"][position] for position in owner]
        completions = [
            text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]
            for text, prompt in zip(texts, prompts, strict=True)
        ]
        columns = {
            key: [values[position] for position in owner]
            for key, values in rows.items()
            if key not in ("prompt", "completion")
        }
        verdicts = self.suite(prompts=prompts, completions=completions, completion_ids=flat_ids, **columns)
        samples, j = [], 0
        for position, per_prompt in enumerate(completion_ids):
            for sample_index, ids in enumerate(per_prompt):
                finished = bool(ids) and ids[-1] in eos_ids
                status, accepted, reason = self._decide(verdicts[j], finished)
                record = {
                    "prompt_index": indices[position],
                    "sample_index": sample_index,
                    "completion": texts[j],
                    "num_tokens": len(ids),
                    "finished": finished,
                    "status": status,
                    "accepted": accepted,
                    "scores": verdicts[j].scores,
                    "reason": reason,
                }
                if with_answers:
                    record["answer"] = self.answer_extractor(texts[j])
                samples.append(record)
                j += 1
        return samples

    def _decide(self, verdict: Any, finished: bool) -> tuple[str, bool | None, str]:
        """`(status, accepted, reason)` of one sample from its verdict."""
        status = verdict_status(verdict)
        reason = verdict.reason
        if status == "error":
            return status, (None if self.error_policy == "exclude" else False), reason
        if not finished and not self.keep_unfinished:
            unfinished = "unfinished: no end-of-sequence token within max_completion_length"
            return status, False, f"{unfinished}; {reason}" if reason else unfinished
        return status, status == "accepted", reason


def verdict_status(verdict: Any) -> str:
    """`"accepted"`, `"rejected"` or `"error"` (the verifier could not judge). Uses the verdict's `status` when it
    has one; otherwise an unaccepted verdict with a `"verifier error: "` reason from a member is an error."""
    status = getattr(verdict, "status", None)
    if status is not None:
        return status
    if verdict.accepted:
        return "accepted"
    reasons = getattr(verdict, "reasons", {}) or {}
    return "error" if any(str(r).startswith("verifier error: ") for r in reasons.values()) else "rejected"


def eos_ids_of(backend: GenerationBackend) -> list[int]:
    """The end-of-sequence ids of `backend`, as a list."""
    eos = backend.eos_token_id()
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def run_e_step(
    backend: GenerationBackend,
    process_shard: Callable[[int, list[int], list[list[list[int]]]], dict[str, Any]],
    prompt_ids: list[list[int]],
    prompts: Sequence[Any],
    args: Any,
    iteration: int,
    iteration_dir: str,
    is_main_process: bool,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One E-step: samples `args.num_samples_per_prompt` solutions per problem, verifies them and keeps at most
    `args.max_solutions_per_prompt` accepted ones per problem. The main process writes `samples.jsonl` (every sample,
    with its verdict and whether it was kept; streamed from the shard files), `kept.jsonl` (the M-step's
    prompt–completion pairs) and `summary.json` to `iteration_dir`, and the problems' prompts once per run to
    `prompts.jsonl` beside it (samples refer to them by `prompt_index`). Only the accepted samples and the counts of
    each shard travel between the processes.

    Args:
        backend ([`GenerationBackend`]): generates.
        process_shard (`Callable`): verifies one shard, `(shard, indices, completion_ids) -> {"samples": [...]}`.
        prompt_ids (`list[list[int]]`): the tokenized problems.
        prompts (`Sequence`): the problems' prompts (text or conversations), written next to the kept samples.
        args ([`ReSTEMConfig`]): sampling, sharding and filtering settings.
        iteration (`int`): the iteration (1-based), for seeds.
        iteration_dir (`str`): where the iteration's files go (shards under `shards/`).
        is_main_process (`bool`): whether this process writes the files.

    Returns:
        `tuple[list[dict], dict[str, float]]`: the kept `{prompt_index, sample_index, prompt, completion}` rows and the
        E-step statistics (see [`~trl_mos.rest_em.filtering.summarize_counts`], plus `generation_tokens_per_s`).
    """
    settings = SamplingSettings(
        args.num_samples_per_prompt,
        args.max_completion_length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
    )
    shard_dir = os.path.join(iteration_dir, "shards")
    payloads = run_sharded_generation(
        backend,
        prompt_ids,
        settings,
        shard_size=args.generation_shard_size,
        seed=derive_seed(args.seed, "e-step", iteration),
        process_shard=process_shard,
        shard_dir=shard_dir,
        description=f"ReST^EM iteration {iteration}: sampling",
        show_progress=not args.disable_tqdm,
        reduce=candidates_and_counts,  # every sample stays on disk; only the accepted ones travel
    )
    candidates = [record for payload in payloads for record in payload["accepted"]]
    kept = select_solutions(
        candidates, args.max_solutions_per_prompt, args.deduplicate_solutions, seed=args.seed, iteration=iteration
    )
    stats = summarize_counts([payload["counts"] for payload in payloads], kept)
    seconds_per_rank: dict[int, float] = {}
    for payload in payloads:
        seconds_per_rank[payload["rank"]] = seconds_per_rank.get(payload["rank"], 0.0) + payload["seconds"]
    wall = max(seconds_per_rank.values())
    stats["generation_tokens_per_s"] = stats["completion_tokens"] / wall if wall > 0 else 0.0
    kept_rows = [
        {
            "prompt_index": r["prompt_index"],
            "sample_index": r["sample_index"],
            "prompt": prompts[r["prompt_index"]],
            "completion": r["completion"],
        }
        for r in kept
    ]
    if is_main_process:
        kept_ids = {(r["prompt_index"], r["sample_index"]) for r in kept}
        prompts_path = os.path.join(os.path.dirname(iteration_dir), PROMPTS_NAME)
        if not os.path.exists(prompts_path):  # the problems, once per run: samples refer to them by index
            atomic_write_jsonl(prompts_path, ({"prompt_index": i, "prompt": p} for i, p in enumerate(prompts)))
        atomic_write_jsonl(
            os.path.join(iteration_dir, "samples.jsonl"),
            (
                {**r, "kept": (r["prompt_index"], r["sample_index"]) in kept_ids}
                for shard in range(len(payloads))
                for r in read_shard(shard_path(shard_dir, shard))["samples"]
            ),
        )
        atomic_write_jsonl(os.path.join(iteration_dir, "kept.jsonl"), kept_rows)
        atomic_write_json(os.path.join(iteration_dir, "summary.json"), {"iteration": iteration, **stats})
    return kept_rows, stats


def candidates_and_counts(payload: dict[str, Any]) -> dict[str, Any]:
    """What a shard of the E-step sends to the other processes: its counts and its accepted samples (the candidates
    of the selection), not every sample."""
    accepted = [
        {key: r[key] for key in ("prompt_index", "sample_index", "completion", "accepted")}
        for r in payload["samples"]
        if r["accepted"]
    ]
    return {"accepted": accepted, "counts": count_samples(payload["samples"])}
