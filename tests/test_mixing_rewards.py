# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import json
import math

import numpy as np
import pytest
import torch

from trl_mos.mixing import MoSConfig, SkillIndex, SkillRewards, select_probe_rows


INDEX = SkillIndex(names=["a", "b", "c"], skill_ids=np.repeat(np.arange(3), [40, 10, 3]))


class FakeRunner:
    """Returns fixed per-row vectors: a skill-specific hidden direction and an NLL that the test controls."""

    def __init__(self, directions, nll_per_skill):
        self.directions, self.nll_per_skill, self.calls, self.cached = directions, nll_per_skill, [], []

    def run(self, rows, hidden, nll, base_model=False, cache=False):
        self.calls.append((len(rows), hidden, nll, base_model))
        self.cached.append(cache)
        values = []
        for row in rows:
            skill = int(INDEX.skill_ids[row])
            parts = []
            if hidden:
                parts.append(torch.tensor(self.directions[skill], dtype=torch.float64))
            if nll:
                parts.append(torch.tensor([self.nll_per_skill[skill] * 4, 4.0], dtype=torch.float64))
            values.append(torch.cat(parts))
        return torch.stack(values)


def test_probe_rows_are_fixed_seeded_prefixes_within_each_skill():
    a = select_probe_rows(INDEX, 8, seed=0)
    assert a == select_probe_rows(INDEX, 8, seed=0) and a != select_probe_rows(INDEX, 8, seed=1)
    assert [len(rows) for rows in a] == [8, 8, 3]  # capped by the skill's size
    assert all(INDEX.skill_ids[r] == s for s, rows in enumerate(a) for r in rows)
    assert [rows[:4] for rows in a] == [rows[:4] for rows in select_probe_rows(INDEX, 4, seed=0)][:2] + [a[2][:4]]


def test_cossim_reward_mos_and_mospec():
    directions = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    runner = FakeRunner(directions, [1.0, 1.0, 1.0])
    c = 1 / np.sqrt(2)
    rewards = SkillRewards(MoSConfig(reward="cossim", cossim_probe_size=5), INDEX, seed=0)
    np.testing.assert_allclose(rewards.compute(runner), [(1 + c) / 3, (1 + 2 * c) / 3, (1 + c) / 3])
    spec = SkillRewards(MoSConfig(strategy="mospec", target_skill="c", reward="cossim"), INDEX, seed=0)
    np.testing.assert_allclose(spec.compute(runner), [0.0, c, 1.0], atol=1e-12)


def test_diff_reward_is_a_perplexity_ratio_with_target_doubled_and_ema():
    base = FakeRunner(None, [1.0, 2.0, 0.5])
    now = FakeRunner(None, [0.5, 2.0, 1.5])
    rewards = SkillRewards(MoSConfig(reward="diff", diff_probe_size=4), INDEX, seed=0)
    rewards.compute_base(base)
    assert base.calls == [(11, False, True, True)]  # base perplexities with adapters disabled
    expected = np.exp([0.5 - 1.0, 0.0, 1.5 - 0.5])
    np.testing.assert_allclose(rewards.compute(now), expected)
    spec = SkillRewards(MoSConfig(target_skill="b", reward="diff", use_ema=True, ema_beta=0.9), INDEX, seed=0)
    spec.compute_base(base)
    first = spec.compute(now)
    np.testing.assert_allclose(first, 0.9 * (expected * [1, 2, 1]) + 0.1 * 1.0)  # R_0 = 1
    np.testing.assert_allclose(spec.compute(now), 0.9 * (expected * [1, 2, 1]) + 0.1 * first)


