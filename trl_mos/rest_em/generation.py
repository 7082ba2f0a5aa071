# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM E-step: generation backends, and sharded generation across processes with resumable shard files.

Backends (option names as in TRL's `GRPOConfig`):

- [`TransformersBackend`] (default): batched `model.generate` with KV cache, left padding, prompts grouped by length
  ([`trl_mos.generation.generate_from_token_ids`]).
- [`ContinuousBatchingBackend`] (`use_transformers_continuous_batching=True`): `model.generate_batch`.
- [`VLLMBackend`] (`use_vllm=True`): TRL's [`~trl.generation.vllm_generation.VLLMGeneration`], colocated or server.

[`run_sharded_generation`] cuts the prompts into shards of `shard_size`, skips the shards already saved, hands the
others round-robin to the processes, samples each shard with its own seed, saves it atomically, and returns every
shard's payload on every process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm
from transformers import GenerationConfig
from transformers.utils import logging

from ..generation import generate_from_token_ids
from .filtering import atomic_write_json, derive_seed, read_json


if TYPE_CHECKING:
    from .trainer import ReSTEMTrainer


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


def _unwrapped(trainer: ReSTEMTrainer):
    """TRL's `unwrap_model_for_generation` on the trainer's model: unwrapped from DDP/FSDP, ZeRO-3 parameters gathered,
    activation checkpointing off for the duration (and back on with the trainer's settings)."""
    from trl.models.utils import unwrap_model_for_generation

    args = trainer.args
    checkpointing_kwargs = getattr(args, "activation_checkpointing_kwargs", None)
    if checkpointing_kwargs is None:
        checkpointing_kwargs = getattr(args, "gradient_checkpointing_kwargs", None)
    return unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gradient_checkpointing_kwargs=checkpointing_kwargs
    )


class GenerationBackend:
    """Generates completions for tokenized prompts with the trainer's current policy.

    Args:
        trainer ([`ReSTEMTrainer`]): the trainer whose model generates.
    """

    #: Whether every process must call `generate` equally often with equally many prompts (collective backends).
    lockstep: bool = False

    def __init__(self, trainer: ReSTEMTrainer):
        self.trainer = trainer

    @property
    def tokenizer(self):
        return self.trainer._tokenizer

    def eos_token_id(self) -> int | list[int]:
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        return eos if eos is not None else self.tokenizer.eos_token_id

    def generate(self, prompt_ids: list[list[int]], settings: SamplingSettings, seed: int) -> list[list[list[int]]]:
        """Returns, for each prompt, `settings.num_samples` completions as token ids (cut after the first eos)."""
        raise NotImplementedError

    def update_weights(self) -> None:
        """Called when the policy's weights changed (after an M-step or a reload)."""


class TransformersBackend(GenerationBackend):
    """Batched `model.generate` with KV cache (the default backend)."""

    def generate(self, prompt_ids, settings, seed):
        trainer = self.trainer
        config = settings.generation_config(self.eos_token_id(), self.tokenizer.pad_token_id)
        prompts_per_call = max(1, trainer.args.generation_batch_size // settings.num_samples)
        with (
            _unwrapped(trainer) as model,
            seeded(seed, trainer.accelerator.device),
        ):
            return generate_from_token_ids(model, self.tokenizer, prompt_ids, config, batch_size=prompts_per_call)


class ContinuousBatchingBackend(GenerationBackend):
    """transformers' continuous batching engine, `model.generate_batch`."""

    def __init__(self, trainer):
        super().__init__(trainer)
        from transformers.generation import ContinuousBatchingConfig

        self.config_kwargs = dict(trainer.args.transformers_continuous_batching_config or {})
        self.config_kwargs.setdefault("max_memory_percent", 0.5)  # leave room for the M-step, as GRPOTrainer does
        self.config_class = ContinuousBatchingConfig

    def generate(self, prompt_ids, settings, seed):
        trainer = self.trainer
        config = settings.generation_config(self.eos_token_id(), self.tokenizer.pad_token_id)
        batching_config = self.config_class(**{"seed": seed, **self.config_kwargs})
        eos_ids = set(config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id])
        with (
            _unwrapped(trainer) as model,
            seeded(seed, trainer.accelerator.device),
        ):
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


