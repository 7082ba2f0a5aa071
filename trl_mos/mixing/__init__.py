# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Mixture-of-Skills: learned dataset mixing as a drop-in `TrainerCallback`."""

from .callback import MixtureOfSkillsCallback
from .config import MoSConfig
from .data import SkillIndex, concatenate_skills, pack_within_skills
from .plotting import load_history, plot_mixture
from .rewards import SkillRewards, select_probe_rows
from .sampler import SkillSampler
from .strategies import MixingStrategy, MoSStrategy, ODMStrategy, SkillPolicy, StaticStrategy, temperature_distribution


__all__ = [
    "MixingStrategy",
    "MixtureOfSkillsCallback",
    "MoSConfig",
    "MoSStrategy",
    "ODMStrategy",
    "SkillIndex",
    "SkillPolicy",
    "SkillRewards",
    "SkillSampler",
    "StaticStrategy",
    "concatenate_skills",
    "load_history",
    "pack_within_skills",
    "plot_mixture",
    "select_probe_rows",
    "temperature_distribution",
]