def test_combined_rewards_run_each_probe_row_once_and_the_lm_head_only_for_diff_rows():
    runner = FakeRunner([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [1.0, 1.0, 1.0])
    config = MoSConfig(reward=["cossim", "diff"], reward_weights=[0.25, 0.75], cossim_probe_size=6, diff_probe_size=2)
    rewards = SkillRewards(config, INDEX, seed=0)
    rewards.compute_base(runner)
    runner.calls.clear()
    runner.nll_per_skill = [2.0, 1.0, 0.5]
    np.testing.assert_allclose(rewards.compute(runner), 0.25 * 1 + 0.75 * np.exp([1.0, 0.0, -0.5]))
    # the 2 Diff probes per skill with their NLL, the other CosSim probes (4, 4 and 1: skill c has 3 rows) without
    assert runner.calls == [(2 + 2 + 2, True, True, False), (4 + 4 + 1, True, False, False)]
    assert set(rewards.last) == {"cossim", "diff", "reward"}


def test_state_is_checked_on_load():
    rewards = SkillRewards(MoSConfig(reward="diff"), INDEX, seed=0)
    other = SkillRewards(MoSConfig(reward="diff"), INDEX, seed=1)
    with pytest.raises(ValueError, match="probe sets differ"):
        other.load_state_dict(rewards.state_dict())


def test_cossim_pools_only_its_own_probe_size_when_diff_probes_are_more():
    # every row has its own hidden direction, so which rows CosSim pools changes the reward
    class RowRunner(FakeRunner):
        def run(self, rows, hidden, nll, base_model=False, cache=False):
            self.calls.append((len(rows), hidden, nll, base_model))
            values = []
            for row in rows:
                parts = [torch.tensor([1.0, float(row)], dtype=torch.float64)] if hidden else []
                parts.append(torch.tensor([4.0, 4.0], dtype=torch.float64))
                values.append(torch.cat(parts))
            return torch.stack(values)

    config = MoSConfig(reward=["cossim", "diff"], cossim_probe_size=2, diff_probe_size=5)
    rewards = SkillRewards(config, INDEX, seed=0)
    runner = RowRunner(None, None)
    rewards.compute_base(runner)
    rewards.compute(runner)
    assert runner.calls[-1] == (5 + 5 + 3, True, True, False)  # one forward pass over the larger probe sets
    z = np.array([[1.0, np.mean(rows[:2])] for rows in rewards.probe_rows])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(rewards.last["cossim"], (z @ z.T).mean(axis=1))
    np.testing.assert_allclose(rewards.last["diff"], [1.0, 1.0, 1.0])


def _sft_trainer(tmp_path, tokenizer, train, model=None, **overrides):
    from trl import SFTTrainer

    from trl_mos.testing import build_tiny_model, tiny_sft_config

    args = tiny_sft_config(tmp_path, max_steps=1, per_device_train_batch_size=4, **overrides)
    model = model if model is not None else build_tiny_model(tokenizer, seed=0)
    return SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)


@pytest.fixture(scope="module")
def skills():
    from trl_mos.tasks import make_skill_datasets

    return make_skill_datasets(seed=0, sizes={"copy": 12, "reverse": 8, "sort": 6}, num_test_per_skill=2)["train"]


