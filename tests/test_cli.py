# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import subprocess
import sys

import pytest

from trl_mos import __version__
from trl_mos.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "trl_mos", *args], capture_output=True, text=True, timeout=120)


def test_help_and_version():
    out = _run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout and "tiny-model" in out.stdout
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"trl-mos {__version__}"
    out = _run("demo", "--help")
    assert out.returncode == 0 and "--max-steps" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["juggle"], "invalid choice: 'juggle'"),
        (["demo", "--max-steps", "0"], "expected a positive integer, got '0'"),
        (["demo", "--max-steps", "ten"], "expected a positive integer, got 'ten'"),
        (["demo", "--seed", "-1"], "expected a non-negative integer, got '-1'"),
        (["demo", "--part", "nope"], "invalid choice: 'nope'"),
        (["demo", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    out = _run(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: trl-mos" in capsys.readouterr().out


def test_short_demo_run_prints_a_per_skill_table(tmp_path, capsys):
    assert main(["demo", "--part", "sft", "--max-steps", "3", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "copy", "reverse", "sort", "add", "balanced"]
    row = next(line for line in out.splitlines() if line.startswith("PROP (stock SFTTrainer)"))
    values = [float(v) for v in row.split()[-5:]]
    assert all(0.0 <= v <= 100.0 for v in values)


def test_tiny_model_command_saves_a_loadable_model(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(["tiny-model", str(tmp_path / "m")]) == 0
    assert AutoTokenizer.from_pretrained(tmp_path / "m").eos_token == "<|im_end|>"
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").config.hidden_size == 64


def test_short_mos_demo_run_compares_mixtures(tmp_path, capsys):
    assert main(["demo", "--part", "mos", "--max-steps", "4", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for method in ("UNI", "TEMP (tau=10)", "MoS (Diff+EMA)"):
        assert any(line.startswith(method) for line in out.splitlines()), method
    assert (tmp_path / "mos-mos" / "mos_probabilities.png").exists()
    assert (tmp_path / "mos-mos" / "mos_history.jsonl").exists()


def test_short_restem_demo_run_prints_a_per_iteration_table(tmp_path, capsys, monkeypatch):
    import functools

    from trl_mos.rest_em import demo

    small = functools.partial(
        demo.run_restem_demo,
        num_iterations=1,
        num_warm_start_problems=32,
        warm_start_steps=5,
        num_train_problems=16,
        num_validation_problems=8,
    )
    tasks = []

    def recorded(config, task):
        tasks.append(task)
        return small(config, task=task)

    monkeypatch.setattr(demo, "run_restem_demo", recorded)
    assert main(["demo", "--part", "restem", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    assert tasks == ["sorting"]  # the task with room for self-training is the default
    out = capsys.readouterr().out.splitlines()
    assert any("digit-sorting" in line for line in out)
    header = next(line for line in out if line.startswith("model"))
    assert header.split()[:4] == ["model", "test", "pass@1", "test"]
    assert any(line.startswith("warm start") for line in out)
    assert any(line.startswith("iteration 1") for line in out)
    assert (tmp_path / "restem" / "restem_metrics.png").exists()
    assert (tmp_path / "restem" / "iteration-1").is_dir()
