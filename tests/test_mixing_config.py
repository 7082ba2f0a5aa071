# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import dataclasses
import math

import pytest
from transformers import HfArgumentParser

from trl_mos.mixing import MoSConfig


def test_defaults_follow_the_paper():
    config = MoSConfig()
    assert config.strategy == "mos" and config.reward == ["cossim"] and config.reward_weights == [1.0]
    assert config.update_steps == 100 and config.temperature == math.inf
    assert config.policy == "logits" and config.policy_learning_rate == 1e-4 and config.policy_inner_steps == 200
    assert config.cossim_probe_size == 64 and config.diff_probe_size == 16 and config.ema_beta == 0.9
    assert MoSConfig(strategy="temperature").temperature == 10.0
    assert MoSConfig(strategy="odm").update_steps == 1
    assert MoSConfig(target_skill="math").strategy == "mospec"
    assert MoSConfig(reward="diff").reward == ["diff"]


def test_every_field_is_documented():
    for field in dataclasses.fields(MoSConfig):
        assert field.metadata.get("help"), field.name
        assert f"{field.name} (`" in MoSConfig.__doc__, field.name


def test_parses_from_the_command_line_and_from_a_dict():
    parser = HfArgumentParser(MoSConfig)
    (config,) = parser.parse_args_into_dataclasses(
        [
            "--strategy",
            "mospec",
            "--target_skill",
            "add",
            "--reward",
            "cossim",
            "diff",
            "--use_ema",
            "true",
            "--reward_weights",
            "0.3",
            "0.7",
            "--update_steps",
            "50",
        ]
    )
    assert config.strategy == "mospec" and config.target_skill == "add"
    assert config.reward == ["cossim", "diff"] and config.reward_weights == [0.3, 0.7]
    assert config.use_ema is True and config.update_steps == 50
    (from_yaml,) = parser.parse_dict({"strategy": "temperature", "temperature": 5.0})
    assert from_yaml.temperature == 5.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "bandit"}, "Unknown strategy 'bandit'"),
        ({"reward": ["cossim", "entropy"]}, r"Unknown reward\(s\) \['entropy'\]"),
        ({"reward": []}, r"Unknown reward\(s\)"),
        ({"reward": ["diff", "diff"]}, "Each reward may appear once"),
        ({"reward": ["cossim", "diff"], "reward_weights": [1.0]}, "needs one weight per reward"),
        ({"reward_weights": [-1.0]}, "must be non-negative"),
        ({"policy": "transformer"}, "Unknown policy 'transformer'"),
        ({"probe_resampling": "always"}, "Unknown probe_resampling 'always'"),
        ({"strategy": "mospec"}, "needs `target_skill`"),
        ({"strategy": "uniform", "target_skill": "a"}, "only used by MoSpec"),
        ({"temperature": 0.0}, "`temperature` must be positive"),
        ({"update_steps": 0}, "`update_steps` must be a positive integer"),
        ({"probe_batch_size": -2}, "`probe_batch_size` must be a positive integer"),
        ({"policy_learning_rate": 0.0}, "`policy_learning_rate` must be positive"),
        ({"reward_exponent": 0.0}, "`reward_exponent` must be a positive number"),
        ({"reward_exponent": float("inf")}, "`reward_exponent` must be a positive number"),
        ({"ema_beta": 1.5}, r"`ema_beta` must be in \(0, 1\]"),
        ({"odm_smoothing": 1.0}, r"`odm_smoothing` must be in \[0, 1\)"),
    ],
)
def test_bad_values_are_rejected_with_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MoSConfig(**kwargs)
