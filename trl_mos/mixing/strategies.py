# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Mixing strategies behind one small interface, so that they are compared on equal footing.

A strategy gives the initial distribution over skills and, every `update_steps` optimizer steps, a new one from a
signal: per-skill rewards (MoS, MoSpec) or per-skill training losses (ODM). Static strategies never update.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn
from transformers.utils import logging


logger = logging.get_logger(__name__)


def temperature_distribution(sizes: np.ndarray, temperature: float) -> np.ndarray:
    """q_τ(i) ∝ q(i)^(1/τ) with q(i) = |D_i| / Σ|D_n|: τ=1 proportional, τ=∞ uniform.

    Args:
        sizes (`np.ndarray`): number of examples per skill.
        temperature (`float`): τ > 0, `math.inf` for uniform.

    Returns:
        `np.ndarray`: the distribution (float64, sums to one).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    if math.isinf(temperature):
        return np.full(len(sizes), 1.0 / len(sizes))
    logits = np.log(sizes / sizes.sum()) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


class MixingStrategy:
    """Base class: a distribution over skills, possibly updated during training.

    Attributes:
        signal (`str`): what `update` needs — `"none"` (static), `"rewards"` (per-skill rewards from probe sets) or
            `"train_loss"` (per-skill mean training loss and example counts of the last steps).
    """

    signal: Literal["none", "rewards", "train_loss"] = "none"

    def __init__(self, initial_probabilities: np.ndarray):
        self.probabilities = np.asarray(initial_probabilities, dtype=np.float64)

    def update(self, values: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray | None:
        """Returns the new distribution, or `None` to keep the current one."""
        return None

    def state_dict(self) -> dict:
        return {"probabilities": self.probabilities.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.probabilities = np.asarray(state["probabilities"], dtype=np.float64)


class StaticStrategy(MixingStrategy):
    """A fixed distribution: uniform, proportional or temperature-scaled."""


class SkillPolicy(nn.Module):
    """The MoS "scorer": a softmax over skills, parameterised as free logits or as the paper's 2-layer MLP.

    Both are initialised to reproduce `prior` exactly: the logits are set to `log prior`; the MLP keeps its random
    weights and its output bias absorbs the difference. The MLP's input is the all-ones vector marking every skill as
    available.

    Args:
        prior (`np.ndarray`): the initial distribution.
        kind (`str`): `"logits"` or `"mlp"`.
        hidden_size (`int`): width of the MLP.
        seed (`int`): seed of the MLP's initial weights.
    """

    def __init__(self, prior: np.ndarray, kind: str = "logits", hidden_size: int = 64, seed: int = 0):
        super().__init__()
        self.kind = kind
        num_skills = len(prior)
        log_prior = torch.log(torch.as_tensor(prior, dtype=torch.float32).clamp_min(1e-12))
        if kind == "logits":
            self.logits = nn.Parameter(log_prior.clone())
        elif kind == "mlp":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.hidden = nn.Linear(num_skills, hidden_size)
                self.output = nn.Linear(hidden_size, num_skills)
            self.register_buffer("available", torch.ones(num_skills), persistent=False)
            with torch.no_grad():
                self.output.bias += log_prior - self.forward()
        else:
            raise ValueError(f"Unknown policy {kind!r}; use 'logits' or 'mlp'.")

    def forward(self) -> torch.Tensor:
        if self.kind == "logits":
            return self.logits
        return self.output(torch.tanh(self.hidden(self.available)))

    def probabilities(self) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.forward().double(), dim=-1).numpy()


def _tensors_to_lists(value):
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, dict):
        return {str(k): _tensors_to_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tensors_to_lists(v) for v in value]
    return value


def _lists_to_tensors(value):
    if isinstance(value, dict):
        if "__tensor__" in value:
            return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
        return {k: _lists_to_tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lists_to_tensors(v) for v in value]
    return value


def _adam_steps(optimizer: torch.optim.Adam, gradient, steps: int) -> None:
    """Takes `steps` steps of `optimizer` (an Adam over one parameter) with the gradient `gradient(parameter)`.

    The ops and their order are those of `torch.optim.Adam`'s single-tensor CPU path (no AMSGrad, weight decay or
    `maximize`), so the result is bit for bit that of calling `optimizer.step()`, and the optimizer's own state is
    updated, so checkpoints are unchanged; without its per-call overhead, which dominates on a handful of logits.
    Any other Adam setting falls back to `optimizer.step()`.
    """
    (group,) = optimizer.param_groups
    (parameter,) = group["params"]
    plain = not (
        group["amsgrad"]
        or group["weight_decay"]
        or group["maximize"]
        or group["capturable"]
        or group["differentiable"]
        or group["fused"]
        or group["foreach"]
        or isinstance(group["lr"], torch.Tensor)
        or parameter.device.type != "cpu"
    )
    if not plain:
        for _ in range(steps):
            with torch.no_grad():
                parameter.grad = gradient(parameter)
            optimizer.step()
        parameter.grad = None
        return
    state = optimizer.state[parameter]
    if not state:  # as `Adam._init_group` initialises it
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
    step = state["step"].item()
    with torch.no_grad():
        for _ in range(steps):
            grad = gradient(parameter)
            step += 1
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
            parameter.addcdiv_(exp_avg, denom, value=-step_size)
    state["step"].fill_(step)


class MoSStrategy(MixingStrategy):
    """Mixture-of-Skills: REINFORCE over the exact expectation, loss = −Σ_i log p_ψ(i)·R(i).

    There is no sampled action, baseline or reward normalisation (as in the paper and its code); the fixed point is
    p_i = R_i / Σ_n R_n, so rewards must be positive. An update whose rewards are not all finite and positive is skipped
    with a warning and leaves the policy untouched.

    Args:
        prior (`np.ndarray`): initial distribution.
        policy (`str`): `"logits"` or `"mlp"`.
        hidden_size (`int`): MLP width.
        learning_rate (`float`): Adam learning rate.
        inner_steps (`int`): Adam steps per update.
        seed (`int`): seed of the MLP initialisation.
        reward_exponent (`float`): the policy is trained on R^k (fixed point p ∝ R^k); 1 is the paper's.
    """

    signal = "rewards"

    def __init__(
        self,
        prior: np.ndarray,
        policy: str = "logits",
        hidden_size: int = 64,
        learning_rate: float = 1e-4,
        inner_steps: int = 200,
        seed: int = 0,
        reward_exponent: float = 1.0,
    ):
        super().__init__(prior)
        self.reward_exponent = float(reward_exponent)
        self.policy = SkillPolicy(prior, kind=policy, hidden_size=hidden_size, seed=seed)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate)
        self.inner_steps = inner_steps
        self.probabilities = self.policy.probabilities()
        self.skipped_updates = 0

    def update(self, values: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray | None:
        rewards = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(rewards)) or np.any(rewards <= 0):
            self.skipped_updates += 1
            logger.warning(
                f"Mixture-of-Skills: skipping a policy update, the rewards {rewards.tolist()} are not all finite and "
                "positive (REINFORCE over the exact expectation needs positive rewards). The policy is unchanged."
            )
            return None
        reward_tensor = torch.as_tensor(rewards**self.reward_exponent, dtype=torch.float32)
        if self.policy.kind == "logits":
            # d/dz of −Σ_i R_i log softmax(z)_i is softmax(z)·ΣR − R: the same Adam steps without autograd
            total = reward_tensor.sum()
            _adam_steps(self.optimizer, lambda z: torch.softmax(z, dim=-1) * total - reward_tensor, self.inner_steps)
        else:
            with torch.enable_grad():
                for _ in range(self.inner_steps):
                    self.optimizer.zero_grad(set_to_none=True)
                    loss = -(torch.log_softmax(self.policy(), dim=-1) * reward_tensor).sum()
                    loss.backward()
                    self.optimizer.step()
        self.probabilities = self.policy.probabilities()
        return self.probabilities

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "policy": _tensors_to_lists(self.policy.state_dict()),
            "optimizer": _tensors_to_lists(self.optimizer.state_dict()),
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.load_state_dict(_lists_to_tensors(state["policy"]))
        optimizer_state = _lists_to_tensors(state["optimizer"])
        # JSON turned the integer parameter ids of the optimizer state into strings
        optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
        self.optimizer.load_state_dict(optimizer_state)
        self.skipped_updates = state.get("skipped_updates", 0)


class ODMStrategy(MixingStrategy):
    """Online Data Mixing (Albalak et al., 2023): EXP3 with the training loss as reward.

    With K skills and t the number of updates so far, ε_t = min(1/K, sqrt(ln K / (K·t))) and

        π_t(i) = (1 − K·ε_t) · softmax(ε_{t−1}·R̂)_i + ε_t,

    where R̂_i is a moving average of importance-weighted losses, R̂_i ← α·R̂_i + (1−α)·L_i / π(i). Skills the model
    finds hard (high loss) are sampled more.

    ODM draws one domain per batch, so one arm is observed per update. Here every example draws its skill, so every
    skill seen since the last update is observed: each gets ODM's update with the mean loss of its examples.

    Args:
        prior (`np.ndarray`): distribution used until the first update.
        smoothing (`float`): α.
    """

    signal = "train_loss"

    def __init__(self, prior: np.ndarray, smoothing: float = 0.9):
        super().__init__(prior)
        self.smoothing = smoothing
        self.estimates = np.zeros(len(prior))
        self.num_updates = 0

    def _exploration(self, t: int) -> float:
        k = len(self.estimates)
        return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))

    def update(self, values: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray | None:
        losses = np.asarray(values, dtype=np.float64)
        seen = np.ones(len(losses), dtype=bool) if counts is None else np.asarray(counts) > 0
        if not np.all(np.isfinite(losses[seen])):
            logger.warning(f"Online Data Mixing: skipping an update, non-finite losses {losses.tolist()}.")
            return None
        self.estimates[seen] = self.smoothing * self.estimates[seen] + (1 - self.smoothing) * (
            losses[seen] / self.probabilities[seen]
        )
        self.num_updates += 1
        k = len(self.estimates)
        epsilon_prev, epsilon = self._exploration(self.num_updates), self._exploration(self.num_updates + 1)
        scores = epsilon_prev * self.estimates
        weights = np.exp(scores - scores.max())
        self.probabilities = (1 - k * epsilon) * weights / weights.sum() + epsilon
        self.probabilities /= self.probabilities.sum()
        return self.probabilities

    def state_dict(self) -> dict:
        return {**super().state_dict(), "estimates": self.estimates.tolist(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.estimates = np.asarray(state["estimates"], dtype=np.float64)
        self.num_updates = int(state["num_updates"])


def build_strategy(config, sizes: np.ndarray, seed: int) -> MixingStrategy:
    """Creates the strategy named by `config.strategy` ([`MoSConfig`]) for skills of the given sizes."""
    if config.strategy == "uniform":
        return StaticStrategy(temperature_distribution(sizes, math.inf))
    if config.strategy == "proportional":
        return StaticStrategy(temperature_distribution(sizes, 1.0))
    prior = temperature_distribution(sizes, config.temperature)
    if config.strategy == "temperature":
        return StaticStrategy(prior)
    if config.strategy == "odm":
        return ODMStrategy(prior, smoothing=config.odm_smoothing)
    return MoSStrategy(
        prior,
        policy=config.policy,
        hidden_size=config.policy_hidden_size,
        learning_rate=config.policy_learning_rate,
        inner_steps=config.policy_inner_steps,
        seed=seed,
        reward_exponent=config.reward_exponent,
    )
