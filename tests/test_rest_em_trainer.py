# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReSTEMTrainer end to end on the tiny model: the public API, the M-step's starting weights, capping, artifacts,
metrics, validation, selection, bad input, PEFT and the continue-from-last-iterate variant."""

import logging
import os
from collections import Counter

import pytest
import torch
from rest_em_distributed_script import first_token_even, single_thread, small_config
from safetensors.torch import load_file
from transformers import TrainerCallback
from trl.rewards import accuracy_reward

from trl_mos import ReSTEMConfig, ReSTEMTrainer
from trl_mos.rest_em.filtering import read_json, read_jsonl
from trl_mos.rest_em.generation import GenerationBackend
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import build_tiny_model
from trl_mos.verifiers import math_verifier


PROBLEMS = make_arithmetic_problems(seed=0, num_train=8, num_validation=4, num_test=4)
LOGGED = [
    "restem/iteration",
    "restem/samples",
    "restem/correct_rate",
    "restem/prompts_solved_frac",
    "restem/kept",
    "restem/generation_tokens_per_s",
    "restem/train_loss",
    "eval/pass@1",
    "eval/pass@2",
    "eval/maj@2",
    "loss",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def reject_all(prompts, completions, **kwargs):
    return [0.0] * len(completions)


_config = small_config


def _trainer(output_dir, tokenizer, verifiers=(first_token_even,), eval_dataset=PROBLEMS["validation"], **kwargs):
    config_overrides = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("callbacks", "peft_config")}
    return ReSTEMTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        args=_config(output_dir, **config_overrides),
        train_dataset=PROBLEMS["train"],
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        verifiers=list(verifiers),
        **kwargs,
    )


def _checksum(model) -> float:
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


class Probe(TrainerCallback):
    """Records every log, and at the start of each M-step which iteration it is, whether every weight equals the
    base's, and whether the iteration's samples were already on disk."""

    def __init__(self, base_state):
        self.base_state = base_state
        self.trainer = None
        self.logs, self.starts, self.steps = [], [], Counter()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        directory = self.trainer._m_step_output_dir
        self.starts.append(
            {
                "iteration": int(directory.rsplit("-", 1)[1]),
                "global_step": state.global_step,
                "equals_base": all(torch.equal(p, self.base_state[n]) for n, p in model.state_dict().items()),
                "samples_on_disk": os.path.exists(os.path.join(directory, "samples.jsonl")),
                "checksum": _checksum(model),
            }
        )

    def on_step_end(self, args, state, control, **kwargs):
        self.steps[self.starts[-1]["iteration"]] += 1

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _probe(trainer, tokenizer):
    probe = Probe(build_tiny_model(tokenizer, seed=0).state_dict())
    probe.trainer = trainer
    trainer.add_callback(probe)
    return probe


def _record_generation(trainer):
    """Wraps the backend so that every generate call records its settings and the policy's checksum."""
    backend = trainer.generation_backend
    calls = []
    generate = backend.generate

    def recording(prompt_ids, settings, seed):
        calls.append({"settings": settings, "seed": seed, "checksum": _checksum(trainer.model)})
        return generate(prompt_ids, settings, seed)

    backend.generate = recording
    return calls


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_tokenizer):
    output_dir = tmp_path_factory.mktemp("full_run")
    trainer = _trainer(output_dir, tiny_tokenizer)
    probe = _probe(trainer, tiny_tokenizer)
    calls = _record_generation(trainer)
    output = trainer.train()
    return trainer, output, probe, calls, output_dir


def test_full_run_through_the_public_api(full_run):
    trainer, output, probe, calls, output_dir = full_run
    assert isinstance(trainer.args, ReSTEMConfig)
    assert [row["iteration"] for row in trainer.history] == [0, 1, 2]
    assert output.global_step == 4  # two M-steps of max_steps=2
    assert output.metrics["restem/best_iteration"] == trainer.best_iteration
    for row in trainer.history[1:]:
        assert row["restem/samples"] == 8 * 4
        assert 0 < row["restem/kept"] <= 8 * 2
        assert 0 <= row["eval/pass@1"] <= 1 and row["eval/maj@2"] <= row["eval/pass@2"] + 1e-9
    # the E-step samples with the paper-style settings of the config, evaluation greedily and at temperature 1
    e_step = [c["settings"] for c in calls if c["settings"].num_samples == 4]
    assert len(e_step) == 2 * 2 and {(s.temperature, s.top_k) for s in e_step} == {(0.7, 40)}
    sampled_eval = [c["settings"] for c in calls if c["settings"].num_samples == 2]
    assert {(s.temperature, s.top_p) for s in sampled_eval} == {(1.0, 0.95)}


