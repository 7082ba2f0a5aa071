# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Mixture-of-Skills inside real `SFTTrainer` / `Trainer` runs on the tiny model."""

import json
import os

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset
from transformers import TrainerCallback
from trl import SFTTrainer

from trl_mos.mixing import MixtureOfSkillsCallback, MoSConfig, concatenate_skills
from trl_mos.mixing.callback import STATE_KEY
from trl_mos.tasks import make_skill_datasets
from trl_mos.testing import build_tiny_model, tiny_sft_config


SIZES = {"copy": 96, "reverse": 32, "sort": 12, "add": 6}
FAST_MOS = dict(
    update_steps=5,
    cossim_probe_size=6,
    diff_probe_size=3,
    probe_batch_size=4,
    policy_learning_rate=0.05,
    policy_inner_steps=20,
)


@pytest.fixture(scope="module")
def skills():
    return make_skill_datasets(seed=0, sizes=SIZES, num_test_per_skill=4)["train"]


class ConsumedRows(TrainerCallback):
    """Records, through a forward pre-hook, which prepared-dataset rows every training forward pass consumed."""

    def __init__(self, trainer):
        dataset = trainer.train_dataset
        self.lookup = {}
        for row, ids in enumerate(dataset["input_ids"]):
            self.lookup.setdefault(tuple(ids), row)
        self.batches: list[list[int]] = []
        trainer.model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if module.training and torch.is_grad_enabled():
            ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
            rows = []
            for i in range(ids.shape[0]):
                real = ids[i] if mask is None else ids[i][mask[i].bool()]
                rows.append(self.lookup[tuple(real.tolist())])
            self.batches.append(rows)

    @property
    def rows(self) -> list[int]:
        return [row for batch in self.batches for row in batch]


def make_trainer(tmp_path, train, config, tokenizer, callbacks=(), **overrides):
    args = tiny_sft_config(tmp_path, **{"max_steps": 20, "per_device_train_batch_size": 4, **overrides})
    model = build_tiny_model(tokenizer, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    callback = MixtureOfSkillsCallback(trainer, config)
    trainer.add_callback(callback)
    for extra in callbacks:
        trainer.add_callback(extra(trainer) if isinstance(extra, type) else extra)
    return trainer, callback


def test_mos_run_logs_metrics_history_and_plot(tmp_path, tiny_tokenizer, skills):
    config = MoSConfig(reward=["cossim", "diff"], use_ema=True, **FAST_MOS)
    trainer, callback = make_trainer(tmp_path, skills, config, tiny_tokenizer, logging_steps=5)
    consumed = ConsumedRows(trainer)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logs] == [5, 10, 15, 20]
    for entry in logs:  # the metrics share the loss's log entry
        probabilities = [entry[f"mos/prob/{name}"] for name in SIZES]
        assert sum(probabilities) == pytest.approx(1.0)
        assert sum(entry[f"mos/consumed/{name}"] for name in SIZES) == entry["step"] * 4
        assert all(f"mos/reward/{name}" in entry for name in SIZES)
    assert logs[0]["mos/prob/copy"] != pytest.approx(0.25)  # the distribution moved after the first update
    history = [json.loads(line) for line in open(tmp_path / "mos_history.jsonl")]
    assert [record["step"] for record in history] == [0, 5, 10, 15, 20]
    assert set(history[1]) == {"step", "position", "probabilities", "cossim", "diff", "reward"}
    assert history[0]["probabilities"] == {name: 0.25 for name in SIZES}
    assert os.path.getsize(tmp_path / "mos_probabilities.png") > 1000
    # every consumed example is the one the sampler's stream says, and the counts match the log
    assert consumed.rows == callback.sampler.rows_at(0, 80).tolist()
    skills_consumed = np.bincount(callback.skill_index.skill_ids[consumed.rows], minlength=4)
    assert skills_consumed.tolist() == [logs[-1][f"mos/consumed/{name}"] for name in SIZES]