def test_padding_free_probes_give_the_rewards_of_padded_probes(tmp_path, tiny_tokenizer, skills):
    from trl_mos.mixing import MixtureOfSkillsCallback

    # 5 probes per skill in batches of 4: batches span two skills, and a padding-free batch is one flattened row
    config = MoSConfig(reward=["cossim", "diff"], cossim_probe_size=5, diff_probe_size=3, probe_batch_size=4)
    results = {}
    for padding_free, probe_collation in ((False, "padded"), (True, "padded"), (True, "flattened")):
        trainer = _sft_trainer(tmp_path, tiny_tokenizer, skills, padding_free=padding_free, max_length=None)
        callback = MixtureOfSkillsCallback(trainer, config)
        if probe_collation == "flattened":  # the trainer's own padding-free collator: one row per batch, split back
            callback.runner.collator = trainer.data_collator
        rows, _ = callback.rewards._flatten(callback.rewards.probe_rows)
        inputs, _, spans = callback.runner._collate(rows[:4])
        assert inputs["input_ids"].shape[0] == (1 if probe_collation == "flattened" else 4)
        assert len(spans) == 4
        callback.rewards.compute_base(callback.runner)
        with torch.no_grad():
            for parameter in trainer.model.parameters():
                parameter.add_(0.02 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
        per_row = callback.runner.run(rows, hidden=True, nll=True)
        callback.rewards.compute(callback.runner)
        results[padding_free, probe_collation] = per_row, dict(callback.rewards.last)
    padded, padded_rewards = results[False, "padded"]
    for key in ((True, "padded"), (True, "flattened")):
        flat, flat_rewards = results[key]
        assert len(torch.unique(flat[:, -2])) == len(flat)  # one distinct NLL per probe example
        torch.testing.assert_close(flat, padded, rtol=1e-5, atol=1e-5)
        for name in ("cossim", "diff", "reward"):
            np.testing.assert_allclose(flat_rewards[name], padded_rewards[name], rtol=1e-5)
    assert not np.allclose(padded_rewards["diff"], 1.0)


def test_probe_batches_are_sorted_by_length_returned_in_row_order_and_cached(tmp_path, tiny_tokenizer, skills):
    from trl_mos.mixing import MixtureOfSkillsCallback
    from trl_mos.mixing.data import row_lengths

    trainer = _sft_trainer(tmp_path, tiny_tokenizer, skills)
    callback = MixtureOfSkillsCallback(trainer, MoSConfig(reward=["cossim", "diff"], probe_batch_size=4))
    runner = callback.runner
    rows = np.random.default_rng(0).permutation(len(skills)).tolist()
    lengths = row_lengths(runner.source)
    assert len(set(lengths.tolist())) > 2  # rows of several lengths, shuffled
    collated = []
    collate = runner._collate
    runner._collate = lambda batch: collated.append(list(batch)) or collate(batch)
    batched = runner.run(rows, hidden=True, nll=True, cache=True)
    # every batch holds rows of neighbouring lengths
    assert [lengths[row] for batch in collated for row in batch] == sorted(lengths[rows].tolist())
    one_at_a_time = torch.cat([runner.run([row], hidden=True, nll=True) for row in rows])
    torch.testing.assert_close(batched, one_at_a_time, rtol=1e-5, atol=1e-5)  # in the order of `rows`
    # cached: a second call with the same rows reads and collates nothing, and gives the same results
    collated.clear()
    torch.testing.assert_close(runner.run(rows, hidden=True, nll=True, cache=True), batched, rtol=0, atol=0)
    assert collated == []
    runner.run(rows, hidden=True, nll=True)  # without `cache`: collated afresh
    assert len(collated) == math.ceil(len(rows) / 4)


@pytest.mark.parametrize("padding_free", [False, True])
def test_mean_pool_averages_each_span_over_its_real_tokens(padding_free):
    from trl_mos.mixing.rewards import _mean_pool

    generator = torch.Generator().manual_seed(0)
    if padding_free:  # three examples one after the other in one row, then unused positions
        states, mask = torch.randn(1, 12, 5, generator=generator), None
        spans = [(0, 0, 4), (0, 4, 5), (0, 5, 10)]
    else:  # one example per row, right-padded
        states, mask = torch.randn(3, 6, 5, generator=generator), torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [0] * 6])
        spans = [(0, 0, 6), (1, 0, 6), (2, 0, 6)]
    expected = []
    for row, start, end in spans:
        weights = (torch.ones(end - start) if mask is None else mask[row, start:end].float())[:, None]
        expected.append((states[row, start:end] * weights).sum(0) / weights.sum().clamp_min(1))
    torch.testing.assert_close(_mean_pool(states, mask, spans), torch.stack(expected))


def test_peft_cossim_probes_skip_the_lm_head(tmp_path, tiny_tokenizer, skills):
    from peft import LoraConfig, get_peft_model

    from trl_mos.mixing import MixtureOfSkillsCallback
    from trl_mos.testing import build_tiny_model

    model = get_peft_model(build_tiny_model(tiny_tokenizer, seed=0), LoraConfig(r=4, target_modules=["q_proj"]))
    trainer = _sft_trainer(tmp_path, tiny_tokenizer, skills, model=model)
    callback = MixtureOfSkillsCallback(trainer, MoSConfig(reward="cossim", cossim_probe_size=2))
    positions = []
    head = model.get_base_model().get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, output: positions.append(output.shape[1]))
    try:
        callback.rewards.compute(callback.runner)
        assert positions == [1, 1]  # 6 probes in batches of 4: the head ran on one position per example
        positions.clear()
        callback.runner.run([0, 1], hidden=False, nll=True)
        assert positions[0] > 1  # the NLL needs every position
    finally:
        handle.remove()


class RowRunner:
    """Per-row values: hidden `[1, row]`, and an NLL that depends on the row and on `scale` (the model's state)."""

    def __init__(self, scale=1.0):
        self.scale, self.calls, self.cached = scale, [], []

    def run(self, rows, hidden, nll, base_model=False, cache=False):
        self.calls.append((list(rows), hidden, nll, base_model))
        self.cached.append(cache)
        values = []
        for row in rows:
            parts = [torch.tensor([1.0, float(row)], dtype=torch.float64)] if hidden else []
            if nll:
                parts.append(torch.tensor([self.scale * (1 + row % 5) * 3, 3.0], dtype=torch.float64))
            values.append(torch.cat(parts))
        return torch.stack(values)


