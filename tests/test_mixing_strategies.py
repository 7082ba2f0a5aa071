# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import json
import math

import numpy as np
import pytest

from trl_mos.mixing import MoSConfig, MoSStrategy, ODMStrategy, SkillPolicy, temperature_distribution
from trl_mos.mixing.strategies import build_strategy


SIZES = np.array([400, 100, 20, 5])


def test_temperature_distribution():
    np.testing.assert_allclose(temperature_distribution(SIZES, 1.0), SIZES / SIZES.sum())
    np.testing.assert_allclose(temperature_distribution(SIZES, math.inf), [0.25] * 4)
    q10 = temperature_distribution(SIZES, 10.0)
    expected = (SIZES / SIZES.sum()) ** 0.1
    np.testing.assert_allclose(q10, expected / expected.sum())
    assert q10[0] > q10[-1] and q10[-1] > (SIZES / SIZES.sum())[-1]


@pytest.mark.parametrize("kind", ["logits", "mlp"])
def test_policy_starts_at_the_prior(kind):
    prior = temperature_distribution(SIZES, 10.0)
    policy = SkillPolicy(prior, kind=kind, hidden_size=16, seed=0)
    np.testing.assert_allclose(policy.probabilities(), prior, atol=1e-6)


@pytest.mark.parametrize("kind", ["logits", "mlp"])
def test_mos_update_moves_toward_the_rewarded_skill(kind):
    strategy = MoSStrategy(np.full(4, 0.25), policy=kind, learning_rate=1e-2, inner_steps=50, seed=0)
    probabilities = strategy.update(np.array([0.1, 0.1, 0.1, 1.0]))
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[3] > 0.3 and np.all(probabilities[:3] < 0.25)


def test_mos_fixed_point_is_reward_proportional():
    strategy = MoSStrategy(np.full(3, 1 / 3), learning_rate=0.05, inner_steps=3000)
    rewards = np.array([1.0, 2.0, 5.0])
    np.testing.assert_allclose(strategy.update(rewards), rewards / rewards.sum(), atol=1e-3)


def test_reward_exponent_moves_the_fixed_point_to_rewards_to_the_power_k():
    rewards = np.array([1.0, 2.0, 5.0])
    strategy = MoSStrategy(np.full(3, 1 / 3), learning_rate=0.05, inner_steps=3000, reward_exponent=2.0)
    np.testing.assert_allclose(strategy.update(rewards), rewards**2 / (rewards**2).sum(), atol=1e-3)
    config = MoSConfig(strategy="mos", reward_exponent=2.0)
    assert build_strategy(config, np.array([10, 10, 10]), seed=0).reward_exponent == 2.0


@pytest.mark.parametrize("bad", [[1.0, float("nan"), 1.0], [1.0, 0.0, 1.0], [1.0, -0.5, 1.0], [float("inf"), 1, 1]])
def test_bad_rewards_skip_the_update_and_leave_the_policy_untouched(bad, caplog):
    strategy = MoSStrategy(np.full(3, 1 / 3), learning_rate=1e-2, inner_steps=5)
    strategy.update(np.array([1.0, 2.0, 3.0]))
    before = json.dumps(strategy.state_dict())
    with caplog.at_level("WARNING"):
        assert strategy.update(np.array(bad)) is None
    assert "skipping a policy update" in caplog.text
    after = strategy.state_dict()
    assert after["skipped_updates"] == 1
    after["skipped_updates"] = 0
    assert json.dumps(after) == before


@pytest.mark.parametrize("kind", ["logits", "mlp"])
def test_mos_state_round_trips_through_json_exactly(kind):
    a = MoSStrategy(np.full(4, 0.25), policy=kind, learning_rate=1e-2, inner_steps=7, seed=1)
    a.update(np.array([1.0, 2.0, 3.0, 4.0]))
    b = MoSStrategy(np.full(4, 0.25), policy=kind, learning_rate=1e-2, inner_steps=7, seed=1)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    rewards = np.array([4.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(a.update(rewards), b.update(rewards))  # Adam state restored too


def test_odm_samples_high_loss_skills_more_and_keeps_exploring():
    strategy = ODMStrategy(np.full(4, 0.25), smoothing=0.9)
    for _ in range(200):
        probabilities = strategy.update(np.array([0.5, 0.5, 0.5, 3.0]), counts=np.array([8, 8, 8, 8]))
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[3] > 0.28 and np.all(probabilities[:3] < 0.25)
    assert probabilities.min() > 0  # ε-exploration
    restored = ODMStrategy(np.full(4, 0.25))
    restored.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    np.testing.assert_array_equal(restored.update(np.ones(4), np.ones(4)), strategy.update(np.ones(4), np.ones(4)))


def test_odm_ignores_skills_without_examples():
    strategy = ODMStrategy(np.full(2, 0.5))
    strategy.update(np.array([1.0, np.nan]), counts=np.array([4, 0]))
    assert strategy.estimates[1] == 0.0 and strategy.estimates[0] > 0


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("uniform", [0.25] * 4),
        ("proportional", (SIZES / SIZES.sum()).tolist()),
        ("temperature", temperature_distribution(SIZES, 10.0).tolist()),
        ("mos", [0.25] * 4),
        ("odm", [0.25] * 4),
    ],
)
def test_build_strategy_initial_distributions(strategy, expected):
    built = build_strategy(MoSConfig(strategy=strategy), SIZES, seed=0)
    np.testing.assert_allclose(built.probabilities, expected, atol=1e-6)
    assert built.signal == {"mos": "rewards", "odm": "train_loss"}.get(strategy, "none")