@pytest.mark.parametrize(
    "accumulation, workers, small",
    [(1, 0, False), (2, 2, False), (1, 0, True)],  # the last one crosses epoch boundaries before and after the stop
)
def test_stop_and_resume_replays_the_uninterrupted_run(tmp_path, tiny_tokenizer, skills, accumulation, workers, small):
    config = MoSConfig(reward=["cossim", "diff"], use_ema=True, **FAST_MOS)
    if small:  # 26 rows, 4 per step: 7 steps per epoch
        skills = make_skill_datasets(seed=0, sizes={"copy": 14, "reverse": 6, "sort": 4, "add": 2})["train"]
    overrides = dict(
        max_steps=16,
        save_strategy="steps",
        save_steps=8,
        gradient_accumulation_steps=accumulation,
        dataloader_num_workers=workers,
        per_device_train_batch_size=2 if accumulation > 1 else 4,
    )
    full, full_callback = make_trainer(tmp_path / "full", skills, config, tiny_tokenizer, **overrides)
    full_consumed = ConsumedRows(full)
    full.train()

    class StopAt8(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 8:
                control.should_training_stop = True

    first, _ = make_trainer(tmp_path / "split", skills, config, tiny_tokenizer, callbacks=[StopAt8()], **overrides)
    first_consumed = ConsumedRows(first)
    first.train()
    assert first.state.global_step == 8
    saved = json.load(open(tmp_path / "split" / "checkpoint-8" / "trainer_state.json"))
    assert {"sampler", "strategy", "rewards", "records"} <= set(saved["stateful_callbacks"][STATE_KEY])

    resumed, resumed_callback = make_trainer(tmp_path / "split", skills, config, tiny_tokenizer, **overrides)
    resumed_consumed = ConsumedRows(resumed)
    resumed.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-8"))

    assert first_consumed.rows + resumed_consumed.rows == full_consumed.rows
    assert resumed_callback.records == full_callback.records
    assert resumed_callback.sampler.history == full_callback.sampler.history
    assert len(full_callback.records) == 4  # initial + updates at steps 5, 10, 15
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    history = [json.loads(line) for line in open(tmp_path / "split" / "mos_history.jsonl")]
    assert history == full_callback.records  # the history file is rewritten consistently on resume


def test_skills_are_read_from_the_prepared_dataset(tmp_path, tiny_tokenizer):
    long_prompt = "reverse: " + " ".join("abcdefghij" * 8) + " ="
    rows = {
        "short": Dataset.from_dict({"prompt": ["copy: a b ="] * 8, "completion": [" a b"] * 8}),
        "mixed": Dataset.from_dict(
            {"prompt": [long_prompt, "copy: c d =", long_prompt, "copy: e f ="], "completion": [" x"] * 4}
        ),
    }
    train = concatenate_skills(rows)
    trainer, callback = make_trainer(tmp_path, train, MoSConfig(strategy="uniform"), tiny_tokenizer, max_steps=2)
    assert len(trainer.train_dataset) == 10  # SFTTrainer dropped the two rows truncation left without completion
    assert callback.skill_index.sizes.tolist() == [8, 2]
    assert callback.skill_index.skill_ids.tolist() == trainer.train_dataset["skill"]
    rows["mixed"] = Dataset.from_dict({"prompt": [long_prompt] * 2, "completion": [" x"] * 2})
    with pytest.raises(ValueError, match=r"Skill\(s\) \['mixed'\] have no rows in the train dataset"):
        make_trainer(tmp_path, concatenate_skills(rows), MoSConfig(), tiny_tokenizer)


def test_plain_transformers_trainer_with_string_skills(tmp_path, tiny_tokenizer):
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    texts = [f"copy: {c} {c} = {c} {c}" for c in "abcdefgh"] + [f"add: {i} + 1 = {i + 1}" for i in range(4)]
    train = Dataset.from_dict({"text": texts, "skill": ["copy"] * 8 + ["add"] * 4})
    train = train.map(lambda row: tiny_tokenizer(row["text"]), remove_columns=["text"])
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=2,
        report_to="none",
        use_cpu=True,
        logging_steps=3,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=build_tiny_model(tiny_tokenizer),
        args=args,
        train_dataset=train,
        data_collator=DataCollatorForLanguageModeling(tiny_tokenizer, mlm=False),
    )
    callback = MixtureOfSkillsCallback(
        trainer, MoSConfig(reward=["cossim", "diff"], **{**FAST_MOS, "update_steps": 3})
    )
    trainer.add_callback(callback)
    trainer.train()
    assert callback.skill_index.names == ["copy", "add"]
    last = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    assert last["mos/prob/copy"] + last["mos/prob/add"] == pytest.approx(1.0)
    assert len(callback.records) == 3


