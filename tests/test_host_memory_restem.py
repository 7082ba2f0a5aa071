# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Host memory of the base-model copy `ReSTEMTrainer` keeps, on two CPU processes (issue 15, item 7), measured with
benchmarks/restem_host_memory.py."""

import json
from pathlib import Path

import pytest
from _distributed_cpu import torchrun


SCRIPT = Path(__file__).parents[1] / "benchmarks" / "restem_host_memory.py"
MIB = 2**20
# RSS a trainer's construction adds besides any copy of the model (datasets, tokenizer, Trainer state): 20-45 MiB
# per rank measured on 2026-12-02 (it varies with the machine's load); a bound above that
OTHER_ALLOCATIONS_PER_RANK = 40 * MIB
# Copies are whole: less than 1.5 copies of the model (plus the other allocations) means at most one. The model is made
# large (482 MiB) so that this bound stays far from both one copy plus noise and two copies.
MAX_COPIES = 1.5


@pytest.mark.slow
@pytest.mark.engines
@pytest.mark.timeout(600)
def test_restem_keeps_at_most_one_base_copy_per_node(tmp_path):
    """A 126 M-parameter model (482 MiB in float32) on 2 ranks of one node: constructing the trainer may add at most
    one copy of the model for the whole node (before issue 15's fix: one copy per rank, 2.2x the model in all)."""
    torchrun(SCRIPT, "--hidden-size", 1024, "--layers", 8, "--json", tmp_path / "memory.json", timeout=480).check()
    ranks = json.loads((tmp_path / "memory.json").read_text())
    assert len(ranks) == 2
    model_bytes = ranks[0]["model_bytes"]
    assert model_bytes > 400 * MIB  # large enough that a copy stands out from the other allocations
    added = [r["construction_added"] for r in ranks]
    assert sum(added) <= MAX_COPIES * model_bytes + len(ranks) * OTHER_ALLOCATIONS_PER_RANK, (
        f"constructing the trainer added {[round(a / MIB) for a in added]} MiB per rank for a "
        f"{model_bytes / MIB:.0f} MiB model"
    )
