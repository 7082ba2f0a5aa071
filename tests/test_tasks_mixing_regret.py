# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import collections

import pytest

from trl_mos.tasks import REGRET_SKILL_NAMES, make_mixing_regret_datasets, sample_static_mixture


def _rows(dataset):
    return [tuple(sorted(row.items())) for row in dataset]


def test_regret_datasets_are_deterministic_per_seed():
    a, b, c = (
        make_mixing_regret_datasets(seed=s, num_validation_per_skill=20, num_test_per_skill=20) for s in (0, 0, 1)
    )
    for split in ("train", "validation", "test"):
        assert _rows(a[split]) == _rows(b[split])
        assert _rows(a[split]) != _rows(c[split])


def test_regret_skills_sizes_and_disjoint_splits():
    data = make_mixing_regret_datasets(seed=0)
    names = data["train"].features["skill"].names
    assert names == REGRET_SKILL_NAMES == ["copy", "echo", "reverse", "succ", "rsucc"]
    counts = collections.Counter(names[s] for s in data["train"]["skill"])
    assert counts == {"copy": 2000, "echo": 2000, "reverse": 400, "succ": 150, "rsucc": 50}
    for split in ("validation", "test"):
        assert collections.Counter(data[split]["skill"]) == {i: 100 for i in range(5)}
    prompts = {split: set(data[split]["prompt"]) for split in data}
    assert not prompts["train"] & prompts["test"]
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["validation"] & prompts["test"]


def _items(prompt):
    return prompt.split(":", 1)[1].rsplit("=", 1)[0].split()


@pytest.mark.parametrize("split", ["validation", "test"])
def test_held_out_answers_are_clean_and_follow_each_skill_rule(split):
    data = make_mixing_regret_datasets(seed=0)[split]
    names = data.features["skill"].names
    for row in data:
        items, answer = _items(row["prompt"]), row["answer"].split()
        skill = names[row["skill"]]
        rule = {
            "copy": lambda x: x,
            "echo": lambda x: x,
            "reverse": lambda x: x[::-1],
            "succ": lambda x: [str((int(d) + 1) % 10) for d in x],
            "rsucc": lambda x: [str((int(d) + 1) % 10) for d in x[::-1]],
        }[skill]
        expected = rule(items)
        assert answer == expected, row
        assert not row["noisy"]
        assert row["completion"] == " " + row["answer"]


def test_only_reverse_train_labels_are_noisy_at_the_requested_rate():
    data = make_mixing_regret_datasets(seed=0)["train"]
    names = data.features["skill"].names
    noisy = collections.Counter(names[s] for s, n in zip(data["skill"], data["noisy"], strict=True) if n)
    assert set(noisy) == {"reverse"}
    assert 0.35 < noisy["reverse"] / 400 < 0.55  # 0.5, minus shuffles of lists whose items are all equal
    for row in data:
        if row["noisy"]:  # a corrupted answer is a permutation of the items, but not the reversed list
            items = _items(row["prompt"])
            assert sorted(row["answer"].split()) == sorted(items)
            assert row["answer"].split() != items[::-1]
    clean = make_mixing_regret_datasets(seed=0, label_noise=0.0)["train"]
    assert not any(clean["noisy"])


def test_regret_datasets_reject_bad_input():
    with pytest.raises(ValueError, match="Unknown skill"):
        make_mixing_regret_datasets(sizes={"copy": 10, "sort": 5})
    with pytest.raises(ValueError, match="label_noise"):
        make_mixing_regret_datasets(label_noise=1.5)
    with pytest.raises(ValueError, match="at least one"):
        make_mixing_regret_datasets(sizes={"copy": 0})


def test_sample_static_mixture_follows_the_weights():
    train = make_mixing_regret_datasets(seed=0, num_validation_per_skill=5, num_test_per_skill=5)["train"]
    weights = {"copy": 0.1, "echo": 0.1, "reverse": 0.2, "succ": 0.2, "rsucc": 0.4}
    mix = sample_static_mixture(train, weights, 5000, seed=0)
    names = mix.features["skill"].names
    shares = collections.Counter(names[s] for s in mix["skill"])
    for name, weight in weights.items():
        assert abs(shares[name] / 5000 - weight) < 0.03
    assert _rows(mix) == _rows(sample_static_mixture(train, weights, 5000, seed=0))
    assert _rows(mix) != _rows(sample_static_mixture(train, weights, 5000, seed=1))
    zero = sample_static_mixture(train, {**weights, "rsucc": 0.0}, 500, seed=0)
    assert names.index("rsucc") not in zero["skill"]


def test_sample_static_mixture_rejects_bad_weights():
    train = make_mixing_regret_datasets(seed=0, num_validation_per_skill=5, num_test_per_skill=5)["train"]
    with pytest.raises(ValueError, match="every skill"):
        sample_static_mixture(train, {"copy": 1.0}, 10)
    with pytest.raises(ValueError, match="non-negative"):
        sample_static_mixture(train, dict.fromkeys(REGRET_SKILL_NAMES, 0.0), 10)
    with pytest.raises(ValueError, match="num_rows"):
        sample_static_mixture(train, dict.fromkeys(REGRET_SKILL_NAMES, 1.0), 0)