def test_odm_attributes_training_losses_to_the_right_skills(tmp_path, tiny_tokenizer, skills):
    config = MoSConfig(strategy="odm")
    trainer, callback = make_trainer(
        tmp_path,
        skills,
        config,
        tiny_tokenizer,
        max_steps=6,
        logging_steps=3,
        gradient_accumulation_steps=2,
        per_device_train_batch_size=3,
    )
    consumed = ConsumedRows(trainer)
    seen_counts = []
    original = callback.strategy.update

    def spy(values, counts=None):
        seen_counts.append(np.asarray(counts).tolist())
        return original(values, counts)

    callback.strategy.update = spy
    trainer.train()
    per_step = [consumed.rows[i : i + 6] for i in range(0, 36, 6)]
    expected = [np.bincount(callback.skill_index.skill_ids[rows], minlength=4).tolist() for rows in per_step]
    assert seen_counts == expected
    assert len(callback.records) == 7 and callback.strategy.num_updates == 6


def test_peft_base_perplexities_use_the_base_model(tmp_path, tiny_tokenizer, skills):
    from peft import LoraConfig, get_peft_model

    base = build_tiny_model(tiny_tokenizer, seed=0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # adapters change outputs
    model = get_peft_model(build_tiny_model(tiny_tokenizer, seed=0), lora)
    args = tiny_sft_config(tmp_path, max_steps=1, per_device_train_batch_size=4)
    trainer = SFTTrainer(model=model, args=args, train_dataset=skills, processing_class=tiny_tokenizer)
    config = MoSConfig(reward="diff", diff_probe_size=2, update_steps=1, policy_inner_steps=1)
    callback = MixtureOfSkillsCallback(trainer, config)
    trainer.add_callback(callback)
    base_ppl = {}

    def record_base(runner):
        rows, skills_of = callback.rewards._flatten(callback.rewards._rows("diff"))
        with torch.no_grad():
            for row, skill in zip(rows, skills_of, strict=True):
                ids = torch.tensor([trainer.train_dataset[row]["input_ids"]])
                labels = torch.tensor([trainer.train_dataset[row]["labels"]])
                for name, net in (("base", base), ("adapted", model)):
                    loss = net(input_ids=ids, labels=labels).loss
                    base_ppl.setdefault(name, {}).setdefault(skill, []).append(float(torch.exp(loss)))
        type(callback.rewards).compute_base(callback.rewards, runner)

    callback.rewards.compute_base = record_base
    trainer.train()
    recorded = callback.rewards.base_ppl
    for skill in range(4):
        np.testing.assert_allclose(recorded[skill], base_ppl["base"][skill], rtol=1e-4)
        assert not np.allclose(recorded[skill], base_ppl["adapted"][skill], rtol=1e-4)


def test_nan_reward_skips_the_update_with_a_warning(tmp_path, tiny_tokenizer, skills, caplog):
    trainer, callback = make_trainer(tmp_path, skills, MoSConfig(**FAST_MOS), tiny_tokenizer, max_steps=10)
    callback.rewards.compute = lambda runner: np.array([1.0, np.nan, 1.0, 1.0])
    with caplog.at_level("WARNING"):
        trainer.train()
    assert "skipping a policy update" in caplog.text
    assert callback.sampler.history == [(0, [0.25] * 4)]
    assert callback.strategy.skipped_updates == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(config=MoSConfig(skill_column="domain")), "The train dataset has no skill column 'domain'"),
        (dict(config=MoSConfig(target_skill="juggle")), "MoSpec target skill 'juggle' is not in the mixture"),
        (dict(sft=dict(packing=True)), "`packing=True` lets the trainer pack the whole train dataset"),
        (
            dict(sft=dict(padding_free=True, max_length=None), config=MoSConfig(strategy="odm")),
            "Online Data Mixing needs",
        ),
        (dict(sft=dict(train_sampling_strategy="group_by_length")), "conflicts with `train_sampling_strategy"),
        (dict(sft=dict(accelerator_config={"split_batches": True})), "`accelerator_config.split_batches=True`"),
        (dict(data="one"), "needs at least two skills"),
        (dict(data="empty"), r"Skill\(s\) \['sort'\] have no rows"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, tiny_tokenizer, skills, change, message):
    train = skills
    if change.get("data") == "one":
        train = skills.filter(lambda row: row["skill"] == 0).cast_column("skill", ClassLabel(names=["copy"]))
    elif change.get("data") == "empty":
        train = skills.filter(lambda row: row["skill"] != 2)
    args = tiny_sft_config(tmp_path, max_steps=2, **change.get("sft", {}))
    trainer = SFTTrainer(
        model=build_tiny_model(tiny_tokenizer), args=args, train_dataset=train, processing_class=tiny_tokenizer
    )
    with pytest.raises(ValueError, match=message):
        MixtureOfSkillsCallback(trainer, change.get("config", MoSConfig()))


