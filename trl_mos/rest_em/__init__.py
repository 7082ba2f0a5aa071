# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM self-training (Singh et al., 2024): [`ReSTEMConfig`] and [`ReSTEMTrainer`], an `SFTTrainer` subclass."""

from .config import ReSTEMConfig
from .filtering import select_solutions
from .plotting import plot_restem_metrics
from .trainer import ReSTEMTrainer


__all__ = ["ReSTEMConfig", "ReSTEMTrainer", "plot_restem_metrics", "select_solutions"]