class VLLMBackend(GenerationBackend):
    """TRL's `VLLMGeneration`, colocated in every process or on a `trl vllm-serve` server."""

    lockstep = True  # server mode gathers the prompts of every process in each call

    def __init__(self, trainer):
        super().__init__(trainer)
        if not is_vllm_available():
            raise ImportError(
                "`use_vllm=True` needs vLLM, which is not installed. Install it with `pip install trl-mos[vllm]`."
            )
        from trl.generation.vllm_generation import VLLMGeneration

        args = trainer.args
        self.vllm = VLLMGeneration(
            model=trainer.model,
            accelerator=trainer.accelerator,
            processing_class=trainer.processing_class,
            mode=args.vllm_mode,
            server_base_url=args.vllm_server_base_url,
            server_host=args.vllm_server_host,
            server_port=args.vllm_server_port,
            server_timeout=args.vllm_server_timeout,
            group_port=args.vllm_group_port,
            tensor_parallel_size=args.vllm_tensor_parallel_size,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            max_model_length=args.vllm_max_model_length,
            enable_sleep_mode=args.vllm_enable_sleep_mode,
            model_impl=args.vllm_model_impl,
            trust_remote_code=args.trust_remote_code,
            max_completion_length=args.max_completion_length,
        )
        self._synced = False

    def update_weights(self):
        self._synced = False

    def generate(self, prompt_ids, settings, seed):
        if not self._synced:  # the engine starts from the checkpoint on disk, not from the (reset) training weights
            self.vllm.sync_weights()
            self._synced = True
        self.vllm.temperature = settings.temperature if settings.do_sample else 0.0
        self.vllm.top_k = settings.top_k if settings.do_sample else 0
        self.vllm.top_p = settings.top_p if settings.do_sample else 1.0
        self.vllm.max_completion_length = settings.max_new_tokens
        n = settings.num_samples
        repeated = [list(ids) for ids in prompt_ids for _ in range(n)]
        _, completion_ids, _, _ = self.vllm.generate(prompts=repeated, images=None, num_generations=n)
        return [[list(c) for c in completion_ids[i * n : (i + 1) * n]] for i in range(len(prompt_ids))]


def _cut_at_eos(token_ids: list[int], eos_ids: set[int]) -> list[int]:
    for position, token_id in enumerate(token_ids):
        if token_id in eos_ids:
            return token_ids[: position + 1]
    return token_ids


def build_backend(trainer: ReSTEMTrainer) -> GenerationBackend:
    """The generation backend `trainer.args` asks for."""
    if trainer.args.use_vllm:
        return VLLMBackend(trainer)
    if trainer.args.use_transformers_continuous_batching:
        return ContinuousBatchingBackend(trainer)
    return TransformersBackend(trainer)


# ----------------------------------------------------------------------------------------------------------------------
# Sharded generation


def shard_path(shard_dir: str, shard_index: int) -> str:
    """The file of shard `shard_index`."""
    return os.path.join(shard_dir, f"shard-{shard_index:05d}.json")


