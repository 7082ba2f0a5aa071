# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The weight-sync check: does a generation engine generate with the weights the trainer just trained?

An engine that keeps its own copy of the weights (vLLM) can silently keep sampling from a stale policy after an M-step,
which turns self-training into repeated training on the first iteration's samples. [`check_weight_sync`] is a cheap
probe run after every weight push: it compares the engine's greedy completions of a few fixed prompts, and (where the
engine can score tokens) its log-probabilities of the training model's greedy completions, with the training model's
own. It works with any engine given as two functions, so vLLM (colocated or server) and transformers' continuous
batching share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)

# Largest per-token log-probability gap accepted by default: float32 engines match the training model to ~1e-6 (CPU
# kernels), 16-bit ones differ by rounding; a stale output head differs by several nats.
DEFAULT_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-3}
DEFAULT_16BIT_TOLERANCE = 0.5


class WeightSyncError(RuntimeError):
    """The generation engine does not generate with the training model's weights."""


@dataclass
class WeightSyncReport:
    """What [`check_weight_sync`] found.

    Args:
        engine (`str`): name of the engine checked.
        num_prompts (`int`): probe prompts.
        greedy_matches (`int`): prompts whose greedy completion is the training model's.
        max_logprob_gap (`float` or `None`): largest per-token gap between the engine's and the training model's
            log-probabilities of the training model's greedy completions (`None` if the engine cannot score).
        tolerance (`float`): the largest gap accepted.
        problems (`list[str]`): what differs, one line per problem; empty when the engine is in sync.
        completions (`list[list[int]]`): the engine's greedy completions of the probe prompts.
    """

    engine: str
    num_prompts: int
    greedy_matches: int
    max_logprob_gap: float | None
    tolerance: float
    problems: list[str] = field(default_factory=list)
    completions: list[list[int]] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.problems

    def metrics(self, prefix: str = "restem/weight_sync") -> dict[str, float]:
        """The report as metrics for `Trainer.log`."""
        metrics = {f"{prefix}/greedy_match": self.greedy_matches / max(1, self.num_prompts)}
        if self.max_logprob_gap is not None:
            metrics[f"{prefix}/max_logprob_gap"] = self.max_logprob_gap
        return metrics

    def message(self) -> str:
        gap = "n/a" if self.max_logprob_gap is None else f"{self.max_logprob_gap:.3g}"
        head = (
            f"Weight-sync check of {self.engine}: {self.greedy_matches}/{self.num_prompts} greedy completions equal the "
            f"training model's, largest log-prob gap {gap} (tolerance {self.tolerance:g})."
        )
        return "\n".join([head, *[f"  - {problem}" for problem in self.problems]])


def default_tolerance(dtype: torch.dtype) -> float:
    """The default log-prob tolerance of the check for an engine running in `dtype`."""
    return DEFAULT_TOLERANCE.get(dtype, DEFAULT_16BIT_TOLERANCE)


@torch.no_grad()
def reference_greedy(
    model: torch.nn.Module, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int | list[int]
) -> list[list[int]]:
    """The training model's greedy completions, one prompt at a time (no padding), cut after the first eos."""
    eos_ids = set(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id])
    device = next(model.parameters()).device
    completions = []
    for ids in prompt_ids:
        tokens = torch.tensor([list(ids)], device=device)
        for _ in range(max_new_tokens):
            next_token = int(model(input_ids=tokens).logits[0, -1].argmax())
            tokens = torch.cat([tokens, torch.tensor([[next_token]], device=device)], dim=1)
            if next_token in eos_ids:
                break
        completions.append(tokens[0, len(ids) :].tolist())
    return completions


