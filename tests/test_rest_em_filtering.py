# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM filtering: capped, seeded, de-duplicated selection; statistics; atomic files."""

import json
import os
from collections import Counter

import pytest

from trl_mos.rest_em.filtering import (
    atomic_write_json,
    atomic_write_jsonl,
    derive_seed,
    read_json,
    read_jsonl,
    select_solutions,
    summarize_samples,
)


def _records(accepted_per_prompt, samples=8, duplicate=False):
    records = []
    for prompt, accepted in enumerate(accepted_per_prompt):
        for sample in range(samples):
            text = "same" if duplicate else f"p{prompt}s{sample}"
            records.append(
                {"prompt_index": prompt, "sample_index": sample, "completion": text, "accepted": sample < accepted}
            )
    return records


def test_keeps_only_accepted_at_most_cap_per_prompt():
    records = _records([8, 3, 0, 1])
    kept = select_solutions(records, max_per_prompt=2, seed=0, iteration=1)
    per_prompt = Counter(r["prompt_index"] for r in kept)
    assert per_prompt == {0: 2, 1: 2, 3: 1}
    assert all(r["accepted"] for r in kept)
    assert kept == sorted(kept, key=lambda r: (r["prompt_index"], r["sample_index"]))


def test_choice_is_seeded_and_varies_with_seed_and_iteration():
    records = _records([8] * 20)
    first = select_solutions(records, 3, seed=0, iteration=1)
    assert first == select_solutions(list(reversed(records)), 3, seed=0, iteration=1)  # order does not matter
    assert first != select_solutions(records, 3, seed=1, iteration=1)
    assert first != select_solutions(records, 3, seed=0, iteration=2)
    # a random choice, not the first three
    assert any(r["sample_index"] >= 3 for r in first)


def test_no_cap_and_deduplication():
    records = _records([5, 2], duplicate=True)
    assert len(select_solutions(records, None)) == 7
    deduplicated = select_solutions(records, None, deduplicate=True)
    assert [(r["prompt_index"], r["sample_index"]) for r in deduplicated] == [(0, 0), (1, 0)]


def test_summary():
    records = _records([4, 0], samples=4)
    for r in records:
        r["num_tokens"] = 3
    stats = summarize_samples(records, select_solutions(records, 2))
    assert stats == {
        "samples": 8.0,
        "correct_rate": 0.5,
        "prompts_solved_frac": 0.5,
        "kept": 2.0,
        "kept_prompts": 1.0,
        "completion_tokens": 24.0,
        "unfinished": 0.0,
        "verifier_errors": 0.0,
    }


def test_derive_seed_is_stable():
    assert derive_seed(0, "shard", 1, 2) == derive_seed(0, "shard", 1, 2)
    assert len({derive_seed(0, "shard", 1, s) for s in range(100)}) == 100
    assert 0 <= derive_seed(123, "x") < 2**31


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write_json(path, {"stage": "old"})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a kill between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(path, {"stage": "new", "payload": "x" * 100_000})
    monkeypatch.undo()
    assert read_json(path) == {"stage": "old"}
    assert os.listdir(tmp_path) == ["state.json"]  # the temporary file is gone too


def test_truncated_json_reads_as_missing(tmp_path):
    path = tmp_path / "shard.json"
    path.write_text(json.dumps({"shard": 0, "samples": [1, 2, 3]})[:-5])
    assert read_json(path) is None
    assert read_json(tmp_path / "absent.json") is None
    atomic_write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"a": "é"}])
    assert read_jsonl(tmp_path / "rows.jsonl") == [{"a": 1}, {"a": "é"}]
