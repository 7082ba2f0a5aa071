# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Text verifiers: normalised exact match, regular expressions, and numbers within a tolerance."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from fractions import Fraction

from .base import Outcome, build_verifier, guarded
from .extraction import make_extractor


_TRAILING_PUNCTUATION = ".!;,"


def normalize_text(text: str) -> str:
    """Normalises an answer for exact matching: Unicode NFKC, case folded, surrounding whitespace and trailing
    sentence punctuation (`.!;,`) removed, runs of whitespace collapsed to one space.

    Args:
        text (`str`): an answer or a reference.

    Returns:
        `str`: the normalised text.

    Example:

    ```python
    >>> normalize_text("  The  Eiffel Tower. ")
    'the eiffel tower'
    ```
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = " ".join(text.split())
    return text.rstrip(_TRAILING_PUNCTUATION).rstrip()


def _references(value) -> list[str] | None:
    """A reference column value as a list of acceptable answers (a list means any of them)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        references = [str(item) for item in value if item is not None]
        return references or None
    return [str(value)]


def make_exact_match_verifier(
    column: str = "solution",
    normalize: Callable[[str], str] = normalize_text,
    extraction: str | Callable[[str], str | None] | None = None,
    name: str = "exact_match_verifier",
) -> Callable[..., list[float | None]]:
    """Builds an exact-match verifier: 1.0 when the normalised completion (or the answer extracted from it) equals the
    normalised reference in `column`, else 0.0; `None` when the reference is missing. A reference that is a list of
    strings accepts any of them.

    Args:
        column (`str`, *optional*, defaults to `"solution"`): the reference column.
        normalize (`callable`, *optional*, defaults to [`normalize_text`]): applied to both sides, e.g.
            `trl_mos.tasks.skills.normalize_answer` for the bundled skill tasks.
        extraction (`str` or `callable`, *optional*): compare only the extracted answer (see
            [`~trl_mos.verifiers.extraction.make_extractor`]); `None` compares the whole completion.
        name (`str`, *optional*, defaults to `"exact_match_verifier"`): name of the returned function.

    Returns:
        `callable`: `f(prompts, completions, <column>, **kwargs) -> list[float | None]`.

    Example:

    ```python
    >>> verifier = make_exact_match_verifier(column="answer")
    >>> verifier(prompts=["?", "?"], completions=["Paris.", "London"], answer=["paris", "Paris"])
    [1.0, 0.0]
    ```
    """
    extractor = None if extraction is None else make_extractor(extraction)

    def score_one(text: str, reference) -> Outcome:
        references = _references(reference)
        if references is None:
            return None, "no reference answer"
        answer = text if extractor is None else extractor(text)
        if answer is None:
            return 0.0, "no answer found"
        normalized = normalize(answer)
        if any(normalized == normalize(ref) for ref in references):
            return 1.0, ""
        return 0.0, f"{normalized[:60]!r} does not match {normalize(references[0])[:60]!r}"

    def score_batch(texts: list[str], columns: dict[str, list], prompts: list | None) -> list[Outcome]:
        return [guarded(name, score_one, text, ref) for text, ref in zip(texts, columns[column], strict=True)]

    return build_verifier(name, [column], score_batch, doc=make_exact_match_verifier.__doc__)


exact_match_verifier = make_exact_match_verifier()
exact_match_verifier.__doc__ = """Exact-match verifier with the defaults of [`make_exact_match_verifier`]: the whole completion, normalised with
[`normalize_text`], against the `solution` column.

Args:
    prompts (`list`): the prompts (unused).
    completions (`list[str]` or `list[list[dict]]`): the completions.
    solution (`list[str]`): the references (a list of strings per sample accepts any of them).
    **kwargs: other columns and trainer arguments (ignored).

Returns:
    `list[float | None]`: 1.0 match, 0.0 no match, None no reference.

Example:

```python
>>> exact_match_verifier(prompts=["?"], completions=[" C b a "], solution=["c b a"])
[1.0]
```
"""


