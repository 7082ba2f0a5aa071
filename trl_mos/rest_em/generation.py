# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM generation backends: they turn tokenized prompts into sampled completions with the current policy.

A backend is given the model, its tokenizer, the `Accelerator` and its own settings, never the trainer
(option names as in TRL's `GRPOConfig`):

- [`TransformersBackend`] (default): batched `model.generate` with KV cache, left padding, prompts grouped by length
  ([`trl_mos.generation.generate_from_token_ids`]).
- [`ContinuousBatchingBackend`] (`use_transformers_continuous_batching=True`): `model.generate_batch`.
- [`~trl_mos.rest_em.vllm_backend.VLLMBackend`] (`use_vllm=True`), in its own module.

The trainer calls [`GenerationBackend.update_weights`] whenever the policy's weights change (after every M-step and
whenever it loads other weights), with the model object that now holds them.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.utils import logging

from ..generation import _cut_at_eos, generate_from_token_ids
from .weights import is_sharded


logger = logging.get_logger(__name__)


def is_vllm_available() -> bool:
    """Whether vLLM is installed (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


@dataclass(frozen=True)
class SamplingSettings:
    """How one generation pass samples.

    Args:
        num_samples (`int`): completions per prompt.
        max_new_tokens (`int`): longest completion.
        do_sample (`bool`, *optional*, defaults to `True`): sample; `False` is greedy decoding (then `num_samples`
            must be 1).
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature.
        top_k (`int`, *optional*, defaults to `0`): top-k filtering, `0` disables it.
        top_p (`float`, *optional*, defaults to `1.0`): nucleus filtering, `1.0` disables it.
    """

    num_samples: int
    max_new_tokens: int
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not self.do_sample and self.num_samples != 1:
            raise ValueError("Greedy decoding gives one completion per prompt; set `num_samples=1`.")

    def generation_config(self, eos_token_id: int | list[int], pad_token_id: int) -> GenerationConfig:
        """A `GenerationConfig` with every sampling option set explicitly, so that none is filled in from the model's
        own `generation_config` (e.g. a Hub model's default `top_k` or `repetition_penalty`)."""
        if self.do_sample:
            sampling = dict(do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        else:  # the global defaults, which greedy decoding ignores without warning
            sampling = dict(do_sample=False, temperature=1.0, top_k=50, top_p=1.0)
        return GenerationConfig(
            **sampling,
            num_beams=1,
            repetition_penalty=1.0,
            max_new_tokens=self.max_new_tokens,
            num_return_sequences=self.num_samples,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Runs the block with torch's generators seeded by `seed`, and restores their previous states afterwards (so the
    Trainer's random state, hence the M-step's data order, does not depend on how much was generated)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class GenerationBackend:
    """Generates completions for tokenized prompts with the current policy.

    Args:
        model ([`~transformers.PreTrainedModel`] or a wrapped model): the policy, as the trainer holds it (possibly
            wrapped by DDP, FSDP or DeepSpeed); replaced by [`update_weights`].
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer, with a pad token.
        accelerator ([`~accelerate.Accelerator`]): the processes and how the model is distributed over them.
    """

    def __init__(self, model: Any, tokenizer: Any, accelerator: Any):
        self.model = model
        self.tokenizer = tokenizer
        self.accelerator = accelerator

    @property
    def lockstep(self) -> bool:
        """Whether every process must call [`generate`] equally often with equally many prompts: with several processes
        over a sharded model (FSDP, DeepSpeed ZeRO-3) every forward pass gathers parameters from all of them.
        [`~trl_mos.rest_em.sharding.run_sharded_generation`] then pads with throw-away work. (The vLLM backend sets
        it to `True`: its server gathers the prompts of every process.)"""
        return self.accelerator.num_processes > 1 and is_sharded(self.accelerator)

    def eos_token_id(self) -> int | list[int]:
        """The end-of-sequence token id(s) generation stops at: the model's `generation_config`, else the tokenizer's."""
        model = self.accelerator.unwrap_model(self.model)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        return eos if eos is not None else self.tokenizer.eos_token_id

    def generate(self, prompt_ids: list[list[int]], settings: SamplingSettings, seed: int) -> list[list[list[int]]]:
        """Returns, for each prompt, `settings.num_samples` completions as token ids (cut after the first eos).

        Args:
            prompt_ids (`list[list[int]]`): the tokenized prompts.
            settings ([`SamplingSettings`]): how to sample.
            seed (`int`): the seed of this call; the same call with the same seed gives the same completions.
        """
        raise NotImplementedError

    def update_weights(self, model: Any | None = None) -> None:
        """Called by the trainer whenever the policy's weights changed (after an M-step or a reload).

        Args:
            model (*optional*): the model object that now holds them (the Trainer re-wraps its model in every
                `train()`); `None` keeps the current one.
        """
        if model is not None:
            self.model = model


class TransformersBackend(GenerationBackend):
    """Batched `model.generate` with KV cache (the default backend).

    Args:
        model, tokenizer, accelerator: see [`GenerationBackend`].
        batch_size (`int`, *optional*, defaults to `512`): completions per `generate` call (prompts are batched
            `max(1, batch_size // num_samples)` at a time).
        gradient_checkpointing_kwargs (`dict`, *optional*): how to turn activation checkpointing back on after
            generation, as the trainer uses it.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        accelerator: Any,
        batch_size: int = 512,
        gradient_checkpointing_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(model, tokenizer, accelerator)
        self.batch_size = batch_size
        self.gradient_checkpointing_kwargs = gradient_checkpointing_kwargs

    def generate(self, prompt_ids, settings, seed):
        config = settings.generation_config(self.eos_token_id(), self.tokenizer.pad_token_id)
        prompts_per_call = max(1, self.batch_size // settings.num_samples)
        # over a sharded model a process that is done keeps taking part in its peers' forward passes (`synced_gpus`)
        with unwrapped(self) as model, seeded(seed, self.accelerator.device):
            return generate_from_token_ids(
                model, self.tokenizer, prompt_ids, config, batch_size=prompts_per_call, synced_gpus=self.lockstep
            )


class ContinuousBatchingBackend(GenerationBackend):
    """transformers' continuous batching engine, `model.generate_batch`.

    Args:
        model, tokenizer, accelerator: see [`GenerationBackend`].
        config (`dict`, *optional*): keyword arguments of `transformers.generation.ContinuousBatchingConfig`
            (`max_memory_percent` defaults to 0.5, leaving room for the M-step, as `GRPOTrainer` does).
        gradient_checkpointing_kwargs (`dict`, *optional*): see [`TransformersBackend`].
        weight_sync ([`~trl_mos.rest_em.weight_sync.WeightSyncCheck`], *optional*): run this check (greedy
            completions against `model.generate`'s) before the first generation after every weight change.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        accelerator: Any,
        config: dict[str, Any] | None = None,
        gradient_checkpointing_kwargs: dict[str, Any] | None = None,
        weight_sync: Any | None = None,
    ):
        super().__init__(model, tokenizer, accelerator)
        if self.lockstep:
            raise ValueError(
                "transformers' continuous batching cannot generate over a model sharded on several processes (FSDP or "
                "DeepSpeed ZeRO-3): each process would run a different number of forward passes, and every one of "
                "them is a collective. Use the default backend (`use_transformers_continuous_batching=False`) or "
                "`use_vllm=True`."
            )
        from transformers.generation import ContinuousBatchingConfig

        self.config_kwargs = dict(config or {})
        self.config_kwargs.setdefault("max_memory_percent", 0.5)
        self.config_class = ContinuousBatchingConfig
        self.gradient_checkpointing_kwargs = gradient_checkpointing_kwargs
        self.weight_sync = weight_sync
        self.last_sync_report = None
        self._checked = False

    def update_weights(self, model: Any | None = None) -> None:
        super().update_weights(model)
        self._checked = False

    def generate(self, prompt_ids, settings, seed):
        if self.weight_sync is not None and not self._checked:
            greedy = lambda ids, n: [c[0] for c in self._generate(ids, SamplingSettings(1, n, do_sample=False), 0)]  # noqa: E731
            with unwrapped(self) as model:
                self.last_sync_report = self.weight_sync.run(
                    model, greedy, self.eos_token_id(), engine="continuous batching"
                )
        self._checked = True
        return self._generate(prompt_ids, settings, seed)

    def _generate(self, prompt_ids, settings, seed):
        config = settings.generation_config(self.eos_token_id(), self.tokenizer.pad_token_id)
        batching_config = self.config_class(**{"seed": seed, **self.config_kwargs})
        eos_ids = set(config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id])
        with unwrapped(self) as model, seeded(seed, self.accelerator.device):
            was_training = model.training
            model.eval()
            try:
                outputs = model.generate_batch(
                    [list(ids) for ids in prompt_ids],
                    generation_config=config,
                    continuous_batching_config=batching_config,
                    progress_bar=False,
                )
            finally:
                model.train(was_training)
        # results come back in input order, a prompt's samples next to each other
        completions = [_cut_at_eos(list(output.generated_tokens), eos_ids) for output in outputs.values()]
        if len(completions) != len(prompt_ids) * settings.num_samples:
            raise RuntimeError(
                f"Continuous batching returned {len(completions)} completions for {len(prompt_ids)} prompts x "
                f"{settings.num_samples} samples; some requests failed (see the log above)."
            )
        n = settings.num_samples
        return [completions[i * n : (i + 1) * n] for i in range(len(prompt_ids))]


def unwrapped(backend: GenerationBackend):
    """TRL's `unwrap_model_for_generation` on the backend's model: unwrapped from DDP/FSDP, ZeRO-3 parameters gathered,
    activation checkpointing off for the duration (and back on with the backend's settings)."""
    from trl.models.utils import unwrap_model_for_generation

    return unwrap_model_for_generation(
        backend.model,
        backend.accelerator,
        gradient_checkpointing_kwargs=getattr(backend, "gradient_checkpointing_kwargs", None),
    )
