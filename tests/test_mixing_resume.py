# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Resuming Mixture-of-Skills runs: over several epochs, with another batch geometry, with `ignore_data_skip`, with
`auto_find_batch_size`, and with a changed `MoSConfig` (refused, naming what differs)."""

import json

import pytest
from test_mixing_callback import FAST_MOS, ConsumedRows, make_trainer
from transformers import TrainerCallback

from trl_mos.mixing import MoSConfig
from trl_mos.mixing.callback import STATE_KEY
from trl_mos.tasks import make_skill_datasets


BATCH, STEPS, STOP = 4, 24, 16  # 26 rows, 4 per step: 7 steps per epoch; step 16 is 2 steps into epoch 3
CONFIG = dict(reward=["cossim", "diff"], use_ema=True, **FAST_MOS)  # updates every 5 steps
RUN = dict(max_steps=STEPS, save_strategy="steps", save_steps=8, per_device_train_batch_size=BATCH)


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.fixture(scope="module")
def small():
    return make_skill_datasets(seed=0, sizes={"copy": 14, "reverse": 6, "sort": 4, "add": 2})["train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tokenizer, small):
    """An uninterrupted run of 24 steps and the same run stopped at step 16 (its checkpoint-16)."""
    root = tmp_path_factory.mktemp("resume")
    full, full_callback = make_trainer(root / "full", small, MoSConfig(**CONFIG), tiny_tokenizer, **RUN)
    full_consumed = ConsumedRows(full)
    full.train()
    first, _ = make_trainer(
        root / "first", small, MoSConfig(**CONFIG), tiny_tokenizer, callbacks=[StopAt(STOP)], **RUN
    )
    first_consumed = ConsumedRows(first)
    first.train()
    assert first.state.global_step == STOP
    return dict(
        full_rows=full_consumed.rows,
        full_records=full_callback.records,
        full_history=full_callback.sampler.history,
        first_rows=first_consumed.rows,
        checkpoint=str(root / "first" / f"checkpoint-{STOP}"),
    )


def _resume(tmp_path, runs, tokenizer, small, config=None, **overrides):
    config = MoSConfig(**{**CONFIG, **(config or {})})
    trainer, callback = make_trainer(tmp_path, small, config, tokenizer, **{**RUN, **overrides})
    consumed = ConsumedRows(trainer)
    trainer.train(resume_from_checkpoint=runs["checkpoint"])
    return trainer, callback, consumed.rows


def _saved_history(runs):
    return json.load(open(f"{runs['checkpoint']}/trainer_state.json"))["stateful_callbacks"][STATE_KEY]["sampler"][
        "history"
    ]


def test_resume_in_the_third_epoch_replays_the_uninterrupted_run(tmp_path, runs, tiny_tokenizer, small):
    # `plot` only affects outputs: a resumed run may change it
    trainer, callback, rows = _resume(tmp_path, runs, tiny_tokenizer, small, config=dict(plot=False))
    assert trainer.state.global_step == STEPS
    assert runs["first_rows"] + rows == runs["full_rows"]
    assert callback.records == runs["full_records"]
    assert callback.sampler.history == runs["full_history"]


def test_resume_with_ignore_data_skip_continues_the_stream_from_the_consumed_position(
    tmp_path, runs, tiny_tokenizer, small, caplog
):
    with caplog.at_level("WARNING"):
        trainer, callback, rows = _resume(tmp_path, runs, tiny_tokenizer, small, ignore_data_skip=True)
    assert "ignore_data_skip=True" in caplog.text
    assert trainer.state.global_step == STEPS
    consumed = STOP * BATCH
    assert rows == callback.sampler.rows_at(consumed, STEPS * BATCH).tolist()  # no example skipped or repeated
    saved = _saved_history(runs)
    assert [list(change) for change in callback.sampler.history[: len(saved)]] == saved
    # until the next update (after step 20) it draws exactly what the uninterrupted run drew
    assert rows[: 4 * BATCH] == runs["full_rows"][consumed : consumed + 4 * BATCH]
    logged = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    assert sum(logged[f"mos/consumed/{name}"] for name in callback.skill_index.names) == logged["step"] * BATCH


@pytest.mark.parametrize("batch", [2, 8])
def test_resume_with_another_batch_size_continues_the_stream_with_a_warning(
    tmp_path, runs, tiny_tokenizer, small, caplog, batch
):
    with caplog.at_level("WARNING"):
        trainer, callback, rows = _resume(tmp_path, runs, tiny_tokenizer, small, per_device_train_batch_size=batch)
    assert "this run draws" in caplog.text and "differ from an uninterrupted run" in caplog.text
    assert trainer.state.global_step == STEPS and callback.draws_per_step == batch
    consumed = STOP * BATCH
    end = consumed + (STEPS - STOP) * batch
    assert rows == callback.sampler.rows_at(consumed, end).tolist()  # the stream on from what was consumed
    saved = _saved_history(runs)
    assert [list(change) for change in callback.sampler.history[: len(saved)]] == saved
    assert len(callback.sampler.history) > len(saved)  # the updates after the resume applied
    assert rows[:batch] == runs["full_rows"][consumed : consumed + batch]
    logged = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    expected = consumed + (logged["step"] - STOP) * batch
    assert sum(logged[f"mos/consumed/{name}"] for name in callback.skill_index.names) == expected


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(reward=["cossim"], reward_weights=None), r"reward: saved \['cossim', 'diff'\], now \['cossim'\]"),
        (dict(update_steps=4, use_ema=False), r"update_steps: saved 5, now 4; use_ema: saved True, now False"),
        (dict(mixing_seed=3), r"seed \(mixing_seed, else data_seed, else seed\): saved 0, now 3"),
    ],
)
def test_resume_with_another_config_is_refused_naming_what_differs(
    tmp_path, runs, tiny_tokenizer, small, change, message
):
    trainer, callback = make_trainer(tmp_path, small, MoSConfig(**{**CONFIG, **change}), tiny_tokenizer, **RUN)
    consumed = ConsumedRows(trainer)
    with pytest.raises(ValueError, match=message):
        trainer.train(resume_from_checkpoint=runs["checkpoint"])
    assert consumed.rows == []  # refused before any training step


def test_auto_find_batch_size_draws_at_the_batch_size_the_trainer_settled_on(tmp_path, tiny_tokenizer, small):
    class OutOfMemoryOnce(TrainerCallback):
        """Fails the first attempt at step 2 the way a CUDA out-of-memory error does."""

        failed = False

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2 and not self.failed:
                OutOfMemoryOnce.failed = True
                raise RuntimeError("CUDA out of memory.")

    trainer, callback = make_trainer(
        tmp_path,
        small,
        MoSConfig(**CONFIG),
        tiny_tokenizer,
        callbacks=[OutOfMemoryOnce()],
        max_steps=10,
        per_device_train_batch_size=8,
        auto_find_batch_size=True,
        logging_steps=5,
    )
    consumed = ConsumedRows(trainer)
    trainer.train()
    batch = trainer._train_batch_size  # accelerate shrinks it (by 10 % at every out-of-memory error)
    assert OutOfMemoryOnce.failed and batch < 8 and callback.draws_per_step == batch
    retried = consumed.rows[2 * 8 :]  # the first attempt's two steps of 8, then the retry from scratch
    assert retried == callback.sampler.rows_at(0, 10 * batch).tolist()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    assert sum(logged[f"mos/consumed/{name}"] for name in callback.skill_index.names) == 10 * batch


def test_a_checkpoint_of_an_older_version_is_checked_for_what_it_saved(tmp_path, tiny_tokenizer, small, caplog):
    trainer, callback = make_trainer(tmp_path, small, MoSConfig(**CONFIG), tiny_tokenizer, **RUN)
    callback._get_train_sampler()
    state = json.loads(json.dumps(callback.state_dict()))
    # the format of v0.x: only the strategy and the seed were saved, nor the consumed position
    old = {**state, "config": {"strategy": "mos", "seed": 0}}
    del old["seed"], old["consumed"], old["global_step"]
    with caplog.at_level("WARNING"):
        callback.load_state_dict(old)
    assert "did not save" in caplog.text and "'reward'" in caplog.text
    with pytest.raises(ValueError, match="strategy: saved 'uniform', now 'mos'"):
        callback.load_state_dict({**old, "config": {"strategy": "uniform", "seed": 0}})
