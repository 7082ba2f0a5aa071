# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Mixture-of-Skills with packed training rows: every packed row holds one skill; training resumes exactly."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTTrainer
from trl.data_utils import pack_dataset

from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig, pack_within_skills
from trl_mos.tasks import make_skill_datasets
from trl_mos.testing import build_tiny_model, tiny_sft_config


SIZES = {"copy": 48, "reverse": 24, "sort": 12, "add": 8}
PACKED = dict(packing=True, dataset_kwargs={"skip_prepare_dataset": True}, max_length=48)
FAST_MOS = dict(
    reward=["cossim", "diff"],
    update_steps=3,
    cossim_probe_size=4,
    diff_probe_size=2,
    probe_batch_size=3,
    policy_learning_rate=0.05,
    policy_inner_steps=10,
)


@pytest.fixture(scope="module")
def skills():
    return make_skill_datasets(seed=0, sizes=SIZES, num_test_per_skill=4)["train"]


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


class TrainedTokens(TrainerCallback):
    """Records the token ids of every training forward pass (a padding-free batch is one flattened row)."""

    def __init__(self, trainer):
        self.batches: list[list[int]] = []
        trainer.model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if module.training and torch.is_grad_enabled():
            assert kwargs["input_ids"].shape[0] == 1 and "attention_mask" not in kwargs
            self.batches.append(kwargs["input_ids"][0].tolist())


def make_trainer(output_dir, train, tokenizer, config=None, **overrides):
    args = tiny_sft_config(output_dir, **{"max_steps": 8, "per_device_train_batch_size": 3, **PACKED, **overrides})
    trainer = SFTTrainer(
        model=build_tiny_model(tokenizer, seed=0), args=args, train_dataset=train, processing_class=tokenizer
    )
    callback = MixtureOfSkillsCallback(trainer, config or MoSConfig(**FAST_MOS))
    trainer.add_callback(callback)
    return trainer, callback


def test_pack_within_skills_keeps_the_skill_and_never_mixes_skills():
    data = Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5], [6], [7, 8, 9]], "skill": ["a", "b", "a", "b", "a"]})
    packed = pack_within_skills(data, lambda rows, name: pack_dataset(rows, seq_length=4))
    assert packed.features["skill"].names == ["a", "b"]
    assert packed["input_ids"] == [[7, 8, 9], [1, 2, 4, 5], [3, 6]]  # bfd: the longest first
    assert packed["skill"] == [0, 0, 1] and packed["seq_lengths"] == [[3], [2, 2], [1, 1]]
    assert data.column_names == ["input_ids", "skill"] and len(data) == 5  # the input is untouched


