# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The base weights every ReST^EM M-step starts from: a snapshot taken when the trainer is built, restored exactly
before each M-step, whatever holds the parameters (a plain model, a PEFT adapter, DeepSpeed ZeRO-3 partitions or
FSDP2 `DTensor` shards)."""

from __future__ import annotations

import contextlib
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


class BaseWeights:
    """A CPU copy of the trainable parameters of a model, and the way back to it.

    With full fine-tuning that is every parameter; with PEFT the adapter's initial weights (the frozen base is never
    changed). DeepSpeed ZeRO-3 partitions are gathered for the copy and written back through
    `deepspeed.zero.GatheredParameters`; FSDP2 `DTensor`s are gathered with `full_tensor()` and written back with
    `distribute_tensor` on their own mesh and placements.

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

    def snapshot(self, model: torch.nn.Module) -> None:
        """Copies the trainable parameters of `model` to the CPU."""
        with self._full_parameters(model, modify=False) as parameters:
            self.weights = {name: p.detach().to("cpu", copy=True) for name, p in parameters.items()}

    @torch.no_grad()
    def restore(self, model: torch.nn.Module) -> None:
        """Writes the snapshot back into `model`."""
        if self.weights is None:
            raise RuntimeError("No snapshot of the base weights was taken.")
        with self._full_parameters(model, modify=True) as parameters:
            if set(parameters) != set(self.weights):
                raise RuntimeError(
                    "The model's trainable parameters changed since the trainer was created; cannot restore the base."
                )
            for name, p in parameters.items():
                value = self.weights[name]
                if is_dtensor(p):
                    from torch.distributed.tensor import distribute_tensor

                    p.copy_(distribute_tensor(value.to(p.device, p.dtype), p.device_mesh, p.placements))
                else:
                    p.copy_(value.to(p.device, p.dtype))

    @contextlib.contextmanager
    def _full_parameters(self, model: torch.nn.Module, modify: bool) -> Iterator[dict[str, torch.Tensor]]:
        """Yields the trainable parameters, gathered if DeepSpeed ZeRO-3 partitions them (FSDP2's DTensors are
        gathered here for reading, and handled by [`restore`] for writing)."""
        parameters = trainable_parameters(self.accelerator.unwrap_model(model))
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None and plugin.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(parameters.values()), modifier_rank=0 if modify else None):
                yield parameters
        else:
            yield {n: (p.full_tensor() if is_dtensor(p) and not modify else p) for n, p in parameters.items()}
