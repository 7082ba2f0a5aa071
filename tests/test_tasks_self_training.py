# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import pytest

from trl_mos.tasks import make_sorting_problems
from trl_mos.tasks.skills import normalize_answer
from trl_mos.verifiers import make_exact_match_verifier


def test_sorting_problems_are_deterministic_disjoint_and_correct():
    a, b, c = make_sorting_problems(seed=0), make_sorting_problems(seed=0), make_sorting_problems(seed=1)
    assert list(a) == ["warm_start", "train", "validation", "test"]
    assert [len(a[s]) for s in a] == [128, 256, 128, 128]
    for split in a:
        assert a[split].to_list() == b[split].to_list()
        assert a[split].to_list() != c[split].to_list()
    prompts = [set(a[s]["prompt"]) for s in a]
    assert sum(map(len, prompts)) == len(set().union(*prompts))  # no prompt in two splits, none repeated
    for row in a["test"]:
        items = row["prompt"].removeprefix("sort: ").removesuffix(" =").split()
        assert 4 <= len(items) <= 7
        assert row["solution"].split() == sorted(items)
        assert row["completion"] == " " + row["solution"]


def test_sorting_answers_verify_by_exact_match():
    problems = make_sorting_problems(seed=0, num_test=4)["test"]
    verifier = make_exact_match_verifier(column="solution", normalize=normalize_answer)
    right = verifier(prompts=problems["prompt"], completions=problems["completion"], solution=problems["solution"])
    wrong = [" " + " ".join(reversed(s.split())) + "0" for s in problems["solution"]]
    assert right == [1.0] * 4
    assert verifier(prompts=problems["prompt"], completions=wrong, solution=problems["solution"]) == [0.0] * 4


def test_sorting_problems_reject_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        make_sorting_problems(num_train=0)
    with pytest.raises(ValueError, match="min_length"):
        make_sorting_problems(min_length=6, max_length=5)
    with pytest.raises(ValueError, match="distinct"):
        make_sorting_problems(num_test=500, min_length=2, max_length=2)


def test_restem_demo_rejects_an_unknown_task_before_training(tmp_path):
    from trl_mos.demo import DemoConfig
    from trl_mos.rest_em.demo import run_restem_demo

    with pytest.raises(ValueError, match="choose 'sorting' or 'arithmetic'"):
        run_restem_demo(DemoConfig(output_dir=str(tmp_path)), task="chess")
    assert not any(tmp_path.iterdir())