def test_every_metric_is_logged(full_run):
    _, _, probe, _, _ = full_run
    logged = {key for logs in probe.logs for key in logs}
    assert set(LOGGED) <= logged
    iterations = [logs["restem/iteration"] for logs in probe.logs if "eval/pass@1" in logs]
    assert iterations == [0, 1, 2]


def test_artifacts_are_on_disk_for_every_iteration(full_run):
    trainer, _, _, _, output_dir = full_run
    for iteration in (1, 2):
        directory = output_dir / f"iteration-{iteration}"
        assert {"samples.jsonl", "kept.jsonl", "summary.json", "model"} <= set(os.listdir(directory))
        assert not (directory / "shards").exists()  # superseded by samples.jsonl
        assert any(name.startswith("checkpoint-") for name in os.listdir(directory))  # the M-step's checkpoints
        samples = read_jsonl(directory / "samples.jsonl")
        assert len(samples) == 8 * 4
        assert {"prompt_index", "completion", "accepted", "scores", "kept", "num_tokens"} <= set(samples[0])
        assert "prompt" not in samples[0]  # the prompts are written once per run, in prompts.jsonl
        assert all(s["scores"]["first_token_even"] in (0.0, 1.0) for s in samples)
        summary = read_json(directory / "summary.json")
        assert summary["kept"] == sum(s["kept"] for s in samples)
    prompts = read_jsonl(output_dir / "prompts.jsonl")
    assert prompts == [{"prompt_index": i, "prompt": p} for i, p in enumerate(PROBLEMS["train"]["prompt"])]
    best = read_json(output_dir / "best_iteration.json")
    assert best["iteration"] == trainer.best_iteration and best["metric"] == "pass@1"
    assert (output_dir / "best" / "config.json").exists() and (output_dir / "restem_metrics.png").stat().st_size > 0
    state = read_json(output_dir / "restem_state.json")
    assert state["finished"] and sorted(state["iterations"]) == ["0", "1", "2"]


def test_kept_samples_are_accepted_and_capped_per_prompt(full_run):
    _, _, _, _, output_dir = full_run
    for iteration in (1, 2):
        samples = read_jsonl(output_dir / f"iteration-{iteration}" / "samples.jsonl")
        kept = read_jsonl(output_dir / f"iteration-{iteration}" / "kept.jsonl")
        per_prompt = Counter(s["prompt_index"] for s in samples if s["kept"])
        accepted = Counter(s["prompt_index"] for s in samples if s["accepted"])
        assert all(s["accepted"] for s in samples if s["kept"])
        assert per_prompt == {p: min(2, n) for p, n in accepted.items()}  # max_solutions_per_prompt=2
        assert 0 < sum(accepted.values()) < len(samples)  # the verifier really filters
        assert [(k["prompt_index"], k["sample_index"]) for k in kept] == [
            (s["prompt_index"], s["sample_index"]) for s in samples if s["kept"]
        ]


def test_every_m_step_starts_from_the_base_weights_and_samples_come_from_the_last_iterate(full_run, tiny_tokenizer):
    trainer, _, probe, calls, output_dir = full_run
    assert [(s["iteration"], s["global_step"]) for s in probe.starts] == [(1, 0), (2, 0)]
    assert all(s["equals_base"] for s in probe.starts)
    assert all(s["samples_on_disk"] for s in probe.starts)  # every sample was saved before fine-tuning
    base = _checksum(build_tiny_model(tiny_tokenizer, seed=0))
    e_step = [c for c in calls if c["settings"].num_samples == 4]
    from transformers import AutoModelForCausalLM

    iterate_1 = _checksum(AutoModelForCausalLM.from_pretrained(output_dir / "iteration-1" / "model"))
    assert all(c["checksum"] == pytest.approx(base) for c in e_step[:2])  # iteration 1 samples from the base
    assert iterate_1 != pytest.approx(base)
    assert all(c["checksum"] == pytest.approx(iterate_1) for c in e_step[2:])  # iteration 2 from iterate 1


