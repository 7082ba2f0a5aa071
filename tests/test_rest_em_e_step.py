# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The E-step's verdicts per sample: unfinished samples and verifier errors (issue 14, items 8 and 9)."""

from types import SimpleNamespace

import pytest
from datasets import Dataset

from trl_mos.rest_em import ReSTEMConfig
from trl_mos.rest_em.e_step import SampleVerifier, verdict_status
from trl_mos.rest_em.filtering import count_samples, select_solutions, summarize_counts
from trl_mos.verifiers import Verdict


PROBLEMS = Dataset.from_dict({"prompt": ["1+1=", "2+2="], "solution": ["2", "4"]})


class ScriptedSuite:
    """Returns the verdicts it is given, one per completion."""

    def __init__(self, verdicts):
        self.verdicts = verdicts

    def __call__(self, prompts, completions, completion_ids, **columns):
        assert len(completions) == len(self.verdicts)
        return self.verdicts


def _records(tokenizer, verdicts, finished, **kwargs):
    eos = tokenizer.eos_token_id
    ids = [tokenizer(" 2")["input_ids"] + ([eos] if done else []) for done in finished]
    verifier = SampleVerifier(tokenizer, ScriptedSuite(verdicts), answer_extractor=lambda text: None, **kwargs)
    return verifier(PROBLEMS, [0, 1], [ids[:2], ids[2:]], [eos])


ACCEPT = Verdict(True, {"v": 1.0}, {"v": True}, {"v": ""}, "")
REJECT = Verdict(False, {"v": 0.0}, {"v": False}, {"v": "wrong"}, "v: wrong")
ERROR = Verdict(
    False,
    {"v": None},
    {"v": None},
    {"v": "verifier error: timed out after 5 s"},
    "v: verifier error: timed out after 5 s",
    status="error",
    errors={"v": "verifier error: timed out after 5 s"},
)


def test_an_unfinished_sample_is_rejected_by_default(tiny_tokenizer):
    records = _records(tiny_tokenizer, [ACCEPT, ACCEPT, REJECT, ACCEPT], finished=[True, False, True, False])
    assert [r["accepted"] for r in records] == [True, False, False, False]
    assert [r["finished"] for r in records] == [True, False, True, False]
    assert records[1]["reason"].startswith("unfinished: no end-of-sequence token")
    assert [r["status"] for r in records] == ["accepted", "accepted", "rejected", "accepted"]  # the verifier's say
    kept = _records(tiny_tokenizer, [ACCEPT] * 4, finished=[True, False, True, False], keep_unfinished=True)
    assert [r["accepted"] for r in kept] == [True, True, True, True]


def test_a_verifier_error_is_neither_kept_nor_rejected_by_default(tiny_tokenizer):
    records = _records(tiny_tokenizer, [ERROR, ACCEPT, REJECT, ERROR], finished=[True] * 4)
    assert [r["status"] for r in records] == ["error", "accepted", "rejected", "error"]
    assert [r["accepted"] for r in records] == [None, True, False, None]
    assert [(r["prompt_index"], r["sample_index"]) for r in select_solutions(records, None)] == [(0, 1)]
    stats = summarize_counts([count_samples(records)], select_solutions(records, None))
    assert stats["verifier_errors"] == 2 and stats["samples"] == 4
    assert stats["correct_rate"] == 1 / 2  # of the 2 samples the verifiers could judge
    rejected = _records(tiny_tokenizer, [ERROR, ACCEPT, REJECT, ERROR], finished=[True] * 4, error_policy="reject")
    assert [r["accepted"] for r in rejected] == [False, True, False, False]
    stats = summarize_counts([count_samples(rejected)], [])
    assert stats["verifier_errors"] == 2 and stats["correct_rate"] == 1 / 4


def test_unfinished_samples_are_counted(tiny_tokenizer):
    records = _records(tiny_tokenizer, [ACCEPT] * 4, finished=[True, False, False, True])
    assert summarize_counts([count_samples(records)], [])["unfinished"] == 2


def test_the_status_comes_from_the_verdict_or_its_reasons():
    assert verdict_status(SimpleNamespace(status="error", accepted=False)) == "error"
    assert verdict_status(ACCEPT) == "accepted" and verdict_status(REJECT) == "rejected"
    assert verdict_status(ERROR) == "error"
    # a verdict-like object without `status` (another suite): a member's "verifier error: " reason makes it an error
    reasons = {"v": "verifier error: timed out after 5 s"}
    assert verdict_status(SimpleNamespace(accepted=False, reasons=reasons)) == "error"
    assert verdict_status(SimpleNamespace(accepted=False, reasons={"v": "wrong"})) == "rejected"


def test_counting_verifier_errors_as_accepted_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`verifier_error_policy` must be one of \\['exclude', 'reject'\\]"):
        ReSTEMConfig(str(tmp_path), verifier_error_policy="accept", use_cpu=True)
    assert ReSTEMConfig(str(tmp_path), use_cpu=True).keep_unfinished is False