def run_sharded_generation(
    backend: GenerationBackend,
    prompt_ids: list[list[int]],
    settings: SamplingSettings,
    shard_size: int,
    seed: int,
    process_shard: Callable[[int, list[int], list[list[list[int]]]], dict[str, Any]],
    shard_dir: str | None = None,
    description: str = "Generating",
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Generates for every prompt exactly once, spread over the processes, and returns every shard on every process.

    Shard `s` holds prompts `[s * shard_size, (s + 1) * shard_size)` and is sampled with the seed
    `derive_seed(seed, "shard", s)`, so the samples depend neither on the number of processes nor on which process
    generated them. With `shard_dir`, every finished shard is saved there atomically and shards already saved (as seen
    by the main process) are read back instead of generated again.

    Args:
        backend ([`GenerationBackend`]): generates token ids.
        prompt_ids (`list[list[int]]`): every tokenized prompt, identical on all processes.
        settings ([`SamplingSettings`]): how to sample.
        shard_size (`int`): prompts per shard.
        seed (`int`): seed of this generation pass (e.g. derived from the run's seed and the iteration).
        process_shard (`Callable`): `process_shard(shard_index, prompt_indices, completion_ids)` returns the shard's
            JSON-serialisable payload (e.g. decoded and verified samples); it runs on the process that generated it.
        shard_dir (`str`, *optional*): where shards are saved; `None` keeps them in memory only.
        description (`str`, *optional*, defaults to `"Generating"`): progress bar label.
        show_progress (`bool`, *optional*, defaults to `True`): show a progress bar on the main process.

    Returns:
        `list[dict]`: the payload of every shard, in shard order, each with `shard`, `rank`, `seconds` (generation
        wall-clock time) and `num_tokens` (generated tokens) added.
    """
    accelerator = backend.trainer.accelerator
    num_shards = math.ceil(len(prompt_ids) / shard_size)
    saved: dict[int, dict[str, Any]] = {}
    if shard_dir is not None and accelerator.is_main_process:
        for shard in range(num_shards):
            payload = read_json(shard_path(shard_dir, shard))
            if payload is not None and payload.get("shard") == shard:
                saved[shard] = payload
    done = (
        broadcast_object_list([sorted(saved)], from_process=0)[0] if accelerator.num_processes > 1 else sorted(saved)
    )
    pending = [shard for shard in range(num_shards) if shard not in set(done)]
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = pending[rank::world]
    rounds = math.ceil(len(pending) / world) if backend.lockstep else len(mine)
    if done and accelerator.is_main_process:
        logger.info(f"{description}: {len(done)} of {num_shards} shards already saved, generating {len(pending)}.")

    produced = []
    progress = tqdm(  # the main process's shards: all processes get about as many
        total=len(mine),
        desc=description,
        unit="shard",
        disable=not (show_progress and accelerator.is_main_process),
        leave=False,
    )
    for round_index in range(rounds):
        if round_index < len(mine):
            shard = mine[round_index]
            indices = list(range(shard * shard_size, min((shard + 1) * shard_size, len(prompt_ids))))
        else:  # lockstep padding: take part in the collective call with a throwaway copy of the last shard's prompts
            shard, indices = None, list(range(max(0, len(prompt_ids) - shard_size), len(prompt_ids)))
        if backend.lockstep and len(indices) < shard_size:  # every process sends equally many prompts
            indices = indices + [indices[-1]] * (shard_size - len(indices))
        start = time.perf_counter()
        completions = backend.generate([prompt_ids[i] for i in indices], settings, derive_seed(seed, "shard", shard))
        seconds = time.perf_counter() - start
        if shard is None:
            continue
        size = min(shard_size, len(prompt_ids) - shard * shard_size)
        indices, completions = indices[:size], completions[:size]
        payload = process_shard(shard, indices, completions)
        payload.update(
            shard=shard, rank=rank, seconds=seconds, num_tokens=sum(len(c) for per in completions for c in per)
        )
        if shard_dir is not None:
            atomic_write_json(shard_path(shard_dir, shard), payload)
        produced.append(payload)
        progress.update(1)
    progress.close()

    gathered = gather_object(produced) if world > 1 else produced
    if world > 1:  # the main process adds the shards it read back, then everyone gets everything
        everything = (
            sorted([*gathered, *saved.values()], key=lambda p: p["shard"]) if accelerator.is_main_process else None
        )
        everything = broadcast_object_list([everything], from_process=0)[0]
    else:
        everything = sorted([*gathered, *saved.values()], key=lambda p: p["shard"])
    if [p["shard"] for p in everything] != list(range(num_shards)):
        raise RuntimeError(
            f"{description}: expected shards 0..{num_shards - 1}, got {[p['shard'] for p in everything]}."
        )
    return everything