def test_the_best_iteration_is_loaded_at_the_end(full_run):
    trainer, _, _, _, output_dir = full_run
    history = {row["iteration"]: row["eval/pass@1"] for row in trainer.history}
    assert history[trainer.best_iteration] == max(history.values())
    assert trainer.best_iteration == min(i for i, v in history.items() if v == max(history.values()))
    from transformers import AutoModelForCausalLM

    best = AutoModelForCausalLM.from_pretrained(output_dir / "best")
    assert _checksum(best) == pytest.approx(_checksum(trainer.model))


def test_zero_kept_warns_leaves_the_model_unchanged_and_stops_without_improvement(tmp_path, tiny_tokenizer, caplog):
    trainer = _trainer(tmp_path, tiny_tokenizer, verifiers=[reject_all], num_iterations=3, early_stopping_patience=1)
    probe = _probe(trainer, tiny_tokenizer)
    with caplog.at_level(logging.WARNING, logger="trl_mos.rest_em.trainer"):
        trainer.train()
    assert "accepted none of the 32 samples" in caplog.text and "left unchanged" in caplog.text
    assert probe.starts == []  # no M-step ran
    assert [row["iteration"] for row in trainer.history] == [0, 1]  # stopped: no improvement for 1 iteration
    assert trainer.history[1]["restem/kept"] == 0 and trainer.best_iteration == 0
    assert all(torch.equal(p, probe.base_state[n]) for n, p in trainer.model.state_dict().items())
    assert not (tmp_path / "iteration-1" / "model").exists()


def test_continue_from_last_iterate_variant(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, eval_dataset=None, reset_to_base=False, save_strategy="no")
    probe = _probe(trainer, tiny_tokenizer)
    trainer.train()
    from transformers import AutoModelForCausalLM

    iterate_1 = _checksum(AutoModelForCausalLM.from_pretrained(tmp_path / "iteration-1" / "model"))
    assert [s["equals_base"] for s in probe.starts] == [True, False]
    assert probe.starts[1]["checksum"] == pytest.approx(iterate_1)
    # without validation there is no selection: the result is the last iteration
    assert trainer.best_iteration is None and not (tmp_path / "best").exists()
    assert _checksum(trainer.model) == pytest.approx(
        _checksum(AutoModelForCausalLM.from_pretrained(tmp_path / "iteration-2" / "model"))
    )