def test_packed_rows_never_mix_skills(tmp_path, tiny_tokenizer, skills):
    # the unpacked preparation of the same data tells which skill every tokenized example belongs to
    unpacked = SFTTrainer(
        model=build_tiny_model(tiny_tokenizer),
        args=tiny_sft_config(tmp_path / "unpacked", max_length=48),
        train_dataset=skills,
        processing_class=tiny_tokenizer,
    ).train_dataset
    skill_of = {tuple(ids): skill for ids, skill in zip(unpacked["input_ids"], unpacked["skill"], strict=True)}
    trainer, callback = make_trainer(tmp_path, skills, tiny_tokenizer)
    packed = trainer.train_dataset
    assert set(packed.column_names) >= {"input_ids", "labels", "seq_lengths", "skill"}
    assert len(packed) < len(unpacked)
    seen = []
    for row in range(len(packed)):
        ids, lengths = packed[row]["input_ids"], packed[row]["seq_lengths"]
        assert sum(lengths) == len(ids) <= 48
        starts = np.cumsum([0] + lengths)
        examples = [tuple(ids[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        assert {skill_of[example] for example in examples} == {callback.skill_index.skill_ids[row]}
        seen += examples
    assert sorted(seen) == sorted(skill_of)  # every example packed exactly once
    np.testing.assert_array_equal(callback._row_tokens, [len(ids) for ids in packed["input_ids"]])


def test_mos_with_packing_trains_logs_tokens_and_resumes_exactly(tmp_path, tiny_tokenizer, skills):
    checkpoints = dict(save_strategy="steps", save_steps=4, logging_steps=4)
    full, full_callback = make_trainer(tmp_path / "full", skills, tiny_tokenizer, **checkpoints)
    full_tokens = TrainedTokens(full)
    full.train()
    assert len(full_callback.records) == 1 + 8 // 3 and full_callback.records[-1]["probabilities"] != {
        name: 0.25 for name in SIZES
    }
    last = [entry for entry in full.state.log_history if "loss" in entry][-1]
    consumed_tokens = sum(last[f"mos/consumed_tokens/{name}"] for name in SIZES)
    assert consumed_tokens == sum(len(batch) for batch in full_tokens.batches)  # every trained token, no padding
    assert sum(last[f"mos/consumed/{name}"] for name in SIZES) == 8 * 3

    first, _ = make_trainer(tmp_path / "split", skills, tiny_tokenizer, **checkpoints)
    first.add_callback(StopAt(4))  # the same learning-rate schedule as the full run
    first_tokens = TrainedTokens(first)
    first.train()
    resumed, resumed_callback = make_trainer(tmp_path / "split", skills, tiny_tokenizer, **checkpoints)
    resumed_tokens = TrainedTokens(resumed)
    resumed.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-4"))
    assert first_tokens.batches + resumed_tokens.batches == full_tokens.batches
    assert resumed_callback.records == full_callback.records
    resumed_last = [entry for entry in resumed.state.log_history if "loss" in entry][-1]
    assert {k: v for k, v in resumed_last.items() if k.startswith("mos/")} == {
        k: v for k, v in last.items() if k.startswith("mos/")
    }
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


# with the loss on every token, each packed example's first token is a label the probes must not predict
@pytest.mark.parametrize(("attention", "completion_only_loss"), [("sdpa", False), ("eager", True)])
def test_packed_probes_keep_the_packed_examples_apart_one_row_per_batch_row(
    tmp_path, tiny_tokenizer, skills, attention, completion_only_loss
):
    from trl_mos.mixing.rewards import _per_example_nll

    trainer, callback = make_trainer(tmp_path, skills, tiny_tokenizer, completion_only_loss=completion_only_loss)
    trainer.model.set_attn_implementation(attention)
    runner = type(callback.runner)(trainer, "skill", batch_size=3)
    packed = trainer.train_dataset
    rows = [row for row in range(len(packed)) if len(packed[row]["seq_lengths"]) > 1][:7]
    assert len(rows) == 7  # rows that pack several examples, in batches of 3 with padding
    inputs, _, spans = runner._collate(rows[:3])
    assert inputs["input_ids"].shape[0] == 3 and "attention_mask" not in inputs and "cu_seq_lens_q" not in inputs
    per_row = runner.run(rows, hidden=True, nll=True)

    # every packed example alone, unpadded: its mean hidden state and its NLL, summed back per packed row
    model = trainer.model.eval()
    expected = []
    with torch.no_grad():
        for row in rows:
            ids, labels, lengths = (packed[row][c] for c in ("input_ids", "labels", "seq_lengths"))
            starts = np.cumsum([0] + lengths).tolist()
            hidden_sum, nll = 0, torch.zeros(2, dtype=torch.float64)
            for start, end in zip(starts[:-1], starts[1:], strict=True):
                outputs = model(input_ids=torch.tensor([ids[start:end]]), output_hidden_states=True)
                hidden_sum = hidden_sum + outputs.hidden_states[-1][0].double().sum(0)
                nll += _per_example_nll(outputs.logits.double(), torch.tensor([labels[start:end]]))[0]
            expected.append(torch.cat([hidden_sum / len(ids), nll]))
    torch.testing.assert_close(per_row, torch.stack(expected), rtol=1e-5, atol=1e-5)

    # the trainer's own collation (one flattened row per batch, split back) gives the same results
    runner.collator, runner._packed_rows = trainer.data_collator, False
    assert runner._collate(rows[:3])[0]["input_ids"].shape[0] == 1
    torch.testing.assert_close(runner.run(rows, hidden=True, nll=True), per_row, rtol=1e-5, atol=1e-5)


def test_packed_probes_stay_flattened_under_flash_attention(tmp_path, tiny_tokenizer, skills):
    trainer, callback = make_trainer(tmp_path, skills, tiny_tokenizer)
    trainer.model.config._attn_implementation = "flash_attention_2"  # only read, never run here
    runner = type(callback.runner)(trainer, "skill", batch_size=3)
    assert runner.collator is trainer.data_collator and not runner._packed_rows
    assert callback.runner._packed_rows  # sdpa, the tiny model's attention


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_process_packed_run_resumes_exactly(tmp_path):
    from torchrun_launcher import torchrun

    torchrun(Path(__file__).with_name("mixing_packing_script.py"), tmp_path, processes=2)
    runs = {
        mode: [json.load(open(tmp_path / f"rank{r}-{mode}.json")) for r in range(2)]
        for mode in ("full", "first", "resume")
    }
    for rank in range(2):
        full, first, resumed = runs["full"][rank], runs["first"][rank], runs["resume"][rank]
        assert len(full["batches"]) == 8 and full["world_size"] == 2
        assert first["batches"] + resumed["batches"] == full["batches"]
        assert resumed["records"] == full["records"] and resumed["logged"][-1] == full["logged"][-1]
        # every batch is two whole packed rows, of the skills the sampler drew for them
        assert full["row_skills"] == full["stream_skills"] and resumed["row_skills"] == resumed["stream_skills"]
    assert runs["full"][0]["records"] == runs["full"][1]["records"]
    assert runs["full"][0]["batches"] != runs["full"][1]["batches"]  # the ranks train on different rows


def test_consumed_tokens_follow_the_rows_the_sampler_drew():
    from trl_mos.mixing import SkillIndex, SkillSampler

    index = SkillIndex(names=["a", "b", "c"], skill_ids=np.repeat(np.arange(3), [50, 7, 3]))
    sampler = SkillSampler(index, [0.5, 0.3, 0.2], seed=0, epoch_length=60)
    sampler.set_probabilities([0.2, 0.3, 0.5], 100)
    callback = MixtureOfSkillsCallback.__new__(MixtureOfSkillsCallback)  # only the bookkeeping is exercised
    callback.sampler, callback.skill_index = sampler, index
    tokens, consumed, totals = np.arange(60) * 3 + 1, np.zeros(3, dtype=np.int64), np.zeros(3)
    for start, end in [(0, 37), (37, 100), (100, 401)]:  # several rounds of every skill's permutation
        counts = sampler.skill_counts(start, end)
        for skill in range(3):
            totals[skill] += tokens[
                callback._skill_rows(skill, consumed[skill], consumed[skill] + counts[skill])
            ].sum()
        consumed += counts
    rows = sampler.rows_at(0, 401)
    np.testing.assert_array_equal(totals, np.bincount(index.skill_ids[rows], weights=tokens[rows], minlength=3))
