# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
r"""Pulling answers and programs out of completions: `\boxed{}` answers, the last number, a regular expression, and
code in markdown fences. Standard library only (the math worker processes import it).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable


_BOXED = re.compile(r"\\(?:boxed|fbox)\b\s*")
# thousands separated by commas or single spaces ("1,234", "1 000"), decimals, exponents, simple fractions ("3/4")
_NUMBER = re.compile(
    r"(?<![\w.])-?(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+(?![\d,])|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"(?:/\d+)?(?![\w])|(?<![\w.])-?\.\d+"
)
# what may not stand right before / after a number that is the whole answer: it would be part of a larger expression
# (an exponent, subscript, denominator, radicand, argument, product or sum; `\frac{1}{2}`, `2^{10}`, `3\pi/4`), or
# digits after a digit and a space (`1 0000` is not `0000`)
_BEFORE = re.compile(r"(?:(?:[\^_{(\[/*+\-×÷·|]|\\[a-zA-Z]+\*?)\s*|\d )$")
_AFTER = re.compile(r"^\s*(?:[\^_}(\[)\]/*+×÷·!|]|\\(?![,;! ])|-\s*\d)")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_LANGUAGES = {"", "python", "py", "python3", "py3", "pycon"}


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def _boxed_at(text: str, start: int) -> tuple[str, int] | None:
    """The content of the `\boxed` whose name ends at `start`, and where it ends; `None` if unclosed or empty."""
    if start < len(text) and text[start] == "{":
        depth = 0
        for position in range(start, len(text)):
            char = text[position]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    content = text[start + 1 : position].strip()
                    return (content, position + 1) if content else None
        return None
    token = re.match(r"[^\s$.,;]+", text[start:])
    return (token.group(0), start + token.end()) if token else None


def extract_boxed(text: str) -> str | None:
    r"""The content of the last complete `\boxed{...}` (or `\fbox{...}`) in `text`, braces balanced; `\boxed 5` (no
    braces) gives `"5"`.

    Args:
        text (`str`): the completion.

    Returns:
        `str` or `None`: the boxed content, stripped; `None` if there is none.

    Example:

    ```python
    >>> extract_boxed(r"so $x = \boxed{\frac{1}{2}}$.")
    '\\frac{1}{2}'
    ```
    """
    for match in reversed(list(_BOXED.finditer(text))):
        found = _boxed_at(text, match.end())
        if found is not None:
            return found[0]
    return None


def extract_all_boxed(text: str) -> list[str]:
    r"""The contents of every complete `\boxed{...}` (or `\fbox{...}`) in `text`, in order (a boxed answer inside
    another is part of the outer one).

    Args:
        text (`str`): the completion.

    Returns:
        `list[str]`: the boxed contents, stripped.

    Example:

    ```python
    >>> extract_all_boxed(r"$\boxed{3}$ and $\boxed{\frac{1}{2}}$")
    ['3', '\\frac{1}{2}']
    ```
    """
    return [content for content, _, _ in _all_boxed(text)]


def _all_boxed(text: str) -> list[tuple[str, int, int]]:
    found_all, covered = [], 0
    for match in _BOXED.finditer(text):
        if match.start() < covered:
            continue
        found = _boxed_at(text, match.end())
        if found is not None:
            found_all.append((found[0], match.start(), found[1]))
            covered = found[1]
    return found_all


# what may separate boxed answers given together: a short stretch without a sentence end or paragraph break
_TOGETHER = re.compile(r"(?:(?![.!?](?:\s|$))(?!\n\s*\n)[\s\S]){0,80}")


def extract_final_boxed(text: str) -> list[str]:
    r"""The final boxed answers of `text`: the last complete `\boxed{...}` and those given together with it, that is
    each earlier one separated from the next by at most 80 characters without a sentence end or a paragraph break
    (`\boxed{1}, \boxed{2}`, `$\boxed{3}$ and $\boxed{5}$`, `\boxed{a} \quad \text{and} \quad \boxed{b}`).

    Args:
        text (`str`): the completion.

    Returns:
        `list[str]`: the boxed contents, in order; empty if there is none.

    Example:

    ```python
    >>> extract_final_boxed(r"First \boxed{7}. So the roots are $\boxed{1}$ and $\boxed{2}$.")
    ['1', '2']
    ```
    """
    return [content for content, _, _ in _final_boxed(text)]


def _final_boxed(text: str) -> list[tuple[str, int, int]]:
    boxed = _all_boxed(text)
    first = len(boxed) - 1
    while first > 0 and _TOGETHER.fullmatch(text, boxed[first - 1][2], boxed[first][1]):
        first -= 1
    return boxed[max(first, 0) :]


_DOLLAR = re.compile(r"(?<!\\)\$")


def stands_alone(text: str, start: int, end: int) -> bool:
    r"""Whether `text[start:end]` (a number) stands on its own rather than inside a larger expression: not a
    denominator, exponent, subscript, radicand, argument, factor or term (`\frac{1}{2}`, `2^{10}`, `\sqrt 3`, `3\pi/4`,
    `f(3)`, `2 \cdot 5`, `1 + 4`)."""
    return _BEFORE.search(text[max(0, start - 32) : start]) is None and _AFTER.match(text[end : end + 16]) is None


def inside_math(text: str, start: int, end: int) -> bool:
    r"""Whether `text[start:end]` lies between math delimiters (`$...$`, `\(...\)`, `\[...\]`)."""
    before, after = text[:start], text[end:]
    if len(_DOLLAR.findall(before)) % 2 == 1 and _DOLLAR.search(after):
        return True
    for opening, closing in (("\\(", "\\)"), ("\\[", "\\]")):
        if before.rfind(opening) > before.rfind(closing) and closing in after:
            return True
    return False


def extract_last_number(text: str) -> str | None:
    r"""The last number in `text`, when it stands as a whole answer: integers, decimals, thousands separators (`1,234`,
    `1 000`), exponents and simple fractions (`3/4`), with an optional minus sign.

    A last number that is part of a larger expression gives `None`, not that number: a denominator, exponent, subscript
    or radicand (`\frac{1}{2}`, `2^{10}`, `\sqrt{3}`, `3\pi/4`), a factor, term or argument (`2 \cdot 5`, `1 + 4`,
    `f(3)`). Earlier numbers are never used instead (they are intermediate results).

    Args:
        text (`str`): the completion.

    Returns:
        `str` or `None`: the number as written; `None` if there is none, or if the last one is not a whole answer.

    Example:

    ```python
    >>> extract_last_number("5 + 3 = 8. The answer is 8.")
    '8'
    >>> extract_last_number(r"The answer is $\frac{1}{2}$.") is None
    True
    ```
    """
    last = _last_match(_NUMBER, text)
    if last is None or not stands_alone(text, last.start(), last.end()):
        return None
    return last.group(0)


def make_extractor(extraction: str | Callable[[str], str | None] = "auto") -> Callable[[str], str | None]:
    r"""Turns an extraction setting into a function `text -> answer or None`.

    Args:
        extraction (`str` or `callable`, *optional*, defaults to `"auto"`):
            - `"boxed"`: [`extract_boxed`];
            - `"last_number"`: [`extract_last_number`];
            - `"auto"`: the `\boxed{}` answer if there is one, else the last number;
            - any other string: a regular expression; the answer is its first group (or the whole match if it has no
              group) in the **last** match;
            - a callable: used as is.

    Returns:
        `callable`: the extractor.

    Example:

    ```python
    >>> make_extractor(r"Answer: (\w+)")("Answer: yes. Answer: no")
    'no'
    ```
    """
    if callable(extraction):
        return extraction
    if extraction == "boxed":
        return extract_boxed
    if extraction == "last_number":
        return extract_last_number
    if extraction == "auto":
        return _extract_auto
    if not isinstance(extraction, str) or not extraction:
        raise ValueError(
            f"`extraction` must be 'auto', 'boxed', 'last_number', a regex or a callable, got {extraction!r}."
        )
    try:
        pattern = re.compile(extraction)
    except re.error as exc:
        raise ValueError(f"`extraction` {extraction!r} is not a valid regular expression: {exc}") from exc
    if pattern.groups > 1:
        raise ValueError(f"The extraction regex {extraction!r} must have at most one group, it has {pattern.groups}.")
    return _RegexExtractor(pattern)


class _RegexExtractor:
    """Picklable regex extractor (the math workers receive it)."""

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def __call__(self, text: str) -> str | None:
        last = _last_match(self.pattern, text)
        if last is None:
            return None
        answer = last.group(1) if self.pattern.groups else last.group(0)
        return None if answer is None else answer.strip()


def _extract_auto(text: str) -> str | None:
    return extract_boxed(text) or extract_last_number(text)


def extract_answer(text: str, extraction: str | Callable[[str], str | None] = "auto") -> str | None:
    r"""Extracts the final answer from a completion (see [`make_extractor`] for the settings).

    Args:
        text (`str`): the completion.
        extraction (`str` or `callable`, *optional*, defaults to `"auto"`): how.

    Returns:
        `str` or `None`: the answer, or `None` if none was found.

    Example:

    ```python
    >>> extract_answer(r"2 + 2 = 4, so \boxed{4}.")
    '4'
    ```
    """
    return make_extractor(extraction)(text)


def defines(code: str, name: str) -> bool:
    """Whether `code` defines `name` at some indentation (`def name(`, `async def name(` or `name = `).

    Args:
        code (`str`): Python source.
        name (`str`): a function name.

    Returns:
        `bool`: whether a definition is present.

    Example:

    ```python
    >>> defines("def add(a, b):\\n    return a + b\\n", "add")
    True
    ```
    """
    escaped = re.escape(name)
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{escaped}[ \t]*\(|^{escaped}[ \t]*=", code, re.MULTILINE)
        is not None
    )


def extract_code(text: str, entry_point: str | None = None) -> str | None:
    """The program in a markdown code fence, if the completion has one.

    Python fences (` ```python `, ` ```py `, or no language) are preferred; among them, the last one that defines
    `entry_point` (when given), else the last one. A fence left open at the end (a truncated completion) counts.

    Args:
        text (`str`): the completion.
        entry_point (`str`, *optional*): the function the program must define.

    Returns:
        `str` or `None`: the code, or `None` when the completion has no fence.

    Example:

    ```python
    >>> extract_code("Here:\\n```python\\nprint(1)\\n```\\nDone.")
    'print(1)\\n'
    ```
    """
    if "```" not in text:
        return None
    blocks = [(match.group(1).lower(), match.group(2)) for match in _FENCE.finditer(text)]
    if not blocks:
        return None
    python = [code for language, code in blocks if language in _PYTHON_LANGUAGES] or [code for _, code in blocks]
    if entry_point:
        defining = [code for code in python if defines(code, entry_point)]
        if defining:
            return defining[-1]
    return python[-1]
