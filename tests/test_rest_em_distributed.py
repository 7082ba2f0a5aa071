# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM with two processes (torchrun, gloo, CPU): every prompt is sampled exactly once, by one process; both
processes keep and train on the same set; and the samples are the ones a single process draws."""

import json
from pathlib import Path

import pytest
from rest_em_distributed_script import run, single_thread
from torchrun_launcher import torchrun

from trl_mos.rest_em.filtering import read_jsonl


SCRIPT = Path(__file__).with_name("rest_em_distributed_script.py")
NUM_PROMPTS, SHARDS = 10, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def _torchrun(output_dir, processes=2):
    torchrun(SCRIPT, output_dir, processes=processes)
    return [json.load(open(output_dir / f"rank{r}.json")) for r in range(processes)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    two = tmp_path_factory.mktemp("two_processes")
    one = tmp_path_factory.mktemp("one_process")
    with single_thread():
        single = [run(str(one))]
    return {1: (single, one), 2: (_torchrun(two), two)}


@pytest.mark.slow
def test_every_prompt_is_sampled_exactly_once_across_processes(runs):
    ranks, _ = runs[2]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for iteration in range(2):
        shards_per_rank = [r["sampled"][2 * iteration : 2 * iteration + 2] for r in ranks]
        # shards are handed out round-robin: rank 0 gets shards 0 and 2, rank 1 shards 1 and 3
        assert shards_per_rank == [[SHARDS[0], SHARDS[2]], [SHARDS[1], SHARDS[3]]]
        sampled = sorted(i for shards in shards_per_rank for shard in shards for i in shard)
        assert sampled == list(range(NUM_PROMPTS))


@pytest.mark.slow
def test_both_processes_keep_and_train_on_the_same_set(runs):
    (rank0, rank1), output_dir = runs[2]
    assert len(rank0["kept"]) == 2 and rank0["kept"] == rank1["kept"]
    assert rank0["train_data"] == rank1["train_data"]
    assert rank0["kept"][0] == read_jsonl(output_dir / "run" / "iteration-1" / "kept.jsonl")
    assert rank0["history"] == rank1["history"]  # the validation results are shared too
    assert rank0["weights"] == rank1["weights"]


@pytest.mark.slow
def test_samples_do_not_depend_on_the_number_of_processes(runs):
    (single, one_dir), (_, two_dir) = runs[1], runs[2]
    assert single[0]["world_size"] == 1 and single[0]["sampled"][:4] == SHARDS
    # iteration 1 samples from the same base model with the same per-shard seeds
    one = read_jsonl(one_dir / "run" / "iteration-1" / "samples.jsonl")
    assert one == read_jsonl(two_dir / "run" / "iteration-1" / "samples.jsonl")
    assert len(one) == NUM_PROMPTS * 4


@pytest.mark.slow
def test_only_the_accepted_samples_travel_between_the_processes(runs):
    ranks, _ = runs[2]
    for rank in ranks:
        e_steps = [(sent, accepted) for sent, accepted in rank["gathered"]]
        assert e_steps  # every E-step gathered something
        # each process sends the accepted samples of its shards (the selection's candidates), never every sample
        assert all(sent == accepted for sent, accepted in e_steps), e_steps


@pytest.mark.slow
def test_one_host_copy_of_the_base_for_the_whole_job(runs):
    ranks, _ = runs[2]
    # the main process alone keeps the base weights; the others get them broadcast when they are restored
    assert [rank["base_copy"] for rank in ranks] == [True, False]
