# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Configuration of Mixture-of-Skills data mixing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


STRATEGIES = ("mos", "mospec", "uniform", "proportional", "temperature", "odm")
REWARDS = ("cossim", "diff")
POLICIES = ("logits", "mlp")
PROBE_RESAMPLING = ("fixed", "per_update")


@dataclass
class MoSConfig:
    r"""
    Configuration of [`MixtureOfSkillsCallback`]: how a multi-skill train dataset is sampled during fine-tuning.

    Parse it from the command line or YAML with [`~transformers.HfArgumentParser`] or `trl.TrlParser`, next to your
    `SFTConfig`.

    Parameters:
        > Parameters that control the strategy

        strategy (`str`, *optional*, defaults to `"mos"`):
            How the sampling probabilities over skills are chosen:

            - `"mos"`: Mixture-of-Skills (Wu et al., 2024) — a policy trained with REINFORCE on rewards computed on
              probe sets of every skill.
            - `"mospec"`: MoSpec — MoS towards one `target_skill`.
            - `"uniform"`, `"proportional"`, `"temperature"`: static distributions q_τ(i) ∝ |D_i|^(1/τ) with τ = ∞, 1
              and `temperature`.
            - `"odm"`: Online Data Mixing (Albalak et al., 2023) — an EXP3 bandit with the training loss as reward.
        skill_column (`str`, *optional*, defaults to `"skill"`):
            Column of the train dataset that names each row's skill (`ClassLabel`, strings or integers).
        target_skill (`str` or `None`, *optional*, defaults to `None`):
            The skill MoSpec optimises for. Required with `strategy="mospec"`, not allowed otherwise.
        temperature (`float` or `None`, *optional*, defaults to `None`):
            τ of the temperature distribution q_τ(i) ∝ |D_i|^(1/τ) (τ=1 proportional, τ=∞ uniform). It is the fixed
            distribution of `strategy="temperature"` (default 10) and the initial distribution of `"mos"`, `"mospec"`
            and `"odm"` (default ∞, the paper's uniform start).
        update_steps (`int` or `None`, *optional*, defaults to `None`):
            Optimizer steps between two updates of the distribution (S in the paper). Defaults to 100 for MoS and
            MoSpec (the paper's value) and 1 for ODM; unused by the static strategies.
        mixing_seed (`int` or `None`, *optional*, defaults to `None`):
            Seed of the sampler, the probe sets and the policy initialisation. Defaults to the trainer's `data_seed`,
            or its `seed`. (Named so as not to clash with `seed` of the training arguments on one command line.)

        > Parameters that control the MoS policy

        policy (`str`, *optional*, defaults to `"logits"`):
            `"logits"`: one free logit per skill (the published code). `"mlp"`: the paper's 2-layer MLP whose input
            marks the available skills.
        policy_hidden_size (`int`, *optional*, defaults to `64`):
            Hidden width of the `"mlp"` policy.
        policy_learning_rate (`float`, *optional*, defaults to `1e-4`):
            Adam learning rate of the policy.
        policy_inner_steps (`int`, *optional*, defaults to `200`):
            Adam steps per update (the published code uses 200; the paper describes one).
        reward_exponent (`float`, *optional*, defaults to `1.0`):
            The policy is trained on R(i)^k: its fixed point is p(i) ∝ R(i)^k. `1.0` is the paper's p(i) ∝ R(i); a
            larger k sharpens the distribution the policy moves toward when the rewards of the skills are close
            (multiplying the rewards by a constant changes nothing under Adam).

        > Parameters that control the MoS rewards

        reward (`list[str]`, *optional*, defaults to `["cossim"]`):
            Reward(s): `"cossim"` (transferability) and/or `"diff"` (difficulty). Several are combined as a weighted
            sum with `reward_weights`.
        reward_weights (`list[float]` or `None`, *optional*, defaults to `None`):
            Weights of the rewards in `reward`, same length. Defaults to equal weights summing to one.
        use_ema (`bool`, *optional*, defaults to `False`):
            Smooth the reward over updates with an exponential moving average (the paper's "learning trajectory").
        ema_beta (`float`, *optional*, defaults to `0.9`):
            Weight of the current reward in the EMA: R_t = β·R + (1−β)·R_{t−1}, with R_0 = 1.
        cossim_probe_size (`int`, *optional*, defaults to `64`):
            Probe examples per skill for `"cossim"` (fewer if a skill is smaller).
        diff_probe_size (`int`, *optional*, defaults to `16`):
            Probe examples per skill for `"diff"` (fewer if a skill is smaller).
        probe_resampling (`str`, *optional*, defaults to `"fixed"`):
            `"fixed"`: one seeded probe set per skill for the whole run (without replacement; the Diff probes are the
            first `diff_probe_size` CosSim probes). `"per_update"`: new probe sets at every update, drawn with
            replacement from the seed and the update index (the published code), so a resumed run draws the same sets;
            with `"diff"`, θ0's perplexity of every row of the probe pool is computed once at train start, so pass a
            small `probe_dataset` to the callback.
        probe_batch_size (`int` or `None`, *optional*, defaults to `None`):
            Probe examples per forward pass. `None` uses the trainer's `per_device_train_batch_size`: probes run
            without gradients, so a training micro-batch always fits.

        > Parameters that control ODM

        odm_smoothing (`float`, *optional*, defaults to `0.9`):
            α of ODM's moving average of importance-weighted losses: R̂_i ← α·R̂_i + (1−α)·L_i / π_i.

        > Parameters that control logging

        history_file (`str` or `None`, *optional*, defaults to `"mos_history.jsonl"`):
            JSON-lines file in `output_dir` where the main process records every change of the distribution (step,
            probabilities, rewards). `None` disables it.
        plot (`bool`, *optional*, defaults to `True`):
            At the end of training, the main process saves `mos_probabilities.png` in `output_dir`.

    Example:

    ```python
    >>> from trl_mos import MoSConfig
    >>> MoSConfig(reward=["cossim"], use_ema=True).update_steps
    100
    ```
    """

    # Strategy
    strategy: str = field(
        default="mos",
        metadata={"help": "How the skill distribution is chosen.", "choices": list(STRATEGIES)},
    )
    skill_column: str = field(
        default="skill", metadata={"help": "Column of the train dataset naming each row's skill."}
    )
    target_skill: str | None = field(
        default=None, metadata={"help": "The skill MoSpec optimises for (strategy='mospec' only)."}
    )
    temperature: float | None = field(
        default=None,
        metadata={
            "help": "τ of q_τ(i) ∝ |D_i|^(1/τ): the distribution of strategy='temperature' (default 10) and the "
            "initial distribution of 'mos', 'mospec' and 'odm' (default inf, uniform)."
        },
    )
    update_steps: int | None = field(
        default=None,
        metadata={"help": "Optimizer steps between updates (default: 100 for MoS/MoSpec, 1 for ODM)."},
    )
    mixing_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of sampler, probes and policy (default: the trainer's data_seed or seed)."},
    )

    # Policy
    policy: str = field(
        default="logits",
        metadata={
            "help": "MoS policy: free logits (published code) or the paper's 2-layer MLP.",
            "choices": list(POLICIES),
        },
    )
    policy_hidden_size: int = field(default=64, metadata={"help": "Hidden width of the 'mlp' policy."})
    policy_learning_rate: float = field(default=1e-4, metadata={"help": "Adam learning rate of the policy."})
    policy_inner_steps: int = field(default=200, metadata={"help": "Adam steps per policy update."})
    reward_exponent: float = field(
        default=1.0, metadata={"help": "Train the policy on R^k (fixed point p ∝ R^k); 1.0 is the paper's."}
    )

    # Rewards
    reward: list[str] = field(
        default_factory=lambda: ["cossim"],
        metadata={"help": "Reward(s) of MoS/MoSpec: 'cossim' and/or 'diff'."},
    )
    reward_weights: list[float] | None = field(
        default=None, metadata={"help": "Weights of the rewards (default: equal, summing to one)."}
    )
    use_ema: bool = field(default=False, metadata={"help": "Smooth rewards with an exponential moving average."})
    ema_beta: float = field(default=0.9, metadata={"help": "Weight of the current reward in the EMA."})
    cossim_probe_size: int = field(default=64, metadata={"help": "Probe examples per skill for 'cossim'."})
    diff_probe_size: int = field(default=16, metadata={"help": "Probe examples per skill for 'diff'."})
    probe_resampling: str = field(
        default="fixed",
        metadata={
            "help": "Probe sets drawn once per run ('fixed') or redrawn at every update ('per_update').",
            "choices": list(PROBE_RESAMPLING),
        },
    )
    probe_batch_size: int | None = field(
        default=None,
        metadata={"help": "Probe examples per forward pass (None: the trainer's per_device_train_batch_size)."},
    )

    # ODM
    odm_smoothing: float = field(default=0.9, metadata={"help": "α of ODM's moving average of rewards."})

    # Logging
    history_file: str | None = field(
        default="mos_history.jsonl", metadata={"help": "JSON-lines history in output_dir (None disables it)."}
    )
    plot: bool = field(default=True, metadata={"help": "Save mos_probabilities.png in output_dir at train end."})

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r}; choose one of {list(STRATEGIES)}.")
        if isinstance(self.reward, str):  # MoSConfig(reward="cossim") is allowed
            self.reward = [self.reward]
        self.reward = list(self.reward)
        unknown = [r for r in self.reward if r not in REWARDS]
        if unknown or not self.reward:
            raise ValueError(
                f"Unknown reward(s) {unknown or self.reward}; choose one or more of {list(REWARDS)}, e.g. "
                "reward=['cossim'] or reward=['cossim', 'diff']."
            )
        if len(set(self.reward)) != len(self.reward):
            raise ValueError(f"Each reward may appear once; got {self.reward}.")
        if self.reward_weights is None:
            self.reward_weights = [1.0 / len(self.reward)] * len(self.reward)
        self.reward_weights = [float(w) for w in self.reward_weights]
        if len(self.reward_weights) != len(self.reward):
            raise ValueError(
                f"`reward_weights` needs one weight per reward: {len(self.reward)} reward(s) {self.reward}, "
                f"{len(self.reward_weights)} weight(s)."
            )
        if any(not math.isfinite(w) or w < 0 for w in self.reward_weights) or sum(self.reward_weights) <= 0:
            raise ValueError(f"`reward_weights` must be non-negative and not all zero; got {self.reward_weights}.")
        if self.probe_resampling not in PROBE_RESAMPLING:
            raise ValueError(
                f"Unknown probe_resampling {self.probe_resampling!r}; choose one of {list(PROBE_RESAMPLING)}."
            )
        if self.policy not in POLICIES:
            raise ValueError(f"Unknown policy {self.policy!r}; choose one of {list(POLICIES)}.")
        if self.strategy == "mospec" and not self.target_skill:
            raise ValueError("strategy='mospec' needs `target_skill`, the name of the skill to optimise for.")
        if self.target_skill is not None and self.strategy not in ("mos", "mospec"):
            raise ValueError(
                f"`target_skill` is only used by MoSpec; it cannot be set with strategy={self.strategy!r}."
            )
        if self.target_skill is not None and self.strategy == "mos":
            self.strategy = "mospec"  # MoS with a target skill is MoSpec
        if self.temperature is None:
            self.temperature = 10.0 if self.strategy == "temperature" else math.inf
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be positive (inf for uniform); got {self.temperature}.")
        if self.update_steps is None:
            self.update_steps = 1 if self.strategy == "odm" else 100
        positive_ints = {
            "update_steps": self.update_steps,
            "policy_hidden_size": self.policy_hidden_size,
            "policy_inner_steps": self.policy_inner_steps,
            "cossim_probe_size": self.cossim_probe_size,
            "diff_probe_size": self.diff_probe_size,
        }
        if self.probe_batch_size is not None:
            positive_ints["probe_batch_size"] = self.probe_batch_size
        for name, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
        exponent = self.reward_exponent
        if isinstance(exponent, bool) or not (isinstance(exponent, (int, float)) and 0 < exponent < math.inf):
            raise ValueError(f"`reward_exponent` must be a positive number; got {self.reward_exponent!r}.")
        if not self.policy_learning_rate > 0:
            raise ValueError(f"`policy_learning_rate` must be positive; got {self.policy_learning_rate}.")
        if not 0 < self.ema_beta <= 1:
            raise ValueError(f"`ema_beta` must be in (0, 1]; got {self.ema_beta}.")
        if not 0 <= self.odm_smoothing < 1:
            raise ValueError(f"`odm_smoothing` must be in [0, 1); got {self.odm_smoothing}.")

    @property
    def is_learned(self) -> bool:
        """Whether the distribution changes during training (MoS, MoSpec, ODM)."""
        return self.strategy in ("mos", "mospec", "odm")
