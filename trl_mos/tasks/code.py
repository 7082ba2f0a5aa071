# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""A small set of code tasks with unit tests, in the two shapes code verifiers meet in practice.

- `kind="function"` (HumanEval style): `prompt` is a signature and docstring, `test` defines `check(candidate)` made
  of asserts, `entry_point` names the function, `canonical_solution` is a correct body.
- `kind="stdio"` (APPS / CodeContests style): `prompt` describes a program that reads standard input; `inputs` and
  `outputs` are the test cases; `canonical_solution` is a correct program.
"""

from __future__ import annotations

from typing import Literal

from datasets import Dataset


_FUNCTION_TASKS = [
    {
        "entry_point": "add",
        "prompt": 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n"
        "    assert candidate(10, 32) == 42\n",
    },
    {
        "entry_point": "reverse_string",
        "prompt": 'def reverse_string(s: str) -> str:\n    """Return s reversed."""\n',
        "canonical_solution": "    return s[::-1]\n",
        "test": "def check(candidate):\n    assert candidate('abc') == 'cba'\n    assert candidate('') == ''\n"
        "    assert candidate('racecar') == 'racecar'\n",
    },
    {
        "entry_point": "is_even",
        "prompt": 'def is_even(n: int) -> bool:\n    """Return True if n is even."""\n',
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert candidate(2) is True\n    assert candidate(7) is False\n"
        "    assert candidate(0) is True\n",
    },
    {
        "entry_point": "max_of_list",
        "prompt": 'def max_of_list(xs: list) -> int:\n    """Return the largest element of a non-empty list."""\n',
        "canonical_solution": "    return max(xs)\n",
        "test": "def check(candidate):\n    assert candidate([1, 5, 3]) == 5\n    assert candidate([-2, -9]) == -2\n"
        "    assert candidate([7]) == 7\n",
    },
    {
        "entry_point": "count_vowels",
        "prompt": 'def count_vowels(s: str) -> int:\n    """Return how many of the characters of s are vowels (aeiou)."""\n',
        "canonical_solution": "    return sum(c in 'aeiou' for c in s)\n",
        "test": "def check(candidate):\n    assert candidate('hello') == 2\n    assert candidate('xyz') == 0\n"
        "    assert candidate('aeiou') == 5\n",
    },
    {
        "entry_point": "fizzbuzz",
        "prompt": 'def fizzbuzz(n: int) -> str:\n    """Return "Fizz" for multiples of 3, "Buzz" for multiples of 5,\n'
        '    "FizzBuzz" for multiples of both, else str(n)."""\n',
        "canonical_solution": "    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n        return 'Fizz'\n"
        "    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)\n",
        "test": "def check(candidate):\n    assert candidate(3) == 'Fizz'\n    assert candidate(10) == 'Buzz'\n"
        "    assert candidate(30) == 'FizzBuzz'\n    assert candidate(7) == '7'\n",
    },
    {
        "entry_point": "factorial",
        "prompt": 'def factorial(n: int) -> int:\n    """Return n! for n >= 0."""\n',
        "canonical_solution": "    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n",
        "test": "def check(candidate):\n    assert candidate(0) == 1\n    assert candidate(5) == 120\n"
        "    assert candidate(10) == 3628800\n",
    },
    {
        "entry_point": "unique_sorted",
        "prompt": 'def unique_sorted(xs: list) -> list:\n    """Return the distinct elements of xs in increasing order."""\n',
        "canonical_solution": "    return sorted(set(xs))\n",
        "test": "def check(candidate):\n    assert candidate([3, 1, 3, 2]) == [1, 2, 3]\n    assert candidate([]) == []\n",
    },
]

_STDIO_TASKS = [
    {
        "prompt": "Read two integers a and b from one line of standard input and print their sum.",
        "canonical_solution": "a, b = map(int, input().split())\nprint(a + b)\n",
        "inputs": ["1 2\n", "-5 5\n", "100 23\n"],
        "outputs": ["3\n", "0\n", "123\n"],
    },
    {
        "prompt": "Read a line of text and print it in upper case.",
        "canonical_solution": "print(input().upper())\n",
        "inputs": ["hello\n", "Mixed Case\n"],
        "outputs": ["HELLO\n", "MIXED CASE\n"],
    },
    {
        "prompt": "The first line holds n; the next line holds n integers. Print them sorted in increasing order, "
        "separated by spaces.",
        "canonical_solution": "input()\nprint(*sorted(map(int, input().split())))\n",
        "inputs": ["3\n3 1 2\n", "1\n7\n"],
        "outputs": ["1 2 3\n", "7\n"],
    },
    {
        "prompt": "Read an integer n and print the numbers 1 to n, one per line.",
        "canonical_solution": "n = int(input())\nfor i in range(1, n + 1):\n    print(i)\n",
        "inputs": ["3\n", "1\n"],
        "outputs": ["1\n2\n3\n", "1\n"],
    },
]


def make_code_tasks(kind: Literal["function", "stdio"] = "function") -> Dataset:
    """Returns the bundled code tasks of one kind, with canonical solutions that pass every test.

    Args:
        kind (`str`, *optional*, defaults to `"function"`):
            `"function"` for assert-style tasks (columns `prompt`, `entry_point`, `test`, `canonical_solution`), or
            `"stdio"` for standard-input tasks (columns `prompt`, `inputs`, `outputs`, `canonical_solution`).

    Returns:
        [`~datasets.Dataset`]: the tasks.

    Example:

    ```python
    >>> from trl_mos.tasks import make_code_tasks
    >>> make_code_tasks("function")[0]["entry_point"]
    'add'
    ```
    """
    if kind == "function":
        rows = _FUNCTION_TASKS
    elif kind == "stdio":
        rows = _STDIO_TASKS
    else:
        raise ValueError(f"Unknown kind {kind!r}; use 'function' or 'stdio'.")
    return Dataset.from_list([dict(row) for row in rows])
