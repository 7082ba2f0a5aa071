# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The multi-GPU engines on CPU processes (torchrun, gloo), for the test scripts: DDP, FSDP2 and DeepSpeed ZeRO-3.

- **DDP**: what accelerate runs for `use_cpu=True` under torchrun.
- **FSDP2**: accelerate 1.15 switches to FSDP only for accelerator devices; with `use_cpu=True` (or on a machine
  without one) `fsdp=...` is silently dropped and DDP runs. [`force_fsdp_on_cpu`] makes `AcceleratorState` keep
  `DistributedType.FSDP` when the `Accelerator` is given an FSDP plugin on a multi-CPU run. It writes the type into
  `PartialState`'s shared state too, because every `AcceleratorState()` built later (`AcceleratedOptimizer` builds
  one) copies it from there; without that, `save_model` hangs with rank 0 alone in a DTensor collective.
  [`engine_of`] reads the engine off the prepared model, so a test that claims FSDP can check that it got it.
- **ZeRO-3**: DeepSpeed runs on CPU with `use_cpu=False` (accelerate only takes the DeepSpeed path then) and a gloo
  process group that [`prepare_engine`] sets up before `TrainingArguments` (see there); its first run JIT-compiles
  a shared-memory comm op with g++/ninja (about 40 s on an idle machine).

Usage in a script run by torchrun:

```python
from _distributed_cpu import engine_of, engine_training_args, prepare_engine

prepare_engine(engine)  # before the trainer is built
args = tiny_sft_config(output_dir, **engine_training_args(engine))
...
trainer.train()
assert engine_of(trainer) == engine
```
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from typing import Any


ENGINES = ("ddp", "fsdp2", "zero3")


def is_deepspeed_available() -> bool:
    """Whether DeepSpeed is installed (without importing it)."""
    return importlib.util.find_spec("deepspeed") is not None


def zero3_config() -> dict[str, Any]:
    """A DeepSpeed ZeRO-3 config for CPU processes: float32, no offload, every parameter partitioned (no threshold
    below which a parameter stays whole), so that the tiny model is really sharded; batch sizes from the Trainer."""
    return {
        "zero_optimization": {
            "stage": 3,
            "stage3_param_persistence_threshold": 0,
            "stage3_gather_16bit_weights_on_model_save": True,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
        },
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "zero_allow_untested_optimizer": True,
    }


def engine_training_args(engine: str) -> dict[str, Any]:
    """`TrainingArguments` overrides that select `engine` (one of `ENGINES`) on CPU processes with gloo (call
    [`prepare_engine`] first)."""
    if engine == "ddp":
        return dict(ddp_backend="gloo")
    if engine == "fsdp2":
        # full sharding (reshard_after_forward, FSDP2's default), so that forward passes outside training leave
        # modules resharded or not exactly as on GPUs
        return dict(ddp_backend="gloo", fsdp=True, fsdp_config={"version": 2, "reshard_after_forward": True})
    if engine == "zero3":
        # the process group `prepare_engine` set up (TrainingArguments would otherwise rebuild it without a backend)
        return dict(use_cpu=False, deepspeed=zero3_config(), accelerator_config={"use_configured_state": True})
    raise ValueError(f"Unknown engine {engine!r}; choose one of {ENGINES}.")


def prepare_engine(engine: str) -> None:
    """What `engine` needs before the trainer's arguments are built.

    - fsdp2: [`force_fsdp_on_cpu`].
    - zero3: the DeepSpeed process group with gloo. `TrainingArguments` sets DeepSpeed up with no backend, which on a
      machine without accelerator leaves accelerate's `PartialState` at one process (so DeepSpeed's
      `train_batch_size` check fails, and every rank would read the whole dataset); a `PartialState(backend="gloo")`
      created first, with `ACCELERATE_USE_DEEPSPEED`, counts the processes, and `use_configured_state` keeps it.
    """
    if engine == "fsdp2":
        force_fsdp_on_cpu()
    elif engine == "zero3":
        if not is_deepspeed_available():
            raise ImportError("The zero3 engine needs DeepSpeed: `pip install --no-build-isolation deepspeed`.")
        import os

        from accelerate import PartialState

        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
        PartialState(backend="gloo")


def force_fsdp_on_cpu() -> None:
    """Makes accelerate run FSDP on CPU processes: an `AcceleratorState` created with an FSDP plugin on a multi-CPU
    run gets `DistributedType.FSDP` and the plugin, and so does every `AcceleratorState` created after it.
    Idempotent."""
    from accelerate.state import AcceleratorState, DistributedType, PartialState

    original = AcceleratorState.__init__
    if getattr(original, "_forces_fsdp_on_cpu", False):
        return

    @functools.wraps(original)
    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            self.distributed_type = DistributedType.FSDP
            # later `AcceleratorState()` calls copy `distributed_type` from PartialState's shared state
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    __init__._forces_fsdp_on_cpu = True
    AcceleratorState.__init__ = __init__


def engine_of(trainer) -> str:
    """The engine the trainer's prepared model actually runs under: `"fsdp2"` (its parameters are DTensors),
    `"zero3"` (a DeepSpeed engine with ZeRO stage 3), `"ddp"` (a `DistributedDataParallel` wrapper) or
    `"single"`."""
    import torch

    wrapped = trainer.model_wrapped
    try:
        import deepspeed

        if isinstance(wrapped, deepspeed.DeepSpeedEngine):
            return "zero3" if wrapped.zero_optimization_stage() == 3 else f"zero{wrapped.zero_optimization_stage()}"
    except ImportError:
        pass
    if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        return "ddp"
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in trainer.model.parameters()):
        return "fsdp2"
    return "single"


@dataclasses.dataclass
class Job:
    """How a torchrun job ended: its exit code (`None` if it hung and was killed) and its output."""

    script: str
    returncode: int | None
    output: str

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def check(self) -> None:
        """Fails the test, with the output's tail, unless the job exited cleanly."""
        import pytest

        if self.hung:
            pytest.fail(f"HANG: {self.script} did not finish in time and was killed. Output tail:\n{self.tail()}")
        if self.returncode != 0:
            pytest.fail(f"{self.script} exited with {self.returncode}. Output tail:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        """The last lines of the output, without progress bars and warnings."""
        kept = [line for line in self.output.splitlines() if "examples/s]" not in line and "it/s]" not in line]
        return "\n".join(kept[-lines:])


def torchrun(script, *args, processes: int = 2, timeout: float = 420, env: dict[str, str] | None = None) -> Job:
    """Runs `python -m torch.distributed.run --standalone --nproc_per_node processes script *args` offline, one
    thread per process, with this directory on `PYTHONPATH`, and returns how it ended ([`Job`]).

    A job that runs past `timeout` seconds (a hang: ranks waiting in different collectives) is killed, the launcher
    and every rank, so that no hung rank outlives the test.
    """
    import contextlib
    import os
    import subprocess
    import sys

    import psutil

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command += [str(script), *map(str, args)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def kill():  # torchrun starts every rank in a session of its own: kill the ranks one by one, then the launcher
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        process.kill()

    try:
        output, _ = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        kill()
        output, _ = process.communicate()
        returncode = None
    except BaseException:  # e.g. pytest-timeout or Ctrl-C interrupting the wait: leave no rank behind
        kill()
        raise
    return Job(f"{os.path.basename(str(script))} {' '.join(map(str, args))}", returncode, output)