def test_logits_policy_update_matches_autograd():
    """The logits policy's closed-form gradient takes the same Adam steps as autograd on −Σ R_i log p_i."""
    import torch

    rewards = np.array([1.0, 1.3, 0.8, 1.1])
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    fast = MoSStrategy(prior, learning_rate=1e-2, inner_steps=50)
    reference = MoSStrategy(prior, learning_rate=1e-2, inner_steps=50)
    for _ in range(4):
        fast.update(rewards)
        with torch.enable_grad():
            for _ in range(reference.inner_steps):
                reference.optimizer.zero_grad(set_to_none=True)
                loss = -(torch.log_softmax(reference.policy(), dim=-1) * torch.tensor(rewards).float()).sum()
                loss.backward()
                reference.optimizer.step()
        np.testing.assert_allclose(fast.probabilities, reference.policy.probabilities(), atol=1e-6)
    assert not np.allclose(fast.probabilities, prior, atol=1e-3)  # it moved


def test_logits_policy_adam_steps_are_bit_exact_torch_adam():
    """The logits policy's hand-rolled Adam loop equals `torch.optim.Adam.step()` bit for bit, state included, across
    updates and a state-dict round trip (so old checkpoints resume on the same trajectory)."""
    import torch

    prior = np.array([0.1, 0.2, 0.3, 0.4])
    fast = MoSStrategy(prior, learning_rate=3e-2, inner_steps=200)
    logits = torch.nn.Parameter(torch.log(torch.as_tensor(prior, dtype=torch.float32)))
    optimizer = torch.optim.Adam([logits], lr=3e-2)
    for update, rewards in enumerate([[1.0, 1.3, 0.8, 1.1], [0.5, 2.0, 1.0, 0.7], [1.2, 1.1, 0.9, 3.0]]):
        if update == 1:  # resume: a fresh strategy from the saved state
            state = fast.state_dict()
            fast = MoSStrategy(prior, learning_rate=3e-2, inner_steps=200)
            fast.load_state_dict(state)
        fast.update(np.asarray(rewards))
        reward = torch.tensor(rewards, dtype=torch.float32)
        for _ in range(200):
            with torch.no_grad():
                logits.grad = torch.softmax(logits, dim=-1) * reward.sum() - reward
            optimizer.step()
        assert torch.equal(fast.policy.logits.detach(), logits.detach())
        for key, value in optimizer.state[logits].items():
            assert torch.equal(fast.optimizer.state[fast.policy.logits][key], value), key
    assert fast.policy.logits.grad is None


def test_logits_policy_adam_with_other_settings_falls_back_to_optimizer_step():
    import torch

    prior = np.full(4, 0.25)
    strategy = MoSStrategy(prior, learning_rate=3e-2, inner_steps=20)
    strategy.optimizer.param_groups[0].update(amsgrad=True, weight_decay=0.1)  # not the hand-rolled path
    logits = torch.nn.Parameter(torch.log(torch.as_tensor(prior, dtype=torch.float32)))
    optimizer = torch.optim.Adam([logits], lr=3e-2, amsgrad=True, weight_decay=0.1)
    rewards = torch.tensor([1.0, 1.3, 0.8, 1.1])
    strategy.update(rewards.numpy().astype(np.float64))
    for _ in range(20):
        with torch.no_grad():
            logits.grad = torch.softmax(logits, dim=-1) * rewards.sum() - rewards
        optimizer.step()
    assert torch.equal(strategy.policy.logits.detach(), logits.detach())
    assert "max_exp_avg_sq" in strategy.optimizer.state[strategy.policy.logits]
