# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Bundled synthetic tasks, generated in-process from a seed: no data files, no Hub."""

from .arithmetic import make_arithmetic_problems
from .code import make_code_tasks
from .mixing_regret import REGRET_SKILL_NAMES, make_mixing_regret_datasets, sample_static_mixture
from .self_training import make_sorting_problems
from .skills import SKILL_NAMES, check_skill_answer, evaluate_skill_accuracy, make_skill_datasets, normalize_answer


__all__ = [
    "REGRET_SKILL_NAMES",
    "SKILL_NAMES",
    "check_skill_answer",
    "evaluate_skill_accuracy",
    "make_arithmetic_problems",
    "make_code_tasks",
    "make_mixing_regret_datasets",
    "make_skill_datasets",
    "make_sorting_problems",
    "normalize_answer",
    "sample_static_mixture",
]
