# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The Mixture-of-Skills example script, run as a user would, on local paths and on the tiny kit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trl_mos.tasks import make_skill_datasets
from trl_mos.testing import save_tiny_model


SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "scripts" / "mos_sft.py"
CPU_FLAGS = [
    "--use_cpu",
    "true",
    "--bf16",
    "false",
    "--activation_checkpointing",
    "false",
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
    "--learning_rate",
    "1e-3",
    "--per_device_train_batch_size",
    "4",
]


def _run(*args):
    out = subprocess.run([sys.executable, str(SCRIPT), *args, *CPU_FLAGS], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


@pytest.mark.slow
def test_example_loads_a_local_model_and_local_skill_files(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model")
    data = make_skill_datasets(seed=0, sizes={"copy": 40, "reverse": 12, "add": 6})["train"]
    names = data.features["skill"].names
    specs = []
    for skill, name in enumerate(names):
        path = tmp_path / f"{name}.jsonl"
        rows = data.filter(lambda row, skill=skill: row["skill"] == skill).remove_columns(["skill", "answer"])
        rows.to_json(str(path))
        specs.append(f"{name}={path}")
    output_dir = tmp_path / "out"
    common = ["--model_name_or_path", model_dir, "--skills", *specs, "--output_dir", str(output_dir)]
    common += ["--update_steps", "3", "--strategy", "mos", "--reward", "diff", "--use_ema", "true"]
    _run(*common, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3")
    history = [json.loads(line) for line in open(output_dir / "mos_history.jsonl")]
    assert [record["step"] for record in history] == [0, 3, 6]
    assert list(history[0]["probabilities"]) == names
    assert (output_dir / "model.safetensors").exists() and (output_dir / "checkpoint-6").exists()
    # resuming from the last checkpoint with more steps continues the same run
    _run(*common, "--max_steps", "9", "--resume_from_checkpoint", str(output_dir / "checkpoint-6"))
    history = [json.loads(line) for line in open(output_dir / "mos_history.jsonl")]
    assert [record["step"] for record in history] == [0, 3, 6, 9]


def test_example_rejects_a_malformed_skill_spec(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--model_name_or_path",
            "x",
            "--skills",
            "nonsense",
            "other=y",
            "--output_dir",
            str(tmp_path),
            *CPU_FLAGS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0 and "--skills entries look like `name=dataset[:split]`" in out.stderr
