# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Sharded generation across processes, with resumable shard files.

[`run_sharded_generation`] cuts the prompts into shards of `shard_size`, skips the shards already saved, hands the
others round-robin to the processes, samples each shard with its own seed, saves it atomically as JSON lines, and
returns every shard's payload (or, with `reduce`, a small summary of it) on every process.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm
from transformers.utils import logging

from .filtering import atomic_write_jsonl, derive_seed
from .generation import GenerationBackend, SamplingSettings


logger = logging.get_logger(__name__)


def shard_path(shard_dir: str, shard_index: int) -> str:
    """The file of shard `shard_index`."""
    return os.path.join(shard_dir, f"shard-{shard_index:05d}.jsonl")


def write_shard(path: str, payload: dict[str, Any]) -> None:
    """Saves a shard atomically as JSON lines: a header line (every key but `samples`, and `num_samples`), then one
    line per sample record."""
    samples = payload.get("samples")
    header = {k: v for k, v in payload.items() if k != "samples"}
    if samples is not None:
        header["num_samples"] = len(samples)
    atomic_write_jsonl(path, [header, *(samples or [])])


def read_shard(path: str) -> dict[str, Any] | None:
    """A shard written by [`write_shard`], or `None` if it is missing or incomplete."""
    try:
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline())
            samples = [json.loads(line) for line in f if line.strip()]
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    expected = header.pop("num_samples", None)
    if expected is not None:
        if len(samples) != expected:
            return None
        header["samples"] = samples
    return header


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
    reduce: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
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
        reduce (`Callable`, *optional*): with `shard_dir`, what travels between the processes: `reduce(payload)` (e.g.
            counts and the accepted samples) instead of the whole payload, which stays on disk. The main process
            then holds every shard file (the others send the files it cannot see).

    Returns:
        `list[dict]`: the payload (or its `reduce`) of every shard, in shard order, each with `shard`, `rank`, `seconds`
        (generation wall-clock time) and `num_tokens` (generated tokens) added.
    """
    accelerator = backend.accelerator
    if reduce is not None and shard_dir is None:
        raise ValueError("`reduce` keeps the shards on disk: give a `shard_dir`.")
    num_shards = math.ceil(len(prompt_ids) / shard_size)
    rank, world = accelerator.process_index, accelerator.num_processes

    def summary(payload: dict[str, Any]) -> dict[str, Any]:
        if reduce is None:
            return payload
        extras = {k: payload[k] for k in ("shard", "rank", "seconds", "num_tokens")}
        return {**reduce(payload), **extras}

    saved: dict[int, dict[str, Any]] = {}
    if shard_dir is not None and accelerator.is_main_process:
        for shard in range(num_shards):
            payload = read_shard(shard_path(shard_dir, shard))
            if payload is not None and payload.get("shard") == shard:
                saved[shard] = summary(payload)
    done = broadcast_object_list([sorted(saved)], from_process=0)[0] if world > 1 else sorted(saved)
    pending = [shard for shard in range(num_shards) if shard not in set(done)]
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
            write_shard(shard_path(shard_dir, shard), payload)
        produced.append(summary(payload))
        progress.update(1)
    progress.close()

    if world > 1:  # the main process adds the shards it read back, then everyone gets everything
        gathered = gather_object(produced)
        if reduce is not None:
            _send_missing_shards(
                accelerator, shard_dir, [p["shard"] for p in gathered] if accelerator.is_main_process else None
            )
        everything = (
            sorted([*gathered, *saved.values()], key=lambda p: p["shard"]) if accelerator.is_main_process else None
        )
        everything = broadcast_object_list([everything], from_process=0)[0]
    else:
        everything = sorted([*produced, *saved.values()], key=lambda p: p["shard"])
    if [p["shard"] for p in everything] != list(range(num_shards)):
        raise RuntimeError(
            f"{description}: expected shards 0..{num_shards - 1}, got {[p['shard'] for p in everything]}."
        )
    return everything


def _send_missing_shards(accelerator: Any, shard_dir: str, generated: list[int] | None) -> None:
    """Copies to the main process the shard files it cannot see (no shared file system): each process sends the files
    of the missing shards it generated, one collective call for all of them."""
    missing = None
    if accelerator.is_main_process:
        missing = [s for s in generated if not os.path.exists(shard_path(shard_dir, s))]
    missing = broadcast_object_list([missing], from_process=0)[0]
    if not missing:
        return
    mine = [read_shard(shard_path(shard_dir, s)) for s in missing if os.path.exists(shard_path(shard_dir, s))]
    received = gather_object([p for p in mine if p is not None] if not accelerator.is_main_process else [])
    if accelerator.is_main_process:
        for payload in received:
            write_shard(shard_path(shard_dir, payload["shard"]), payload)
