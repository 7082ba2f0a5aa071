# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Kill-and-resume: a run interrupted mid E-step, mid M-step, or between training and validation, resumed with
`train(resume_from_checkpoint=True)` by a new trainer (as a restarted process would), redoes no finished work and ends
where the uninterrupted run ends."""

import pytest
import torch
from rest_em_distributed_script import first_token_even, single_thread, small_config
from safetensors.torch import load_file
from transformers import TrainerCallback

from trl_mos.rest_em import ReSTEMTrainer
from trl_mos.rest_em.filtering import derive_seed, read_jsonl
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import build_tiny_model


PROBLEMS = make_arithmetic_problems(seed=0, num_train=8, num_validation=4, num_test=4)
E_STEP_SAMPLES = 4


class Crash(Exception):
    """Stands for the process being killed."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


class Recorder(TrainerCallback):
    """M-step starts (iteration, global step at start) and optimizer steps per iteration."""

    def __init__(self, trainer, crash_at_save=None):
        self.trainer, self.crash_at_save = trainer, crash_at_save
        self.starts, self.steps = [], {}

    def _iteration(self):
        return int(self.trainer._m_step_output_dir.rsplit("-", 1)[1])

    def on_train_begin(self, args, state, control, **kwargs):
        self.starts.append((self._iteration(), state.global_step))

    def on_step_end(self, args, state, control, **kwargs):
        self.steps[self._iteration()] = self.steps.get(self._iteration(), 0) + 1

    def on_save(self, args, state, control, **kwargs):
        if self.crash_at_save == (self._iteration(), state.global_step):
            raise Crash(f"killed after saving checkpoint-{state.global_step}")


def _run(
    output_dir,
    tokenizer,
    resume=False,
    crash_e_step_call=None,
    crash_at_save=None,
    crash_before_eval=None,
    **overrides,
):
    """Runs (or resumes) ReST^EM; returns the trainer, its M-step recorder and its E-step seeds, or the crash."""
    args = small_config(output_dir, **overrides)
    trainer = ReSTEMTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        args=args,
        train_dataset=PROBLEMS["train"],
        eval_dataset=PROBLEMS["validation"],
        processing_class=tokenizer,
        verifiers=[first_token_even],
    )
    recorder = Recorder(trainer, crash_at_save)
    trainer.add_callback(recorder)
    backend, e_step_seeds = trainer.generation_backend, []
    generate = backend.generate

    def recording(prompt_ids, settings, seed):
        if settings.num_samples == E_STEP_SAMPLES:
            if len(e_step_seeds) + 1 == crash_e_step_call:
                raise Crash("killed while sampling")
            e_step_seeds.append(seed)
        return generate(prompt_ids, settings, seed)

    backend.generate = recording
    if crash_before_eval is not None:
        evaluate = trainer.evaluate_accuracy

        def crashing(*args, **kwargs):
            if kwargs.get("description", "").endswith(f"iteration {crash_before_eval}"):
                raise Crash("killed before validation")
            return evaluate(*args, **kwargs)

        trainer.evaluate_accuracy = crashing
    try:
        trainer.train(resume_from_checkpoint=resume)
    except Crash:
        return None
    return trainer, recorder, e_step_seeds


def _shard_seed(iteration, shard):
    return derive_seed(derive_seed(0, "e-step", iteration), "shard", shard)


def _without_timing(history, drop=()):
    return [
        {k: v for k, v in row.items() if k != "restem/generation_tokens_per_s" and k not in drop} for row in history
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_tokenizer):
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    trainer, recorder, seeds = _run(output_dir, tiny_tokenizer)
    assert seeds == [_shard_seed(i, s) for i in (1, 2) for s in (0, 1)]
    assert recorder.starts == [(1, 0), (2, 0)]
    return trainer, output_dir


def _assert_same_end(resumed, reference, output_dir, drop=()):
    trainer, reference_dir = reference
    assert _without_timing(resumed.history, drop) == _without_timing(trainer.history, drop)
    assert resumed.best_iteration == trainer.best_iteration
    for name, parameter in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], parameter), name
    for iteration in (1, 2):
        samples = read_jsonl(output_dir / f"iteration-{iteration}" / "samples.jsonl")
        assert samples == read_jsonl(reference_dir / f"iteration-{iteration}" / "samples.jsonl")
        # every iteration's fine-tuned weights, not only the selected ones
        weights = load_file(output_dir / f"iteration-{iteration}" / "model" / "model.safetensors")
        expected = load_file(reference_dir / f"iteration-{iteration}" / "model" / "model.safetensors")
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[name], expected[name]) for name in expected), iteration


def test_resume_mid_e_step(tmp_path, tiny_tokenizer, reference):
    # killed while sampling the second shard of iteration 2: iteration 1 is complete, shard 0 of iteration 2 saved
    assert _run(tmp_path, tiny_tokenizer, crash_e_step_call=4) is None
    assert sorted(p.name for p in (tmp_path / "iteration-2" / "shards").iterdir()) == ["shard-00000.jsonl"]
    resumed, recorder, seeds = _run(tmp_path, tiny_tokenizer, resume=True)
    assert seeds == [_shard_seed(2, 1)]  # only the missing shard is generated
    assert recorder.starts == [(2, 0)]  # iteration 1 is not retrained
    _assert_same_end(resumed, reference, tmp_path)


