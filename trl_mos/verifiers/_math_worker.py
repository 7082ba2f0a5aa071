# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Worker process for the math verifier: runs `math_verify` with its own (SIGALRM) timeouts switched off; the parent
enforces the per-item timeout by killing this process. Started by [`~trl_mos.verifiers.math.MathWorkerPool`]."""

from __future__ import annotations

import functools
import logging
import sys

from . import _sandbox_runtime as runtime
from .extraction import make_extractor


_PARSE = None


def _load() -> None:
    global _PARSE
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "Timeout is disabled" warnings: we time out ourselves
    answer_config = [
        LatexExtractionConfig(normalization_config=NormalizationConfig(units=True), boxed_match_priority=0),
        ExprExtractionConfig(),
    ]
    _PARSE = (parse, verify, answer_config)


@functools.lru_cache(maxsize=4096)
def parse_gold(gold: str) -> list:
    parse = _PARSE[0]
    delimited = any(marker in gold for marker in ("$", "\\boxed", "\\(", "\\["))
    parsed = parse(gold, parsing_timeout=None) if delimited else parse(f"${gold}$", parsing_timeout=None)
    if not parsed and not delimited:
        parsed = parse(gold, parsing_timeout=None)
    return parsed


@functools.lru_cache(maxsize=4096)
def parse_answer(answer: str) -> list:
    parse, _, config = _PARSE
    return parse(
        "\\boxed{" + answer + "}", extraction_config=config, extraction_mode="first_match", parsing_timeout=None
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def score(text: str | None, answer: str | None, gold, extractor) -> tuple[float | None, str, str | None]:
    """(score, reason, extracted answer) for one completion."""
    verify = _PARSE[1]
    if gold is None or (isinstance(gold, str) and not gold.strip()):
        return None, "no gold answer", None
    gold = str(gold)
    gold_parsed = parse_gold(gold)
    if not gold_parsed:
        return None, f"the gold answer {_short(gold)!r} could not be parsed", None
    if answer is None and text is not None:
        answer = extractor(text)
    if answer is None or not answer.strip():
        return 0.0, "no answer found", None
    parsed = parse_answer(answer)
    if not parsed:
        return 0.0, f"the answer {_short(answer)!r} could not be parsed", answer
    if verify(gold_parsed, parsed, timeout_seconds=None):
        return 1.0, "", answer
    return 0.0, f"wrong answer {_short(answer)!r} (expected {_short(gold)!r})", answer


def group(answers: list[str | None]) -> list[int]:
    """Group index of each answer (-1 for None); an answer joins the first group whose first member math-verify finds
    equal to it (that member taken as the gold)."""
    verify = _PARSE[1]
    representatives: list[tuple[str, list]] = []
    groups = []
    for answer in answers:
        if answer is None or not str(answer).strip():
            groups.append(-1)
            continue
        answer = str(answer).strip()
        parsed = parse_answer(answer)
        for index, (text, rep_parsed) in enumerate(representatives):
            if text == answer or (parsed and rep_parsed and verify(rep_parsed, parsed, timeout_seconds=None)):
                groups.append(index)
                break
        else:
            representatives.append((answer, parsed))
            groups.append(len(representatives) - 1)
    return groups


def main(in_fd: int, out_fd: int, memory_limit_mb: int) -> None:
    if memory_limit_mb > 0:
        import resource

        limit = memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _load()
    runtime.write_message(out_fd, {"ready": True})
    while True:
        request = runtime.read_message(in_fd)
        if request is None:
            return
        if request["op"] == "verify":
            extractor = make_extractor(request["extraction"])
            for index, (text, answer, gold) in enumerate(request["items"]):
                try:
                    outcome = score(text, answer, gold, extractor)
                except Exception as exc:  # MemoryError, RecursionError, sympy errors...
                    # `base.error_reason`, not imported here (it imports transformers)
                    outcome = (None, f"verifier error: {type(exc).__name__}: {str(exc)[:200]}", None)
                runtime.write_message(out_fd, (index, *outcome))
        elif request["op"] == "group":
            try:
                runtime.write_message(out_fd, group(request["answers"]))
            except Exception as exc:
                runtime.write_message(out_fd, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
