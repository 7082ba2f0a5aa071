# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Worker process for the math verifier: runs `math_verify` with its own (SIGALRM) timeouts switched off; the parent
enforces the per-item timeout by killing this process. Started by [`~trl_mos.verifiers.math.MathWorkerPool`]."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys

from . import _sandbox_runtime as runtime
from .extraction import _final_boxed, inside_math, make_extractor, stands_alone


_MV = None

# the options of `make_math_verifier` that reach math-verify, with math-verify's defaults
DEFAULT_OPTIONS = {
    "boxed": "all",
    "normalization": {},
    "float_rounding": 6,
    "numeric_precision": 15,
    "strict": True,
    "allow_set_relation_comp": False,
}


_FINAL_ANSWER = re.compile(r"final answer", re.IGNORECASE)
_GUARD = False  # while True, math-verify's plain-expression extraction only takes numbers that stand alone


def _expr_stands_alone(match) -> bool:
    """Whether a match of math-verify's plain-expression regexes is a whole answer: not part of a larger expression
    (`2^{10}` read as `2`) and not inside math delimiters that its LaTeX extraction could not read."""
    spans = [
        match.span(name)
        for name, value in match.groupdict().items()
        if value and (name == "expr" or name.startswith(("integer", "decimal")))
    ]
    if not spans:
        return True
    start, end = min(span[0] for span in spans), max(span[1] for span in spans)
    return stands_alone(match.string, start, end) and not inside_math(match.string, start, end)


def _load() -> None:
    global _MV
    import math_verify
    import math_verify.parser
    from latex2sympy2_extended import NormalizationConfig

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "Timeout is disabled" warnings: we time out ourselves
    extract_expr = math_verify.parser.extract_expr

    def guarded_extract_expr(match):  # `extract_match` looks this name up at each call
        if _GUARD and not _expr_stands_alone(match):
            return None, ""
        return extract_expr(match)

    math_verify.parser.extract_expr = guarded_extract_expr
    _MV = (math_verify, NormalizationConfig)


class _Config:
    """math-verify's extraction configurations and verify arguments for one set of options."""

    def __init__(self, options: dict):
        math_verify, NormalizationConfig = _MV
        options = {**DEFAULT_OPTIONS, **options}
        # math-verify's own normalisation defaults (LatexExtractionConfig), with the user's overrides
        normalization = {
            **math_verify.LatexExtractionConfig().normalization_config.__dict__,
            **options["normalization"],
        }
        config = NormalizationConfig(**normalization)
        latex = math_verify.LatexExtractionConfig(normalization_config=config)
        boxed_first = math_verify.LatexExtractionConfig(normalization_config=config, boxed_match_priority=0)
        expr = math_verify.ExprExtractionConfig()
        self.boxed = options["boxed"]
        self.gold = [latex, expr]
        self.answer = [boxed_first, expr]  # an extracted answer, given as `\boxed{answer}`
        self.text = [latex, expr]  # a whole completion
        self.verify_kwargs = {
            key: options[key] for key in ("float_rounding", "numeric_precision", "strict", "allow_set_relation_comp")
        }


@functools.lru_cache(maxsize=16)
def _config(options_json: str) -> _Config:
    return _Config(json.loads(options_json))


def _parse(text: str, extraction_config: list, mode: str = "any_match", guard: bool = False) -> list:
    global _GUARD
    _GUARD = guard
    try:
        return _MV[0].parse(text, extraction_config=extraction_config, extraction_mode=mode, parsing_timeout=None)
    finally:
        _GUARD = False


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, options_json: str) -> list:
    config = _config(options_json)
    delimited = any(marker in gold for marker in ("$", "\\boxed", "\\(", "\\["))
    parsed = _parse(gold if delimited else f"${gold}$", config.gold)
    if not parsed and not delimited:
        parsed = _parse(gold, config.gold)
    return parsed


@functools.lru_cache(maxsize=4096)
def _parse_answer(answer: str, options_json: str) -> list:
    return _parse("\\boxed{" + answer + "}", _config(options_json).answer, mode="first_match")


def parse_gold(gold: str, options_json: str = "{}") -> list:
    return _parse_gold(gold, options_json)


def parse_answer(answer: str, options_json: str = "{}") -> list:
    return _parse_answer(answer, options_json)


def _shown(parsed: list) -> str:
    """The answer as math-verify read it: its string form (the last item), else the parsed value."""
    return str(parsed[-1] if isinstance(parsed[-1], str) else parsed[0])


