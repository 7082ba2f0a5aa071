# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Verifiers: TRL-style reward functions that give a binary (or graded) verdict per completion.

A verifier is any function `f(prompts, completions, **columns) -> list[float | None]`, so TRL's `accuracy_reward`
and your GRPO reward functions work unchanged. Bundled: math ([`math_verifier`]), code ([`code_verifier`], run in a
[`Sandbox`]), text ([`exact_match_verifier`], [`make_regex_verifier`], [`make_numeric_verifier`]); and
[`VerifierSuite`], which combines verifiers into accept/reject decisions.

Names are imported lazily, so that worker processes that import a submodule stay light.
"""

import importlib
from typing import TYPE_CHECKING, Any


_LAZY_ATTRIBUTES: dict[str, str] = {
    # base
    "Verdict": "base",
    "VerifierSuite": "base",
    "MissingColumnError": "base",
    "completion_to_text": "base",
    "required_columns": "base",
    "check_required_columns": "base",
    "verifier_name": "base",
    "error_reason": "base",
    "is_verifier_error": "base",
    # extraction
    "extract_answer": "extraction",
    "extract_boxed": "extraction",
    "extract_all_boxed": "extraction",
    "extract_final_boxed": "extraction",
    "extract_last_number": "extraction",
    "extract_code": "extraction",
    "make_extractor": "extraction",
    # math
    "math_verifier": "math",
    "make_math_verifier": "math",
    "group_math_answers": "math",
    "extract_math_answers": "math",
    "MathWorkerPool": "math",
    # code and sandbox
    "code_verifier": "code",
    "make_code_verifier": "code",
    "assemble_program": "code",
    "run_code_checks": "code",
    "Sandbox": "sandbox",
    "SandboxConfig": "sandbox",
    "SandboxUnavailableError": "sandbox",
    "ProgramCheck": "sandbox",
    "CheckResult": "sandbox",
    "outputs_match": "sandbox",
    # text
    "exact_match_verifier": "text",
    "make_exact_match_verifier": "text",
    "make_regex_verifier": "text",
    "make_numeric_verifier": "text",
    "normalize_text": "text",
    "parse_number": "text",
}

__all__ = list(_LAZY_ATTRIBUTES)


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_ATTRIBUTES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .base import (  # noqa: F401
        MissingColumnError,
        Verdict,
        VerifierSuite,
        check_required_columns,
        completion_to_text,
        error_reason,
        is_verifier_error,
        required_columns,
        verifier_name,
    )
    from .code import assemble_program, code_verifier, make_code_verifier, run_code_checks  # noqa: F401
    from .extraction import (  # noqa: F401
        extract_all_boxed,
        extract_answer,
        extract_boxed,
        extract_code,
        extract_final_boxed,
        extract_last_number,
        make_extractor,
    )
    from .math import (  # noqa: F401
        MathWorkerPool,
        extract_math_answers,
        group_math_answers,
        make_math_verifier,
        math_verifier,
    )
    from .sandbox import CheckResult, ProgramCheck, Sandbox, SandboxConfig, SandboxUnavailableError, outputs_match  # noqa: F401
    from .text import (  # noqa: F401
        exact_match_verifier,
        make_exact_match_verifier,
        make_numeric_verifier,
        make_regex_verifier,
        normalize_text,
        parse_number,
    )