def test_duplicate_skill_names_are_rejected():
    from trl_mos.mixing import SkillIndex

    data = Dataset.from_dict({"x": [1, 2], "skill": [0, 1]})
    with pytest.raises(ValueError, match="Skill names must be unique"):
        concatenate_skills({1: data.remove_columns("skill"), "1": data.remove_columns("skill")})
    with pytest.raises(ValueError, match="duplicated"):  # `datasets` itself refuses a ClassLabel with duplicates
        SkillIndex.from_dataset(data.cast_column("skill", ClassLabel(names=["a", "a"])))


def test_callback_not_added_and_non_mos_checkpoint_are_caught(tmp_path, tiny_tokenizer, skills):
    args = tiny_sft_config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    trainer = SFTTrainer(
        model=build_tiny_model(tiny_tokenizer), args=args, train_dataset=skills, processing_class=tiny_tokenizer
    )
    MixtureOfSkillsCallback(trainer, MoSConfig(strategy="uniform"))
    with pytest.raises(RuntimeError, match="call `trainer.add_callback"):
        trainer.train()
    plain = SFTTrainer(
        model=build_tiny_model(tiny_tokenizer), args=args, train_dataset=skills, processing_class=tiny_tokenizer
    )
    plain.train()  # a checkpoint without Mixture-of-Skills state
    args = tiny_sft_config(tmp_path, max_steps=4)
    resumed, _ = make_trainer(tmp_path, skills, MoSConfig(strategy="uniform"), tiny_tokenizer, max_steps=4)
    with pytest.raises(ValueError, match="checkpoint without Mixture-of-Skills state"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_concatenate_skills(skills):
    a = Dataset.from_dict({"prompt": ["p1", "p2"], "completion": ["c1", "c2"]})
    b = Dataset.from_dict({"prompt": ["q1"], "completion": ["d1"]})
    combined = concatenate_skills({"math": a, "chat": b})
    assert combined.features["skill"].names == ["math", "chat"]
    assert combined["skill"] == [0, 0, 1] and combined["prompt"] == ["p1", "p2", "q1"]
    assert a.column_names == ["prompt", "completion"]  # inputs untouched
    with pytest.raises(ValueError, match="at least two skills"):
        concatenate_skills({"math": a})
    with pytest.raises(ValueError, match="Skill 'chat' is empty"):
        concatenate_skills({"math": a, "chat": b.select([])})
    with pytest.raises(ValueError, match="already has a column 'skill'"):
        concatenate_skills({"math": skills, "chat": skills})


def test_a_second_train_call_starts_a_new_mixing_run(tmp_path, tiny_tokenizer, skills):
    trainer, callback = make_trainer(tmp_path, skills, MoSConfig(**FAST_MOS), tiny_tokenizer, max_steps=10)
    trainer.train()
    first_sampler = callback.sampler
    assert [r["step"] for r in callback.records] == [0, 5, 10] and len(first_sampler.history) == 3
    trainer.train()
    assert callback.sampler is not first_sampler
    assert [r["step"] for r in callback.records] == [0, 5, 10]  # not appended to the first run's records
    assert callback.records[0]["probabilities"] == {name: 0.25 for name in SIZES}
    assert callback.sampler.history[0] == (0, [0.25] * 4)


@pytest.mark.parametrize(("probe_batch_size", "expected"), [(None, 6), (3, 3)])
def test_probe_batch_size_defaults_to_the_training_micro_batch(
    tmp_path, tiny_tokenizer, skills, probe_batch_size, expected
):
    config = MoSConfig(**{**FAST_MOS, "probe_batch_size": probe_batch_size})
    _, callback = make_trainer(tmp_path, skills, config, tiny_tokenizer, per_device_train_batch_size=6)
    assert callback.runner.batch_size == expected
