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


def prune_checkpoints(output_dir: str, limit: int | None) -> list[str]:
    """Deletes all but the newest `limit` M-step checkpoints of the whole run (`output_dir/iteration-*/checkpoint-*`,
    ordered by iteration, then step): `save_total_limit` across iterations. Returns the deleted paths."""
    if limit is None:
        return []
    found = []
    for name in os.listdir(output_dir):
        if name.startswith("iteration-") and name.split("-")[-1].isdigit():
            directory = os.path.join(output_dir, name)
            for checkpoint in os.listdir(directory):
                if checkpoint.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and checkpoint.split("-")[-1].isdigit():
                    found.append((int(name.split("-")[-1]), int(checkpoint.split("-")[-1]), checkpoint, directory))
    found.sort()
    deleted = [
        os.path.join(directory, checkpoint) for *_, checkpoint, directory in found[: max(0, len(found) - limit)]
    ]
    for path in deleted:
        shutil.rmtree(path, ignore_errors=True)
    return deleted


def prune_iteration_models(output_dir: str, keep: set[int]) -> list[str]:
    """Deletes the final weights (`iteration-{i}/model`) of every iteration not in `keep`. Returns the deleted paths."""
    deleted = []
    for name in os.listdir(output_dir):
        if name.startswith("iteration-") and name.split("-")[-1].isdigit() and int(name.split("-")[-1]) not in keep:
            path = os.path.join(output_dir, name, "model")
            if os.path.isdir(path):
                shutil.rmtree(path)
                deleted.append(path)
    return deleted