def make_regex_verifier(
    pattern: str | None = None,
    *,
    column: str | None = None,
    flags: int = 0,
    fullmatch: bool = False,
    name: str = "regex_verifier",
) -> Callable[..., list[float | None]]:
    r"""Builds a verifier that scores 1.0 when a regular expression matches the completion, else 0.0.

    Give either a fixed `pattern` (e.g. a format check) or a `column` holding one pattern per sample (e.g. datasets
    whose reference is a regex of accepted answers); a sample whose pattern is missing gets `None`, one whose pattern
    does not compile gets 0.0 with the reason.

    Args:
        pattern (`str`, *optional*): the regular expression.
        column (`str`, *optional*): dataset column with a regular expression per sample.
        flags (`int`, *optional*, defaults to `0`): `re` flags, e.g. `re.IGNORECASE`.
        fullmatch (`bool`, *optional*, defaults to `False`): require the whole (stripped) completion to match, rather
            than a match anywhere.
        name (`str`, *optional*, defaults to `"regex_verifier"`): name of the returned function.

    Returns:
        `callable`: `f(prompts, completions, [<column>], **kwargs) -> list[float | None]`.

    Example:

    ```python
    >>> verifier = make_regex_verifier(r"<answer>.+</answer>")
    >>> verifier(prompts=["?", "?"], completions=["<answer>4</answer>", "4"])
    [1.0, 0.0]
    ```
    """
    if (pattern is None) == (column is None):
        raise ValueError("Give exactly one of `pattern` (a fixed regex) or `column` (a regex per sample).")
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"`pattern` {pattern!r} is not a valid regular expression: {exc}") from exc

    def score_one(text: str, sample_pattern) -> Outcome:
        regex = compiled
        if regex is None:
            if sample_pattern is None:
                return None, "no pattern"
            try:
                regex = re.compile(str(sample_pattern), flags)
            except re.error as exc:
                return 0.0, f"malformed pattern: {exc}"
        matched = regex.fullmatch(text.strip()) if fullmatch else regex.search(text)
        return (1.0, "") if matched else (0.0, f"no match for {regex.pattern[:60]!r}")

    def score_batch(texts: list[str], columns: dict[str, list], prompts: list | None) -> list[Outcome]:
        patterns = columns[column] if column is not None else [None] * len(texts)
        return [guarded(name, score_one, text, sample) for text, sample in zip(texts, patterns, strict=True)]

    return build_verifier(name, [column] if column else [], score_batch, doc=make_regex_verifier.__doc__)


_NUMBER_TEXT = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


def parse_number(text: str) -> float | None:
    r"""Reads a number written as an integer, a decimal, with thousands separators (`1,234`), in scientific notation,
    as a fraction (`3/4`, `\frac{3}{4}`), or as a percentage (`12.5%` is 12.5); surrounding `$` and spaces are ignored.

    Args:
        text (`str`): the number as written.

    Returns:
        `float` or `None`: its value, or `None` if it is not a number.

    Example:

    ```python
    >>> parse_number("1,234.5"), parse_number(r"\frac{3}{4}"), parse_number("abc")
    (1234.5, 0.75, None)
    ```
    """
    text = str(text).strip().strip("$").strip()
    text = text.rstrip("%").strip().replace(",", "").replace(" ", "")
    frac = re.fullmatch(r"\\d?frac\{([-+]?\d+)\}\{([-+]?\d+)\}", text)
    if frac:
        text = f"{frac.group(1)}/{frac.group(2)}"
    if "/" in text:
        numerator, _, denominator = text.partition("/")
        if _NUMBER_TEXT.match(numerator) and _NUMBER_TEXT.match(denominator):
            try:
                return float(Fraction(numerator) / Fraction(denominator))
            except (ZeroDivisionError, ValueError):
                return None
        return None
    if not _NUMBER_TEXT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def make_numeric_verifier(
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    column: str = "solution",
    extraction: str | Callable[[str], str | None] = "auto",
    name: str = "numeric_verifier",
) -> Callable[..., list[float | None]]:
    r"""Builds a verifier that compares the number in each completion with the reference number in `column`,
    `math.isclose(answer, reference, rel_tol=rel_tol, abs_tol=abs_tol)`.

    Scores: 1.0 close enough; 0.0 not close, or no number found; `None` when the reference is missing or not a number.

    Args:
        rel_tol (`float`, *optional*, defaults to `1e-6`): relative tolerance.
        abs_tol (`float`, *optional*, defaults to `1e-9`): absolute tolerance.
        column (`str`, *optional*, defaults to `"solution"`): the reference column.
        extraction (`str` or `callable`, *optional*, defaults to `"auto"`): how to find the number (`"auto"`: the
            last `\boxed{}`, else the last number; see [`~trl_mos.verifiers.extraction.make_extractor`]).
        name (`str`, *optional*, defaults to `"numeric_verifier"`): name of the returned function.

    Returns:
        `callable`: `f(prompts, completions, <column>, **kwargs) -> list[float | None]`.

    Example:

    ```python
    >>> verifier = make_numeric_verifier(rel_tol=1e-2)
    >>> verifier(prompts=["?", "?"], completions=["about 3.14159", "3.3"], solution=["3.14", "3.14"])
    [1.0, 0.0]
    ```
    """
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError("`rel_tol` and `abs_tol` must not be negative.")
    extractor = make_extractor(extraction)

    def score_one(text: str, reference) -> Outcome:
        if reference is None:
            return None, "no reference answer"
        expected = parse_number(str(reference))
        if expected is None:
            return None, f"the reference {str(reference)[:60]!r} is not a number"
        answer = extractor(text)
        value = None if answer is None else parse_number(answer)
        if value is None:
            return 0.0, "no number found" if answer is None else f"{answer[:60]!r} is not a number"
        if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol):
            return 1.0, ""
        return 0.0, f"{value:g} is not within tolerance of {expected:g}"

    def score_batch(texts: list[str], columns: dict[str, list], prompts: list | None) -> list[Outcome]:
        return [guarded(name, score_one, text, ref) for text, ref in zip(texts, columns[column], strict=True)]

    return build_verifier(name, [column], score_batch, doc=make_numeric_verifier.__doc__)
