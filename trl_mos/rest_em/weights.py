# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The base weights every ReST^EM M-step starts from: a snapshot taken when the trainer is built, restored exactly
before each M-step, whatever holds the parameters (a plain model, a PEFT adapter, DeepSpeed ZeRO-3 partitions or
FSDP2 `DTensor` shards)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import torch


def is_dtensor(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is a `torch.distributed.tensor.DTensor` (an FSDP2 shard)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(tensor, DTensor)


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters the M-step trains: all of them for full fine-tuning, the adapter's with PEFT."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def reshard_fsdp_modules(model: torch.nn.Module) -> None:
    """Reshards every FSDP2 module of `model`: a forward pass (generation, validation) leaves the root module holding
    unsharded parameters, and a write into those would be thrown away by the next reshard (as `Trainer` does before
    it builds the optimizer)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without distributed
        return
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def _zero3(accelerator: Any) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def is_sharded(accelerator: Any) -> bool:
    """Whether the model's parameters are sharded over the processes (DeepSpeed ZeRO-3 or FSDP), so that every forward
    pass is a collective operation all processes take part in, and whole weights exist only when gathered."""
    from accelerate.utils import DistributedType

    return accelerator.state.distributed_type == DistributedType.FSDP or _zero3(accelerator)


@torch.no_grad()
def write_weights(accelerator: Any, model: torch.nn.Module, values: dict[str, torch.Tensor] | None) -> None:
    """Writes full (unsharded) tensors into the trainable parameters of `model`, whatever holds them.

    Only the main process needs `values` (the others pass `None`): DeepSpeed ZeRO-3 takes the main process's
    modification of the gathered parameters, FSDP2 scatters the main process's tensor to the shards
    (`distribute_tensor`), and plain or DDP replicas are broadcast from it. So one copy of the weights in host memory
    is enough for the whole job.

    Args:
        accelerator ([`~accelerate.Accelerator`]): how the model is distributed.
        model (`torch.nn.Module`): the model, wrapped or not.
        values (`dict[str, torch.Tensor]` or `None`): every trainable parameter's full value, by name (on the main
            process).
    """
    main = accelerator.is_main_process
    multi = accelerator.num_processes > 1
    unwrapped = accelerator.unwrap_model(model)
    reshard_fsdp_modules(unwrapped)
    parameters = trainable_parameters(unwrapped)
    if main and set(parameters) != set(values):
        missing, unexpected = sorted(set(parameters) - set(values)), sorted(set(values) - set(parameters))
        raise RuntimeError(
            f"The weights do not match the model's trainable parameters (missing: {missing[:5]}, unexpected: "
            f"{unexpected[:5]}); cannot write them."
        )
    if _zero3(accelerator):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(parameters.values()), modifier_rank=0):
            if main:
                for name, p in parameters.items():
                    p.copy_(values[name].to(p.device, p.dtype))
        return
    for name, p in parameters.items():
        if is_dtensor(p):
            from torch.distributed.tensor import distribute_tensor

            full = values[name] if main else torch.empty(p.shape, dtype=p.dtype)  # untouched pages: no host memory
            p.copy_(distribute_tensor(full.to(p.device, p.dtype), p.device_mesh, p.placements, src_data_rank=0))
        else:
            if main:
                p.copy_(values[name].to(p.device, p.dtype))
            if multi:
                torch.distributed.broadcast(p.data, src=0)


def read_saved_weights(path: str, names: list[str]) -> dict[str, torch.Tensor]:
    """The tensors of a model saved with `save_pretrained` in `path` (`model.safetensors`, sharded or not, or a PEFT
    `adapter_model.safetensors`), by the parameter names of the model in memory (PEFT's adapter name, e.g.
    `.default`, is left out of the saved names)."""
    import json

    from safetensors.torch import load_file

    files = [
        os.path.join(path, n)
        for n in ("model.safetensors", "adapter_model.safetensors")
        if os.path.exists(os.path.join(path, n))
    ]
    index = os.path.join(path, "model.safetensors.index.json")
    if not files and os.path.exists(index):
        with open(index) as f:
            files = [os.path.join(path, n) for n in sorted(set(json.load(f)["weight_map"].values()))]
    if not files:
        raise FileNotFoundError(f"No safetensors weights in {path}.")
    saved: dict[str, torch.Tensor] = {}
    for file in files:
        saved.update(load_file(file))
    values = {}
    for name in names:
        candidates = [name, re.sub(r"\.default(\.|$)", r"\1", name)]
        key = next((c for c in candidates if c in saved), None)
        if key is None:
            raise KeyError(f"{path} holds no weights for the parameter {name!r}.")
        values[name] = saved[key]
    return values


class BaseWeights:
    """A CPU copy of the trainable parameters of a model, and the way back to it.

    With full fine-tuning that is every parameter; with PEFT the adapter's initial weights (the frozen base is never
    changed). DeepSpeed ZeRO-3 partitions are gathered for the copy and written back through
    `deepspeed.zero.GatheredParameters`; FSDP2 `DTensor`s are gathered with `full_tensor()` and written back with
    `distribute_tensor` on their own mesh and placements, after every FSDP module is resharded. Only the main process
    keeps the copy.

    Args:
        accelerator ([`~accelerate.Accelerator`]): how the model is distributed.

    Example:

    ```python
    >>> base = BaseWeights(trainer.accelerator)
    >>> base.snapshot(trainer.model)
    >>> ...  # train
    >>> base.restore(trainer.model)  # exactly the weights of the snapshot
    ```
    """

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator
        self.weights: dict[str, torch.Tensor] | None = None
        self.names: list[str] | None = None

    def snapshot(self, model: torch.nn.Module) -> None:
        """Copies the trainable parameters of `model` to the CPU, on the main process only: [`write_weights`] needs
        them there alone, so a job holds one copy of the base in host memory, not one per process."""
        keep = self.accelerator.is_main_process
        with self._full_parameters(model) as parameters:
            self.names = sorted(parameters)
            self.weights = {n: p.detach().to("cpu", copy=True) for n, p in parameters.items()} if keep else None

    def digest(self) -> str | None:
        """A short hash of the snapshot (names, shapes, dtypes and the first values of every tensor), on the main
        process (`None` on the others): tells two base models apart without hashing every weight."""
        if self.weights is None:
            return None
        digest = hashlib.sha256()
        for name, tensor in sorted(self.weights.items()):
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.reshape(-1)[:1024].float().numpy().tobytes())
        return digest.hexdigest()[:16]

    def num_parameters(self) -> int | None:
        """How many values the snapshot holds (on the main process)."""
        return sum(t.numel() for t in self.weights.values()) if self.weights is not None else None

    def restore(self, model: torch.nn.Module) -> None:
        """Writes the snapshot back into `model` (see [`write_weights`])."""
        if self.names is None:
            raise RuntimeError("No snapshot of the base weights was taken.")
        parameters = trainable_parameters(self.accelerator.unwrap_model(model))
        if sorted(parameters) != self.names:
            raise RuntimeError(
                "The model's trainable parameters changed since the trainer was created; cannot restore the base."
            )
        write_weights(self.accelerator, model, self.weights)

    @contextlib.contextmanager
    def _full_parameters(self, model: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
        """Yields the trainable parameters, gathered if DeepSpeed ZeRO-3 partitions them, FSDP2's DTensors as full
        tensors."""
        parameters = trainable_parameters(self.accelerator.unwrap_model(model))
        if _zero3(self.accelerator):
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(parameters.values())):
                yield parameters
        else:
            yield {n: (p.full_tensor() if is_dtensor(p) else p) for n, p in parameters.items()}
