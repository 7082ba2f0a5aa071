# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import os


# Tests never reach the Hub; set before transformers/datasets are imported by any test module.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from trl_mos.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(seed=0)


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    from trl_mos.testing import build_tiny_model

    return build_tiny_model(tiny_tokenizer, seed=0)
