# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""trl-mos: Mixture-of-Skills data mixing and ReST^EM self-training for Hugging Face trainers.

The public API is re-exported here and imported lazily, so that `import trl_mos` (and `trl-mos --help`) stays fast
and does not pull in torch until a name that needs it is used.
"""

import importlib
from typing import TYPE_CHECKING, Any


__version__ = "0.1.0.dev0"

# public name -> module that defines it
_LAZY_ATTRIBUTES: dict[str, str] = {
    # offline tiny-model kit
    "build_tiny_tokenizer": "trl_mos.testing",
    "build_tiny_model": "trl_mos.testing",
    "save_tiny_model": "trl_mos.testing",
    "tiny_sft_config": "trl_mos.testing",
    # bundled synthetic tasks
    "make_skill_datasets": "trl_mos.tasks",
    "make_arithmetic_problems": "trl_mos.tasks",
    "make_code_tasks": "trl_mos.tasks",
    "check_skill_answer": "trl_mos.tasks",
    "evaluate_skill_accuracy": "trl_mos.tasks",
    "make_mixing_regret_datasets": "trl_mos.tasks",
    "make_sorting_problems": "trl_mos.tasks",
    # verifiers
    "VerifierSuite": "trl_mos.verifiers",
    "Verdict": "trl_mos.verifiers",
    "math_verifier": "trl_mos.verifiers",
    "make_math_verifier": "trl_mos.verifiers",
    "code_verifier": "trl_mos.verifiers",
    "make_code_verifier": "trl_mos.verifiers",
    "exact_match_verifier": "trl_mos.verifiers",
    "make_exact_match_verifier": "trl_mos.verifiers",
    "make_regex_verifier": "trl_mos.verifiers",
    "make_numeric_verifier": "trl_mos.verifiers",
    "required_columns": "trl_mos.verifiers",
    "check_required_columns": "trl_mos.verifiers",
    "completion_to_text": "trl_mos.verifiers",
    "error_reason": "trl_mos.verifiers",
    "is_verifier_error": "trl_mos.verifiers",
    "extract_math_answers": "trl_mos.verifiers",
    "Sandbox": "trl_mos.verifiers",
    "SandboxConfig": "trl_mos.verifiers",
    # evaluation metrics
    "pass_at_k": "trl_mos.evaluation",
    "maj_at_k": "trl_mos.evaluation",
    "evaluate_samples": "trl_mos.evaluation",
    # Mixture-of-Skills
    "MixtureOfSkillsCallback": "trl_mos.mixing",
    "MoSConfig": "trl_mos.mixing",
    "SkillSampler": "trl_mos.mixing",
    "concatenate_skills": "trl_mos.mixing",
    "pack_within_skills": "trl_mos.mixing",
    "plot_mixture": "trl_mos.mixing",
    # generation helper
    "generate_completions": "trl_mos.generation",
    # ReST^EM self-training
    "ReSTEMConfig": "trl_mos.rest_em",
    "ReSTEMTrainer": "trl_mos.rest_em",
    "WeightSyncError": "trl_mos.rest_em.weight_sync",
}

__all__ = ["__version__", *_LAZY_ATTRIBUTES]


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
        globals()[name] = value  # cache: the next access skips this function
        return value
    raise AttributeError(f"module 'trl_mos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - static type checkers see the real imports
    from .evaluation import evaluate_samples, maj_at_k, pass_at_k
    from .generation import generate_completions
    from .mixing import (
        MixtureOfSkillsCallback,
        MoSConfig,
        SkillSampler,
        concatenate_skills,
        pack_within_skills,
        plot_mixture,
    )
    from .rest_em import ReSTEMConfig, ReSTEMTrainer
    from .rest_em.weight_sync import WeightSyncError
    from .tasks import (
        check_skill_answer,
        evaluate_skill_accuracy,
        make_arithmetic_problems,
        make_code_tasks,
        make_mixing_regret_datasets,
        make_skill_datasets,
        make_sorting_problems,
    )
    from .testing import build_tiny_model, build_tiny_tokenizer, save_tiny_model, tiny_sft_config
    from .verifiers import (
        Sandbox,
        SandboxConfig,
        Verdict,
        VerifierSuite,
        check_required_columns,
        code_verifier,
        completion_to_text,
        error_reason,
        exact_match_verifier,
        extract_math_answers,
        is_verifier_error,
        make_code_verifier,
        make_exact_match_verifier,
        make_math_verifier,
        make_numeric_verifier,
        make_regex_verifier,
        math_verifier,
        required_columns,
    )
