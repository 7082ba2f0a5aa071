# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Two processes (torchrun, gloo, CPU): one shared stream, disjoint examples, identical policy, exact resume."""

import json
from pathlib import Path

import pytest
from torchrun_launcher import torchrun


SCRIPT = Path(__file__).with_name("mixing_distributed_script.py")
WORLD, BATCH, ACCUMULATION, STEPS = 2, 3, 2, 12


def _torchrun(output_dir, mode, variant="one-epoch"):
    torchrun(SCRIPT, output_dir, mode, variant, processes=WORLD)
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


@pytest.fixture(scope="module")
def epoch_runs(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("distributed-epochs")
    return {mode: _torchrun(output_dir, mode, "epochs") for mode in ("full", "first", "resume")}


@pytest.mark.slow
@pytest.mark.timeout(900)  # three 2-process runs of 15 steps
def test_two_process_resume_mid_epoch_two_matches_the_uninterrupted_run(epoch_runs):
    # 70 rows, 12 draws per step: 6 steps per epoch; 15 steps cross two epoch boundaries; stopped at step 8
    steps, stop, per_step = 15, 8, WORLD * ACCUMULATION * BATCH
    full = epoch_runs["full"]
    assert full[0]["epoch"] == pytest.approx(steps / 6)
    interleaved = [row for j in range(steps * ACCUMULATION) for r in full for row in r["batches"][j]]
    assert interleaved == full[0]["stream"][: steps * per_step]  # every epoch continues the one stream
    for rank in range(WORLD):
        full, first, resumed = epoch_runs["full"][rank], epoch_runs["first"][rank], epoch_runs["resume"][rank]
        assert len(first["batches"]) == stop * ACCUMULATION
        assert first["batches"] + resumed["batches"] == full["batches"]  # identical consumed examples per rank
        assert resumed["history"] == full["history"] and len(full["history"]) == 1 + steps // 4
        assert resumed["records"] == full["records"]
        assert resumed["strategy"] == full["strategy"]
        mos_metrics = [{k: v for k, v in run["logged"][-1].items() if k.startswith("mos/")} for run in (full, resumed)]
        assert mos_metrics[0] == mos_metrics[1]  # the consumed counts and the distribution logged at the end
