# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM filtering: verdicts → the kept set (capped per problem, optionally de-duplicated), and the atomic files
every stage writes to disk.

A *sample record* is a plain dict, one per generated solution:

```python
{"prompt_index": 3, "sample_index": 0, "completion": " 2 + 3 = 5. The answer is \\boxed{5}.", "num_tokens": 17,
 "finished": True, "accepted": True, "scores": {"math_verifier": 1.0}}
```
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any


# ----------------------------------------------------------------------------------------------------------------------
# Seeds


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed derived from `seed` and `parts`, stable across processes, Python runs and platforms.

    Args:
        seed (`int`): the run's seed.
        *parts: what the seed is for, e.g. `("shard", iteration, shard_index)`.

    Returns:
        `int`: a seed in `[0, 2**31)`.

    Example:

    ```python
    >>> derive_seed(0, "shard", 1, 0) == derive_seed(0, "shard", 1, 0) != derive_seed(0, "shard", 1, 1)
    True
    ```
    """
    digest = hashlib.sha256(repr((seed, *parts)).encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


# ----------------------------------------------------------------------------------------------------------------------
# Selection


def select_solutions(
    records: Sequence[dict[str, Any]],
    max_per_prompt: int | None,
    deduplicate: bool = False,
    seed: int = 0,
    iteration: int = 0,
) -> list[dict[str, Any]]:
    """Chooses the solutions ReST^EM fine-tunes on: the accepted ones, at most `max_per_prompt` per problem.

    The choice is deterministic: for each problem, a seeded random subset (seed derived from `seed`, `iteration` and
    the problem's index), so every process that runs it on the same records gets the same kept set.

    Args:
        records (`Sequence[dict]`): sample records with `prompt_index`, `sample_index`, `completion`, `accepted`.
        max_per_prompt (`int` or `None`): cap per problem; `None` keeps every accepted solution.
        deduplicate (`bool`, *optional*, defaults to `False`): drop exact duplicates (same completion text) among a
            problem's accepted solutions first, keeping the first by `sample_index`.
        seed (`int`, *optional*, defaults to `0`): the run's seed.
        iteration (`int`, *optional*, defaults to `0`): the iteration, so that each iteration draws afresh.

    Returns:
        `list[dict]`: the kept records, ordered by `(prompt_index, sample_index)`.

    Example:

    ```python
    >>> records = [{"prompt_index": 0, "sample_index": i, "completion": "x", "accepted": True} for i in range(5)]
    >>> len(select_solutions(records, max_per_prompt=2)), len(select_solutions(records, 10, deduplicate=True))
    (2, 1)
    ```
    """
    accepted: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r["prompt_index"], r["sample_index"])):
        if record["accepted"]:
            accepted[record["prompt_index"]].append(record)
    kept = []
    for prompt_index in sorted(accepted):
        candidates = accepted[prompt_index]
        if deduplicate:
            seen: set[str] = set()
            candidates = [r for r in candidates if not (r["completion"] in seen or seen.add(r["completion"]))]
        if max_per_prompt is not None and len(candidates) > max_per_prompt:
            rng = random.Random(derive_seed(seed, "select", iteration, prompt_index))
            chosen = sorted(rng.sample(range(len(candidates)), max_per_prompt))
            candidates = [candidates[i] for i in chosen]
        kept.extend(candidates)
    return kept


def prompt_completion_rows(samples: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's prompt–completion rows of kept samples (`prompt`, `completion` text): a conversational prompt gets the
    completion as an assistant message.

    Example:

    ```python
    >>> prompt_completion_rows([{"prompt": [{"role": "user", "content": "1+1?"}], "completion": "2"}])
    [{'prompt': [{'role': 'user', 'content': '1+1?'}], 'completion': [{'role': 'assistant', 'content': '2'}]}]
    ```
    """
    return [
        {
            "prompt": r["prompt"],
            "completion": r["completion"]
            if isinstance(r["prompt"], str)
            else [{"role": "assistant", "content": r["completion"]}],
        }
        for r in samples
    ]


_COUNT_KEYS = (
    "samples",
    "accepted",
    "excluded",
    "verifier_errors",
    "unfinished",
    "prompts",
    "prompts_solved",
    "completion_tokens",
)


def count_samples(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Counts over sample records, which add up over shards of distinct problems: `samples`, `accepted`, `excluded`
    (`accepted` is `None`: a verifier error counted as neither accepted nor rejected), `verifier_errors`
    (`status == "error"`), `unfinished` (no end-of-sequence token), `prompts`, `prompts_solved` (with at least one
    accepted sample) and `completion_tokens`."""
    counts = dict.fromkeys(_COUNT_KEYS, 0)
    prompts, solved = set(), set()
    for r in records:
        counts["samples"] += 1
        counts["accepted"] += bool(r["accepted"])
        counts["excluded"] += r["accepted"] is None  # a verifier error that counts as neither accepted nor rejected
        counts["verifier_errors"] += r.get("status") == "error"
        counts["unfinished"] += r.get("finished") is False
        counts["completion_tokens"] += r.get("num_tokens", 0)
        prompts.add(r["prompt_index"])
        if r["accepted"]:
            solved.add(r["prompt_index"])
    counts["prompts"], counts["prompts_solved"] = len(prompts), len(solved)
    return counts


def summarize_counts(counts: Iterable[dict[str, float]], kept: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The E-step statistics ReST^EM logs, from the [`count_samples`] of every shard and the kept samples.

    Returns:
        `dict[str, float]`: `samples`, `correct_rate` (accepted / samples judged: verifier errors excluded unless
        they count as accepted or rejected), `prompts_solved_frac` (problems with at least one accepted sample), `kept`,
        `kept_prompts` (problems with at least one kept sample), `completion_tokens` (total generated tokens),
        `unfinished` (samples without an end-of-sequence token) and `verifier_errors`.
    """
    total = dict.fromkeys(_COUNT_KEYS, 0)
    for shard in counts:
        for key in total:
            total[key] += shard.get(key, 0)
    judged = total["samples"] - total["excluded"]
    return {
        "samples": float(total["samples"]),
        "correct_rate": total["accepted"] / judged if judged else 0.0,
        "prompts_solved_frac": total["prompts_solved"] / total["prompts"] if total["prompts"] else 0.0,
        "kept": float(len(kept)),
        "kept_prompts": float(len({r["prompt_index"] for r in kept})),
        "completion_tokens": float(total["completion_tokens"]),
        "unfinished": float(total["unfinished"]),
        "verifier_errors": float(total["verifier_errors"]),
    }


def summarize_samples(records: Sequence[dict[str, Any]], kept: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The E-step statistics ReST^EM logs (see [`summarize_counts`]) from every sample record of the iteration and
    the kept ones."""
    return summarize_counts([count_samples(records)], kept)


# ----------------------------------------------------------------------------------------------------------------------
# Atomic files


def atomic_write_text(path: str | os.PathLike, text: str | Iterable[str]) -> None:
    """Writes `text` to `path` so that a reader never sees a partial file: a temporary file in the same directory is
    written, flushed to disk and renamed over `path`.

    Args:
        path (`str` or `os.PathLike`): destination (its directory is created if needed).
        text (`str` or `Iterable[str]`): the content, or pieces of it written one after the other (streamed: never
            held in memory as a whole).
    """
    path = os.fspath(path)
    pieces = [text] if isinstance(text, str) else text
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """[`atomic_write_text`] of `obj` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """[`atomic_write_text`] of `records` as JSON lines, streamed: one record at a time."""
    atomic_write_text(path, (json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_json(path: str | os.PathLike) -> Any | None:
    """Reads a JSON file, or returns `None` if it does not exist or is not valid JSON (e.g. truncated)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a JSON-lines file."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file, one at a time."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