def test_peft_trains_a_fresh_adapter_on_the_untouched_base(tmp_path, tiny_tokenizer):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    trainer = _trainer(tmp_path, tiny_tokenizer, eval_dataset=None, peft_config=peft_config, save_strategy="no")
    adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    starts = []

    class AdapterProbe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            starts.append(all(torch.equal(p, adapter[n]) for n, p in model.named_parameters() if p.requires_grad))

    trainer.add_callback(AdapterProbe())
    trainer.train()
    assert starts == [True, True]
    assert all(torch.equal(p, frozen[n]) for n, p in trainer.model.named_parameters() if not p.requires_grad)
    assert any(not torch.equal(p, adapter[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)
    assert "adapter_model.safetensors" in os.listdir(tmp_path / "iteration-2" / "model")
    # any iteration can be loaded back: the base (the initial adapter) or a saved adapter
    trainer.load_iteration(0)
    assert all(torch.equal(p, adapter[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)
    trainer.load_iteration(1)
    saved = load_file(tmp_path / "iteration-1" / "model" / "adapter_model.safetensors")
    trained = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert len(saved) == len(trained) and all(
        torch.equal(trained[n.replace(".weight", ".default.weight")], v) for n, v in saved.items()
    )


# ----------------------------------------------------------------------------------------------------------------------
# Validation metrics with scripted completions


class ScriptedBackend(GenerationBackend):
    """Answers from a script: prompt index -> greedy answer and sampled answers."""

    def __init__(self, trainer, prompt_ids, greedy, sampled):
        super().__init__(trainer.model, trainer.processing_class, trainer.accelerator)
        self.index = {tuple(ids): i for i, ids in enumerate(prompt_ids)}
        self.greedy, self.sampled = greedy, sampled

    def generate(self, prompt_ids, settings, seed):
        out = []
        for ids in prompt_ids:
            i = self.index[tuple(ids)]
            answers = [self.greedy[i]] if not settings.do_sample else self.sampled[i][: settings.num_samples]
            texts = [f" so the answer is \\boxed{{{a}}}." if a is not None else " no idea" for a in answers]
            out.append([self.tokenizer(t)["input_ids"] + [self.tokenizer.eos_token_id] for t in texts])
        return out


def _scripted(trainer, dataset, golds):
    from trl_mos.generation import tokenize_prompts

    greedy = [golds[0], "x", golds[2], "y"]  # 2 of 4 right
    sampled = [
        [golds[0]] * 4,  # 4 correct
        [golds[1], "x", "x", "y"],  # 1 correct, the majority is wrong
        ["x", "y", None, None],  # none correct
        [golds[3], golds[3], "y", "z"],  # 2 correct, the majority is right
    ]
    trainer._backend = ScriptedBackend(
        trainer, tokenize_prompts(trainer._tokenizer, dataset["prompt"]), greedy, sampled
    )


def _expected_metrics():
    pass_2 = (1 + (1 - 3 / 6) + 0 + (1 - 1 / 6)) / 4  # 1 - C(n-c, 2) / C(4, 2)
    return {"pass@1": 0.5, "pass@2": pass_2, "maj@2": 0.75, "pass@4": 0.75, "maj@4": 0.5}


def test_validation_metrics_with_math_verifier(tmp_path, tiny_tokenizer):
    dataset = PROBLEMS["test"]
    trainer = _trainer(tmp_path, tiny_tokenizer, verifiers=[math_verifier], eval_num_samples=4, eval_k=[2, 4])
    _scripted(trainer, dataset, dataset["solution"])
    assert trainer.evaluate_accuracy(dataset) == pytest.approx(_expected_metrics())


def test_any_trl_reward_function_is_a_verifier_with_conversational_prompts(tmp_path, tiny_tokenizer):
    dataset = PROBLEMS["test"].map(lambda row: {"prompt": [{"role": "user", "content": row["prompt"]}]})
    trainer = ReSTEMTrainer(
        model=build_tiny_model(tiny_tokenizer, seed=0),
        args=_config(tmp_path, eval_num_samples=4, eval_k=[2, 4]),
        train_dataset=dataset,
        processing_class=tiny_tokenizer,
        verifiers=accuracy_reward,  # a single function is accepted too
    )
    _scripted(trainer, dataset, dataset["solution"])
    assert trainer.evaluate_accuracy(dataset) == pytest.approx(_expected_metrics())


# ----------------------------------------------------------------------------------------------------------------------
# Bad input fails before anything is generated, saying what to fix


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"train_dataset": PROBLEMS["train"].rename_column("prompt", "question")},
            ValueError,
            "`train_dataset` has no 'prompt' column; its columns are ['question', 'completion', 'solution']",
        ),
        (
            {"train_dataset": PROBLEMS["train"].remove_columns("solution")},
            ValueError,
            "The verifier 'math_verifier' needs the column(s) ['solution'], which `train_dataset` lacks; its columns "
            "are ['prompt', 'completion']",
        ),
        (
            {"eval_dataset": PROBLEMS["validation"].rename_column("solution", "answer")},
            ValueError,
            "The verifier 'math_verifier' needs the column(s) ['solution'], which `eval_dataset` lacks",
        ),
        ({"verifiers": None}, ValueError, "ReSTEMTrainer needs at least one verifier"),
        ({"verifiers": []}, ValueError, "ReSTEMTrainer needs at least one verifier"),
        ({"verifiers": ["math"]}, TypeError, "Every verifier must be a function"),
        ({"train_dataset": None}, ValueError, "`train_dataset` is required"),
    ],
)
def test_bad_input_says_what_to_fix(tmp_path, tiny_tokenizer, kwargs, error, message):
    arguments = dict(
        model=build_tiny_model(tiny_tokenizer, seed=0),
        args=_config(tmp_path),
        train_dataset=PROBLEMS["train"],
        eval_dataset=PROBLEMS["validation"],
        processing_class=tiny_tokenizer,
        verifiers=[math_verifier],
    )
    arguments.update(kwargs)
    with pytest.raises(error) as raised:
        ReSTEMTrainer(**arguments)
    assert message in str(raised.value)
    assert not os.path.exists(tmp_path / "iteration-1")