def test_per_update_probes_are_redrawn_with_replacement_and_resume_exactly():
    config = MoSConfig(
        reward=["cossim", "diff"], probe_resampling="per_update", cossim_probe_size=6, diff_probe_size=2
    )
    rewards = SkillRewards(config, INDEX, seed=0)
    base, now = RowRunner(1.0), RowRunner(0.5)
    rewards.compute_base(base)
    assert base.calls == [(list(range(53)), False, True, True)]  # θ0 over every row any update may draw
    draws, results, states = [], [], []
    for _ in range(3):
        results.append(rewards.compute(now))
        draws.append([row for rows in rewards.probe_rows for row in rows])
        states.append(rewards.state_dict())
    assert len(set(map(tuple, draws))) == 3  # a new probe set at every update
    assert draws[0].count(draws[0][-1]) >= 2  # skill c has 3 rows for 6 draws: drawn with replacement
    assert all(
        INDEX.skill_ids[row] == skill
        for draw in draws
        for skill, row in zip(np.repeat(range(3), 6), draw, strict=True)
    )
    # Diff compares each drawn row with its own θ0 perplexity: here exp(scale · (1 + row % 5)) ratios
    rows = np.asarray(draws[2]).reshape(3, 6)[:, :2]
    expected = np.exp(-0.5 * (1 + rows % 5)).mean(axis=1)
    np.testing.assert_allclose(rewards.last["diff"], expected)
    resumed = SkillRewards(config, INDEX, seed=0)
    resumed.load_state_dict(json.loads(json.dumps(states[0])))  # as saved in trainer_state.json
    again, redrawn = RowRunner(0.5), []
    for _ in range(2):
        np.testing.assert_allclose(resumed.compute(again), results[1 + len(redrawn)])
        redrawn.append([row for rows in resumed.probe_rows for row in rows])
        # every drawn row was run, once: the Diff rows with their NLL, then the rest
        assert sorted(again.calls[-2][0] + again.calls[-1][0]) == sorted(redrawn[-1])
    assert redrawn == draws[1:]
    assert not any(base.cached + now.cached + again.cached)  # redrawn probes: nothing to keep
    with pytest.raises(ValueError, match="probe sets differ"):
        SkillRewards(config, INDEX, seed=1).load_state_dict(states[0])
    fixed = SkillRewards(MoSConfig(reward=["cossim", "diff"]), INDEX, seed=0)
    fixed.compute_base(base)
    assert fixed.compute(now) is not None and fixed.compute(now) is not None
    assert now.calls[-2:] == now.calls[-4:-2]  # "fixed": the same probes at every update
    assert base.cached[-1] and all(now.cached[-4:])  # ... whose collated batches the runner keeps


def test_held_out_probe_dataset_is_prepared_and_probed(tmp_path, tiny_tokenizer, skills):
    from trl_mos.mixing import MixtureOfSkillsCallback
    from trl_mos.tasks import make_skill_datasets

    held_out = make_skill_datasets(seed=0, sizes={"copy": 12, "reverse": 8, "sort": 6}, num_test_per_skill=2)["test"]
    trainer = _sft_trainer(tmp_path, tiny_tokenizer, skills)
    config = MoSConfig(reward=["cossim", "diff"], cossim_probe_size=3, diff_probe_size=2)
    callback = MixtureOfSkillsCallback(trainer, config, probe_dataset=held_out)
    assert "input_ids" in callback.runner.source.column_names and len(callback.runner.source) == 6
    assert held_out.column_names == ["prompt", "completion", "answer", "skill"]  # the user's dataset is untouched
    probed = {tuple(callback.runner.source[row]["input_ids"]) for rows in callback.rewards.probe_rows for row in rows}
    train_rows = {tuple(ids) for ids in trainer.train_dataset["input_ids"]}
    assert len(probed) == 6 and not probed & train_rows
    callback.rewards.compute_base(callback.runner)
    callback.rewards.compute(callback.runner)
    np.testing.assert_allclose(callback.rewards.last["diff"], 1.0, rtol=1e-6)  # θ = θ0
    reordered = held_out.cast_column("skill", held_out.features["skill"].__class__(names=["sort", "reverse", "copy"]))
    with pytest.raises(ValueError, match="same skills in the same order"):
        MixtureOfSkillsCallback(trainer, config, probe_dataset=reordered)
