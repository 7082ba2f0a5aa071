# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Launching a test script on several CPU processes with torchrun (gloo)."""

import os
import subprocess
import sys


def torchrun(script, *args, processes: int = 2) -> None:
    """Runs `python -m torch.distributed.run --standalone --nproc_per_node processes script *args` offline, one
    thread per process, and fails the test with the tail of its output if it does not exit cleanly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command += [str(script), *map(str, args)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