def test_pass_at_k_with_more_than_the_samples_fails_in_the_config(tmp_path):
    with pytest.raises(ValueError, match="pass@k and maj@k need at least k samples per problem"):
        _config(tmp_path, eval_num_samples=4, eval_k=[8])


def test_resuming_without_a_saved_run_or_with_other_settings_fails(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, verifiers=[reject_all], num_iterations=1, evaluate_base=False)
    with pytest.raises(ValueError, match="No ReST\\^EM run to resume"):
        trainer.train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="resumes the run saved in `output_dir`"):
        trainer.train(resume_from_checkpoint="/somewhere/else")
    trainer.train()
    other = _trainer(tmp_path, tiny_tokenizer, verifiers=[reject_all], num_iterations=1, evaluate_base=False, top_k=5)
    with pytest.raises(ValueError, match="top_k: 40 -> 5"):
        other.train(resume_from_checkpoint=True)


def test_selects_the_best_iteration_and_stops_when_it_stops_improving(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, num_iterations=4, early_stopping_patience=1, save_strategy="no")
    scripted = iter([0.25, 0.75, 0.5, 1.0])  # base, iteration 1, 2 (worse: stop), 3 (never reached)
    trainer.evaluate_accuracy = lambda *args, **kwargs: {"pass@1": next(scripted), "pass@2": 0.0, "maj@2": 0.0}
    output = trainer.train()
    assert [row["iteration"] for row in trainer.history] == [0, 1, 2]
    assert trainer.best_iteration == 1 and output.metrics["eval/pass@1"] == 0.75
    assert read_json(tmp_path / "best_iteration.json")["iteration"] == 1
    assert read_json(tmp_path / "restem_state.json")["stopped_at"] == 2
    iterate_1 = load_file(tmp_path / "iteration-1" / "model" / "model.safetensors")
    best = load_file(tmp_path / "best" / "model.safetensors")
    assert all(torch.equal(best[name], iterate_1[name]) for name in iterate_1)
    model = trainer.model.state_dict()
    assert all(torch.equal(model[name], iterate_1[name]) for name in iterate_1)  # trainer.model is the best


def test_plain_sft_or_training_arguments_become_a_restem_config(tmp_path, tiny_tokenizer):
    from trl_mos.testing import tiny_sft_config

    trainer = ReSTEMTrainer(
        model=build_tiny_model(tiny_tokenizer, seed=0),
        args=tiny_sft_config(tmp_path, learning_rate=5e-4),
        train_dataset=PROBLEMS["train"],
        processing_class=tiny_tokenizer,
        verifiers=[math_verifier],
    )
    assert isinstance(trainer.args, ReSTEMConfig)
    assert trainer.args.learning_rate == 5e-4 and trainer.args.num_samples_per_prompt == 32


# ----------------------------------------------------------------------------------------------------------------------
# max_length is checked against the prompts before anything is generated (issue 13, item 2)


class NoGeneration(GenerationBackend):
    def generate(self, prompt_ids, settings, seed):
        raise AssertionError("generated although max_length leaves no room for solutions")


def test_max_length_shorter_than_the_prompts_is_refused_before_generating(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path / "run", tiny_tokenizer, max_length=3)
    trainer._backend = NoGeneration(trainer.model, tiny_tokenizer, trainer.accelerator)
    with pytest.raises(ValueError, match=r"`max_length=3` leaves no room for a solution after 8 of the 8 training"):
        trainer.train()
    assert not (tmp_path / "run" / "restem_state.json").exists()  # nothing was started


def test_max_length_that_would_cut_solutions_warns_with_the_numbers(tmp_path, tiny_tokenizer, caplog):
    from trl_mos.generation import tokenize_prompts

    longest = max(len(ids) for ids in tokenize_prompts(tiny_tokenizer, PROBLEMS["train"]["prompt"]))
    trainer = _trainer(tmp_path, tiny_tokenizer, max_length=longest + 2, num_iterations=1, save_strategy="no")
    with caplog.at_level(logging.WARNING, logger="trl_mos.rest_em.checks"):
        trainer.train()
    budget = trainer.args.max_completion_length
    assert f"`max_length={longest + 2}` is shorter than the longest prompt ({longest} tokens)" in caplog.text
    assert f"= {longest + budget}" in caplog.text


