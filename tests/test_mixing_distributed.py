# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Two processes (torchrun, gloo, CPU): one shared stream, disjoint examples, identical policy, exact resume."""

import json
from pathlib import Path

import pytest
from torchrun_launcher import torchrun


SCRIPT = Path(__file__).with_name("mixing_distributed_script.py")
WORLD, BATCH, ACCUMULATION, STEPS = 2, 3, 2, 12


def _torchrun(output_dir, mode):
    torchrun(SCRIPT, output_dir, mode, processes=WORLD)
    return [json.load(open(output_dir / f"rank{r}-{mode}.json")) for r in range(WORLD)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("distributed")
    return {mode: _torchrun(output_dir, mode) for mode in ("full", "first", "resume")}


@pytest.mark.slow
def test_two_processes_share_one_stream_and_take_disjoint_batches(runs):
    ranks = runs["full"]
    assert [r["world_size"] for r in ranks] == [WORLD, WORLD]
    assert ranks[0]["stream"] == ranks[1]["stream"]
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 1 + STEPS // 4
    assert ranks[0]["strategy"] == ranks[1]["strategy"]  # the policy (and its Adam state) is identical on both
    assert ranks[0]["records"] == ranks[1]["records"]
    stream = ranks[0]["stream"]
    micro_batches = STEPS * ACCUMULATION
    assert [len(r["batches"]) for r in ranks] == [micro_batches, micro_batches]
    # rank r's j-th micro-batch is global batch j * WORLD + r of the stream: every drawn example is trained on
    # exactly once, by exactly one rank
    interleaved = [row for j in range(micro_batches) for r in ranks for row in r["batches"][j]]
    assert interleaved == stream[: STEPS * ACCUMULATION * WORLD * BATCH]
    # the logged consumed counts cover both ranks
    assert sum(v for k, v in ranks[0]["logged"][-1].items() if k.startswith("mos/consumed/")) == len(interleaved)


@pytest.mark.slow
def test_two_process_stop_and_resume_matches_the_uninterrupted_run(runs):
    for rank in range(WORLD):
        full, first, resumed = runs["full"][rank], runs["first"][rank], runs["resume"][rank]
        assert first["batches"] + resumed["batches"] == full["batches"]
        assert resumed["history"] == full["history"]
        assert resumed["records"] == full["records"]
        assert resumed["strategy"] == full["strategy"]
