# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import numpy as np
import pytest
import torch

from trl_mos.mixing import MoSConfig, SkillIndex, SkillRewards, select_probe_rows


INDEX = SkillIndex(names=["a", "b", "c"], skill_ids=np.repeat(np.arange(3), [40, 10, 3]))


class FakeRunner:
    """Returns fixed per-row vectors: a skill-specific hidden direction and an NLL that the test controls."""

    def __init__(self, directions, nll_per_skill):
        self.directions, self.nll_per_skill, self.calls = directions, nll_per_skill, []

    def run(self, rows, hidden, nll, base_model=False):
        self.calls.append((len(rows), hidden, nll, base_model))
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


def test_combined_rewards_share_one_forward_pass():
    runner = FakeRunner([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [1.0, 1.0, 1.0])
    config = MoSConfig(reward=["cossim", "diff"], reward_weights=[0.25, 0.75], cossim_probe_size=6, diff_probe_size=2)
    rewards = SkillRewards(config, INDEX, seed=0)
    rewards.compute_base(runner)
    runner.calls.clear()
    np.testing.assert_allclose(rewards.compute(runner), [0.25 * 1 + 0.75 * 1] * 3)
    assert runner.calls == [(6 + 6 + 3, True, True, False)]
    assert set(rewards.last) == {"cossim", "diff", "reward"}


def test_state_is_checked_on_load():
    rewards = SkillRewards(MoSConfig(reward="diff"), INDEX, seed=0)
    other = SkillRewards(MoSConfig(reward="diff"), INDEX, seed=1)
    with pytest.raises(ValueError, match="probe sets differ"):
        other.load_state_dict(rewards.state_dict())