@torch.no_grad()
def reference_logprobs(
    model: torch.nn.Module, prompt_ids: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    """For each prompt, the training model's log-probabilities over the vocabulary at every completion position
    (shape `(len(completion), vocab)`), teacher-forced on `completions`."""
    device = next(model.parameters()).device
    result = []
    for ids, completion in zip(prompt_ids, completions, strict=True):
        tokens = torch.tensor([list(ids) + list(completion)], device=device)
        logits = model(input_ids=tokens).logits[0, len(ids) - 1 : -1].float()
        result.append(logits.log_softmax(-1).cpu())
    return result


def check_weight_sync(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    engine_greedy: Callable[[list[list[int]], int], list[list[int]]],
    eos_token_id: int | list[int],
    engine_logprobs: Callable[[list[list[int]], list[list[int]]], list[list[float]]] | None = None,
    max_new_tokens: int = 16,
    tolerance: float | None = None,
    engine: str = "the generation engine",
    raise_on_mismatch: bool = True,
) -> WeightSyncReport:
    """Checks that an engine generates with `model`'s weights.

    For each probe prompt, the engine's greedy completion must equal `model`'s, except where the two part at a
    near-tie (the two tokens' log-probabilities under `model` closer than `tolerance`). With `engine_logprobs`, the
    engine's log-probability of every token of `model`'s greedy completions must also be within `tolerance` of
    `model`'s.

    Args:
        model (`torch.nn.Module`): the training model (unwrapped; eval mode is set for the check and restored).
        prompt_ids (`Sequence[Sequence[int]]`): a few fixed tokenized prompts.
        engine_greedy (`Callable`): `engine_greedy(prompt_ids, max_new_tokens)` returns the engine's greedy
            completion of each prompt, cut after the first eos.
        eos_token_id (`int` or `list[int]`): end-of-sequence token(s).
        engine_logprobs (`Callable`, *optional*): `engine_logprobs(prompt_ids, completions)` returns the engine's
            log-probability of each completion token, teacher-forced.
        max_new_tokens (`int`, *optional*, defaults to `16`): length of the probe completions.
        tolerance (`float`, *optional*): largest accepted log-prob gap. Defaults to [`default_tolerance`] of `model`'s
            dtype.
        engine (`str`, *optional*): name of the engine in messages.
        raise_on_mismatch (`bool`, *optional*, defaults to `True`): raise [`WeightSyncError`] if out of sync.

    Returns:
        [`WeightSyncReport`]: the findings.

    Example:

    ```python
    >>> report = check_weight_sync(model, prompt_ids, engine.greedy, eos_token_id=tokenizer.eos_token_id,
    ...                            engine_logprobs=engine.logprobs_of)
    >>> report.in_sync
    True
    ```
    """
    if not prompt_ids:
        raise ValueError("The weight-sync check needs at least one probe prompt.")
    prompt_ids = [list(ids) for ids in prompt_ids]
    dtype = next(model.parameters()).dtype
    tolerance = default_tolerance(dtype) if tolerance is None else tolerance
    was_training = model.training
    model.eval()
    try:
        expected = reference_greedy(model, prompt_ids, max_new_tokens, eos_token_id)
        got = [list(c) for c in engine_greedy(prompt_ids, max_new_tokens)]
        # score both continuations under the model, to tell a near-tie from a real difference
        ref_scores = reference_logprobs(model, prompt_ids, expected)
        problems: list[str] = []
        matches = 0
        for i, (want, have) in enumerate(zip(expected, got, strict=True)):
            if want == have:
                matches += 1
                continue
            position = next(
                (p for p, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), min(len(want), len(have))
            )
            if position < min(len(want), len(have)):
                scores = ref_scores[i][position]
                margin = float(scores[want[position]] - scores[have[position]])
                if margin <= tolerance:
                    continue  # the model itself is undecided there
                problems.append(
                    f"prompt {i}: greedy completions part at token {position}: training model {want[position]} "
                    f"(log-prob {float(scores[want[position]]):.4f}), {engine} {have[position]} (log-prob under the "
                    f"training model {float(scores[have[position]]):.4f}); training model {want}, {engine} {have}"
                )
            else:
                problems.append(f"prompt {i}: one completion stops early: training model {want}, {engine} {have}")
        gap = None
        if engine_logprobs is not None:
            engine_scores = engine_logprobs(prompt_ids, expected)
            gap = 0.0
            for i, (completion, scores) in enumerate(zip(expected, engine_scores, strict=True)):
                if not completion:
                    continue
                want = ref_scores[i].gather(-1, torch.tensor(completion)[:, None])[:, 0]
                diff = (torch.tensor([float(s) for s in scores]) - want).abs()
                worst = int(diff.argmax())
                gap = max(gap, float(diff[worst]))
                if float(diff[worst]) > tolerance:
                    problems.append(
                        f"prompt {i}: log-prob of token {worst} ({completion[worst]}) is {float(scores[worst]):.4f} in "
                        f"{engine}, {float(want[worst]):.4f} in the training model"
                    )
    finally:
        model.train(was_training)
    report = WeightSyncReport(engine, len(prompt_ids), matches, gap, tolerance, problems, got)
    if report.in_sync:
        logger.info(report.message())
    elif raise_on_mismatch:
        raise WeightSyncError(
            report.message() + "\nThe engine is generating with other weights than the ones just trained (a stale "
            "policy). Set `weight_sync_check=False` to skip this check, or `weight_sync_tolerance` if the engine's "
            "numerics legitimately differ more."
        )
    else:
        logger.warning(report.message())
    return report


# Fixed probe texts (plain text, so they mean the same to every tokenizer and need no chat template)
PROBE_TEXTS = (
    "Question: Tom has 3 boxes with 4 apples each. How many apples does he have?\nAnswer:",
    "def sorted_descending(numbers):",
    "The answer is",
    "12 + 30 =",
)


@dataclass
class WeightSyncCheck:
    """The weight-sync check as a backend runs it: fixed probe prompts and the check's settings.

    Args:
        prompt_ids (`list[list[int]]`): the tokenized probe prompts.
        max_new_tokens (`int`, *optional*, defaults to `16`): length of the greedy completions compared.
        tolerance (`float`, *optional*): see [`check_weight_sync`].
    """

    prompt_ids: list[list[int]]
    max_new_tokens: int = 16
    tolerance: float | None = None

    @classmethod
    def from_args(cls, args: Any, tokenizer: Any) -> WeightSyncCheck | None:
        """The check `args` (a [`ReSTEMConfig`]) asks for, or `None` when `weight_sync_check=False`."""
        if not getattr(args, "weight_sync_check", False):
            return None
        prompt_ids = [tokenizer(text)["input_ids"] for text in PROBE_TEXTS]
        return cls(prompt_ids, args.weight_sync_max_new_tokens, args.weight_sync_tolerance)

    def run(
        self,
        model: torch.nn.Module,
        engine_greedy: Callable[[list[list[int]], int], list[list[int]]],
        eos_token_id: int | list[int],
        engine_logprobs: Callable[[list[list[int]], list[list[int]]], list[list[float]]] | None = None,
        engine: str = "the generation engine",
    ) -> WeightSyncReport:
        """[`check_weight_sync`] on the probe prompts; raises [`WeightSyncError`] if out of sync."""
        return check_weight_sync(
            model,
            self.prompt_ids,
            engine_greedy,
            eos_token_id,
            engine_logprobs=engine_logprobs,
            max_new_tokens=self.max_new_tokens,
            tolerance=self.tolerance,
            engine=engine,
        )