def test_resume_mid_m_step_from_its_last_checkpoint(tmp_path, tiny_tokenizer, reference):
    assert _run(tmp_path, tiny_tokenizer, crash_at_save=(1, 1)) is None
    resumed, recorder, seeds = _run(tmp_path, tiny_tokenizer, resume=True)
    assert seeds == [_shard_seed(2, 0), _shard_seed(2, 1)]  # iteration 1's samples are not regenerated
    assert recorder.starts == [(1, 1), (2, 0)]  # iteration 1 resumes from checkpoint-1
    assert recorder.steps == {1: 1, 2: 2}
    # the resumed M-step's reported loss only covers its own step
    _assert_same_end(resumed, reference, tmp_path, drop=("restem/train_loss",))


def test_resume_between_training_and_validation(tmp_path, tiny_tokenizer, reference):
    assert _run(tmp_path, tiny_tokenizer, crash_before_eval=1) is None
    assert (tmp_path / "iteration-1" / "model").is_dir()
    resumed, recorder, seeds = _run(tmp_path, tiny_tokenizer, resume=True)
    assert seeds == [_shard_seed(2, 0), _shard_seed(2, 1)]
    assert recorder.starts == [(2, 0)]  # iteration 1 is neither regenerated nor retrained
    _assert_same_end(resumed, reference, tmp_path)


def test_resuming_a_finished_run_does_nothing_but_load_the_best(tmp_path, tiny_tokenizer, reference):
    _run(tmp_path, tiny_tokenizer)
    resumed, recorder, seeds = _run(tmp_path, tiny_tokenizer, resume=True)
    assert seeds == [] and recorder.starts == []
    _assert_same_end(resumed, reference, tmp_path)


def test_a_finished_run_continues_with_more_iterations(tmp_path, tiny_tokenizer, reference):
    _run(tmp_path, tiny_tokenizer)
    resumed, recorder, seeds = _run(tmp_path, tiny_tokenizer, resume=True, num_iterations=3)
    assert seeds == [_shard_seed(3, 0), _shard_seed(3, 1)] and recorder.starts == [(3, 0)]
    assert [row["iteration"] for row in resumed.history] == [0, 1, 2, 3]
    assert _without_timing(resumed.history[:3]) == _without_timing(reference[0].history)


def test_a_new_run_refuses_an_output_dir_holding_a_run(tmp_path, tiny_tokenizer):
    assert _run(tmp_path, tiny_tokenizer, crash_e_step_call=2) is None  # killed with one E-step shard saved
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    assert any("shards" in str(path) for path, _ in before)
    with pytest.raises(ValueError, match=r"holds a previous ReST\^EM run .*resume_from_checkpoint=True"):
        _run(tmp_path, tiny_tokenizer)
    after = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before  # nothing was removed, rewritten or generated


# ----------------------------------------------------------------------------------------------------------------------
# One continuous run record (issue 13, item 1)

RECORDED = ("restem/correct_rate", "restem/kept", "restem/train_loss", "eval/pass@1", "eval/pass@2", "eval/maj@2")


def _assert_one_continuous_record(log_history, num_iterations):
    assert all("restem/iteration" in entry for entry in log_history)
    steps = [entry["step"] for entry in log_history]
    assert steps == sorted(steps)  # the step axis never goes back
    for key in RECORDED:
        entries = [(entry["restem/iteration"], entry["step"]) for entry in log_history if key in entry]
        first = 0 if key.startswith("eval/") else 1  # the base model is validated as iteration 0
        assert [iteration for iteration, _ in entries] == list(range(first, num_iterations + 1)), key
        assert all(a < b for (_, a), (_, b) in zip(entries, entries[1:], strict=False)), (key, entries)
    losses = [entry["step"] for entry in log_history if "loss" in entry]
    assert len(losses) == 2 * num_iterations and losses == sorted(set(losses))  # 2 M-step steps per iteration
    assert not any("epoch" in entry for entry in log_history if any(key in entry for key in RECORDED))


def test_log_history_holds_every_iteration_on_one_growing_step_axis(tmp_path, tiny_tokenizer):
    trainer, _, _ = _run(tmp_path, tiny_tokenizer, num_iterations=3)
    _assert_one_continuous_record(trainer.state.log_history, 3)


def test_log_history_after_a_kill_and_resume(tmp_path, tiny_tokenizer):
    assert _run(tmp_path, tiny_tokenizer, num_iterations=3, crash_at_save=(2, 1)) is None
    resumed, _, _ = _run(tmp_path, tiny_tokenizer, resume=True, num_iterations=3)
    _assert_one_continuous_record(resumed.state.log_history, 3)


# ----------------------------------------------------------------------------------------------------------------------
# The resume fingerprint covers what changes the result (issue 13, item 3)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"learning_rate": 1e-3}, r"learning_rate: 0.003 -> 0.001"),
        ({"max_steps": 3}, r"max_steps: 2 -> 3"),
        ({"model_seed": 1}, r"model.digest: '[0-9a-f]+' -> '[0-9a-f]+'"),
    ],
)
def test_resume_refuses_another_model_or_schedule(tmp_path, tiny_tokenizer, change, expected):
    assert _run(tmp_path, tiny_tokenizer, crash_e_step_call=1) is None  # a run that was killed at once
    change = dict(change)
    model = build_tiny_model(tiny_tokenizer, seed=change.pop("model_seed", 0))
    trainer = ReSTEMTrainer(
        model=model,
        args=small_config(tmp_path, **change),
        train_dataset=PROBLEMS["train"],
        eval_dataset=PROBLEMS["validation"],
        processing_class=tiny_tokenizer,
        verifiers=[first_token_even],
    )
    with pytest.raises(ValueError, match=f"these settings differ from the interrupted run .*{expected}"):
        trainer.train(resume_from_checkpoint=True)