def extract_and_parse(text: str, options_json: str) -> tuple[list, str | None]:
    r"""The `"auto"` extraction: `(parsed, answer)` from a whole completion.

    - with a `\boxed{}`: the last one and those given together with it, read together as math-verify does
      (`boxed="all"`, see [`extract_final_boxed`]), or the last one alone (`boxed="last"`); unless a "final answer"
      follows them, which is read instead;
    - without: math-verify's own extraction (LaTeX in `$...$` / `\[...\]`, "final answer is ...", plain expressions
      such as `1 000` or `3/4`), where a plain number must stand as a whole answer: never a part of a larger expression
      (math-verify alone reads `I think 2^{10}` as `2`) nor a piece of math delimiters that did not parse.
    """
    config = _config(options_json)
    boxed = _final_boxed(text)
    if boxed:
        tail = text[boxed[-1][2] :]
        if _FINAL_ANSWER.search(tail):  # "... \boxed{200} ... The final answer is $10,455$."
            parsed = _parse(tail, config.text, guard=True)
            if parsed:
                return parsed, _shown(parsed)
        # "all": the boxed answers given together, joined with commas as math-verify's normalisation joins them
        answer = boxed[-1][0] if config.boxed == "last" else ",".join(content for content, _, _ in boxed)
        return parse_answer(answer, options_json), answer
    parsed = _parse(text, config.text, guard=True)
    return (parsed, _shown(parsed)) if parsed else ([], None)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def score(
    text: str | None, answer: str | None, gold, extractor, options_json: str = "{}"
) -> tuple[float | None, str, str | None]:
    """(score, reason, extracted answer) for one completion; `extractor=None` is the `"auto"` extraction."""
    if gold is None or (isinstance(gold, str) and not gold.strip()):
        return None, "no gold answer", None
    gold = str(gold)
    gold_parsed = parse_gold(gold, options_json)
    if not gold_parsed:
        return None, f"the gold answer {_short(gold)!r} could not be parsed", None
    if answer is None and text is not None and extractor is None:
        parsed, answer = extract_and_parse(text, options_json)
        if answer is None:
            return 0.0, "no answer found", None
    else:
        if answer is None and text is not None:
            answer = extractor(text)
        if answer is None or not answer.strip():
            return 0.0, "no answer found", None
        parsed = parse_answer(answer, options_json)
    if not parsed:
        return 0.0, f"the answer {_short(answer)!r} could not be parsed", answer
    if _MV[0].verify(gold_parsed, parsed, timeout_seconds=None, **_config(options_json).verify_kwargs):
        return 1.0, "", answer
    return 0.0, f"wrong answer {_short(answer)!r} (expected {_short(gold)!r})", answer


def group(answers: list[str | None], options_json: str = "{}") -> list[int]:
    """Group index of each answer (-1 for None); an answer joins the first group whose first member math-verify finds
    equal to it (that member taken as the gold)."""
    verify_kwargs = _config(options_json).verify_kwargs
    representatives: list[tuple[str, list]] = []
    groups = []
    for answer in answers:
        if answer is None or not str(answer).strip():
            groups.append(-1)
            continue
        answer = str(answer).strip()
        parsed = parse_answer(answer, options_json)
        for index, (text, rep_parsed) in enumerate(representatives):
            if text == answer or (
                parsed and rep_parsed and _MV[0].verify(rep_parsed, parsed, timeout_seconds=None, **verify_kwargs)
            ):
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
        options_json = json.dumps(request.get("options") or {}, sort_keys=True)
        if request["op"] == "verify":
            extraction = request["extraction"]
            extractor = None if extraction == "auto" else make_extractor(extraction)
            for index, (text, answer, gold) in enumerate(request["items"]):
                try:
                    outcome = score(text, answer, gold, extractor, options_json)
                except Exception as exc:  # MemoryError, RecursionError, sympy errors...
                    # `base.error_reason`, not imported here (it imports transformers)
                    outcome = (None, f"verifier error: {type(exc).__name__}: {str(exc)[:200]}", None)
                runtime.write_message(out_fd, (index, *outcome))
        elif request["op"] == "extract":
            for index, text in enumerate(request["items"]):
                try:
                    answer = extract_and_parse(text, options_json)[1]
                except Exception:  # an answer that breaks math-verify is no answer
                    answer = None
                runtime.write_message(out_fd, (index, answer))
        elif request["op"] == "group":
            try:
                runtime.write_message(out_fd, group(request["answers"], options_json))
            except Exception as exc:
                runtime.write_message(out_fd, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
