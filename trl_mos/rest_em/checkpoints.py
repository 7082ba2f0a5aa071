# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Saving and finding the models of a ReST^EM run on disk: each iteration's final weights
(`output_dir/iteration-{i}/model`), its M-step's Trainer checkpoints, and the selected `output_dir/best`."""

from __future__ import annotations

import os
import shutil

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .filtering import read_json


def last_checkpoint(directory: str) -> str | None:
    """The newest complete Trainer checkpoint in `directory` (one whose `trainer_state.json`, written last, is valid),
    or `None`."""
    if not os.path.isdir(directory):
        return None
    steps = []
    for name in os.listdir(directory):
        if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name.split("-")[-1].isdigit():
            if read_json(os.path.join(directory, name, "trainer_state.json")) is not None:
                steps.append(int(name.split("-")[-1]))
    return os.path.join(directory, f"{PREFIX_CHECKPOINT_DIR}-{max(steps)}") if steps else None


def save_model_atomically(trainer: Trainer, path: str) -> None:
    """Saves the trainer's model (and tokenizer) to `path` through a temporary directory renamed into place, so that
    `path` is either the previous complete model or the new one. Every process must call it."""
    temporary = f"{path}.tmp"
    is_main = trainer.accelerator.is_main_process
    if is_main:
        shutil.rmtree(temporary, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(temporary, _internal_call=True)
    trainer.accelerator.wait_for_everyone()
    if is_main:
        shutil.rmtree(path, ignore_errors=True)
        os.replace(temporary, path)
    trainer.accelerator.wait_for_everyone()
