# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The typed ReST^EM run state: stages, the JSON round trip, selection, and the resume decisions."""

import json

import pytest
from rest_em_distributed_script import small_config

from trl_mos.rest_em.state import (
    STATE_NAME,
    IterationRecord,
    RunState,
    Stage,
    fingerprint,
    fingerprint_differences,
    previous_run_files,
    resume_state,
    wants_resume,
)


def _state():
    state = RunState(fingerprint={"seed": 0}, num_iterations=3)
    state.record(0).stage, state.record(0).weights, state.record(0).metrics = Stage.EVALUATED, 0, {"pass@1": 0.25}
    one = state.record(1)
    one.stage, one.weights, one.e_step, one.train_loss, one.steps = Stage.EVALUATED, 1, {"kept": 4.0}, 0.5, 2
    one.metrics = {"pass@1": 0.5}
    state.record(2).stage = Stage.TRAINING
    return state


def test_stages_are_ordered():
    record = IterationRecord(stage=Stage.FILTERED)
    assert record.reached(Stage.SAMPLING) and record.reached(Stage.FILTERED)
    assert not record.reached(Stage.TRAINED)
    assert not IterationRecord().reached(Stage.SAMPLING)


def test_json_round_trip(tmp_path):
    state = _state()
    state.save(str(tmp_path))
    saved = json.loads((tmp_path / STATE_NAME).read_text())
    assert sorted(saved["iterations"]) == ["0", "1", "2"]
    assert saved["iterations"]["2"] == {"stage": "training", "steps": 0}
    loaded = RunState.load(str(tmp_path))
    assert loaded == state
    assert isinstance(loaded.iterations[1].stage, Stage)
    assert RunState.load(str(tmp_path / "nothing")) is None


def test_history_lists_finished_iterations():
    assert _state().history() == [
        {"iteration": 0, "eval/pass@1": 0.25},
        {"iteration": 1, "restem/kept": 4.0, "restem/train_loss": 0.5, "eval/pass@1": 0.5},
    ]


def test_selection_and_early_stopping():
    state = RunState(fingerprint={}, num_iterations=5)
    assert state.update_best(0, 0.2) and state.best_iteration == 0
    assert state.update_best(1, 0.4)
    assert not state.update_best(2, 0.4)  # a tie keeps the earlier iteration
    assert state.best_iteration == 1 and state.iterations_without_improvement == 1
    assert not state.should_stop(2, patience=2) and state.stopped_at is None
    assert not state.update_best(3, 0.1)
    assert state.should_stop(3, patience=2) and state.stopped_at == 3
    assert not RunState(fingerprint={}, num_iterations=1).should_stop(1, patience=None)


def test_same_weights_reuse_the_previous_metrics():
    state = _state()
    state.record(2).weights = 1  # iteration 2 kept nothing: it ends with iteration 1's weights
    assert state.metrics_of_same_weights(2) == {"pass@1": 0.5}
    state.record(2).weights = 2
    assert state.metrics_of_same_weights(2) is None
    assert state.metrics_of_same_weights(1) is None


def test_train_output():
    output = _state().train_output()
    assert output.global_step == 2 and output.training_loss == 0.5
    assert output.metrics == {"restem/iterations": 1.0}
    state = _state()
    state.update_best(0, 0.25), state.update_best(1, 0.5)
    assert state.train_output().metrics == {"restem/iterations": 1.0, "restem/best_iteration": 1.0, "eval/pass@1": 0.5}


@pytest.mark.parametrize(
    "value, expected",
    [(None, False), (False, False), ("false", False), ("", False), (True, True), ("True", True), ("out", True)],
)
def test_wants_resume(value, expected):
    assert wants_resume(value, "out") is expected


def test_wants_resume_refuses_a_path_elsewhere(tmp_path):
    assert wants_resume(str(tmp_path / "run" / "iteration-1" / "checkpoint-2"), str(tmp_path / "run"))
    with pytest.raises(ValueError, match="resumes the run saved in `output_dir`"):
        wants_resume(str(tmp_path / "other"), str(tmp_path / "run"))


def test_resume_decisions(tmp_path):
    args = small_config(str(tmp_path), num_iterations=4)
    current = fingerprint(args, num_train_problems=8, num_eval_problems=4)
    with pytest.raises(ValueError, match="No ReST\\^EM run to resume"):
        resume_state(None, current, args)
    saved = RunState(fingerprint=dict(current), num_iterations=2, finished=True)
    resumed = resume_state(saved, current, args)
    assert resumed.num_iterations == 4 and not resumed.finished  # a finished run continues with more iterations
    stopped = RunState(fingerprint=dict(current), num_iterations=2, stopped_at=1)
    assert resume_state(stopped, current, args).num_iterations == 2  # an early-stopped run stays stopped
    changed = fingerprint(small_config(str(tmp_path), temperature=0.9), 8, 4)
    assert fingerprint_differences(current, changed) == {"temperature": (0.7, 0.9)}
    with pytest.raises(ValueError, match=r"temperature: 0.7 -> 0.9"):
        resume_state(RunState(fingerprint=dict(current), num_iterations=2), changed, args)


def test_previous_run_files(tmp_path):
    assert previous_run_files(str(tmp_path / "missing")) == []
    (tmp_path / "iteration-1").mkdir()
    (tmp_path / "unrelated.txt").write_text("")
    (tmp_path / STATE_NAME).write_text("{}")
    assert previous_run_files(str(tmp_path)) == ["iteration-1", STATE_NAME]