# ----------------------------------------------------------------------------------------------------------------------
# Disk (issue 13, item 4)


def test_save_total_limit_holds_over_the_whole_run(tmp_path, tiny_tokenizer):
    trainer = _trainer(tmp_path, tiny_tokenizer, save_total_limit=1, evaluate_base=False, eval_dataset=None)
    trainer.train()
    checkpoints = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("iteration-*/checkpoint-*"))
    assert checkpoints == ["iteration-2/checkpoint-2"]
    assert all((tmp_path / f"iteration-{i}" / "model").is_dir() for i in (1, 2))  # the default keeps every model


def test_keep_only_the_best_and_the_last_iterations_weights(tmp_path, tiny_tokenizer):
    trainer = _trainer(
        tmp_path, tiny_tokenizer, num_iterations=3, save_strategy="no", keep_iteration_models="best_and_last"
    )
    scripted = iter([0.25, 0.75, 0.5, 0.6])  # base, iterations 1 (best), 2, 3 (last)
    trainer.evaluate_accuracy = lambda *args, **kwargs: {"pass@1": next(scripted), "pass@2": 0.0, "maj@2": 0.0}
    trainer.train()
    assert [i for i in (1, 2, 3) if (tmp_path / f"iteration-{i}" / "model").is_dir()] == [1, 3]
    assert trainer.best_iteration == 1
    trainer.load_iteration(3)
    with pytest.raises(ValueError, match="weights of iteration 2 are not on disk .*best and the last"):
        trainer.load_iteration(2)


def test_json_lines_are_written_as_they_come(tmp_path):
    from trl_mos.rest_em.filtering import atomic_write_jsonl

    seen = []

    def records():
        for i in range(6):
            partial = [p.stat().st_size for p in tmp_path.glob(".rows.jsonl.*.tmp")]
            seen.append(partial[0] if partial else None)
            yield {"i": i, "text": "x" * 10_000}

    atomic_write_jsonl(tmp_path / "rows.jsonl", records())
    assert seen[0] == 0 and seen[-1] > 0  # the file grows while the records are produced: never one string in memory
    assert [r["i"] for r in read_jsonl(tmp_path / "rows.jsonl")] == list(range(6))


def test_unfinished_samples_are_not_kept_by_default(tmp_path, tiny_tokenizer):
    # the untrained tiny model never ends a completion within 8 tokens: every sample is cut off
    trainer = _trainer(tmp_path, tiny_tokenizer, num_iterations=1, eval_dataset=None, keep_unfinished=False)
    trainer.train()
    (row,) = trainer.history
    assert row["restem/unfinished"] == row["restem/samples"] == 32
    assert row["restem/kept"] == 0 and row["restem/correct_rate"] == 0
    samples = read_jsonl(tmp_path / "iteration-1" / "samples.jsonl")
    assert any(s["status"] == "accepted" for s in samples)  # the verifier alone would have accepted some
    assert all(not s["accepted"] and s["reason"].startswith("unfinished") for s in samples)


def test_the_optimizer_is_freed_before_generating(tmp_path, tiny_tokenizer):
    import gc
    import weakref

    trainer = _trainer(tmp_path, tiny_tokenizer, evaluate_base=False, save_strategy="no")
    optimizers = []

    class KeepAnEye(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            optimizer = trainer.optimizer
            optimizers.append(weakref.ref(getattr(optimizer, "optimizer", optimizer)))  # the torch optimizer itself

    trainer.add_callback(KeepAnEye())
    backend, alive = trainer.generation_backend, []
    generate = backend.generate

    def checking(prompt_ids, settings, seed):
        gc.collect()
        alive.extend(ref() is not None for ref in optimizers)
        return generate(prompt_ids, settings, seed)

    backend.generate = checking
    trainer.train()
    assert len(optimizers) == 2 and alive  # validation and the second E-step ran after the first M-step
    assert not any(alive)  # ... with its optimizer (and its Adam moments) gone
