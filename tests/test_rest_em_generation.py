# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM E-step: sampling settings, sharding (every prompt once, per-shard seeds, resumable shards), backends."""

import json
import os

import pytest
import torch
from rest_em_distributed_script import single_thread

from trl_mos.generation import generate_from_token_ids, generate_token_ids, tokenize_prompts
from trl_mos.rest_em import ReSTEMTrainer
from trl_mos.rest_em.demo import tiny_restem_config
from trl_mos.rest_em.filtering import derive_seed
from trl_mos.rest_em.generation import (
    ContinuousBatchingBackend,
    SamplingSettings,
    TransformersBackend,
    is_vllm_available,
)
from trl_mos.rest_em.sharding import run_sharded_generation, shard_path
from trl_mos.tasks import make_arithmetic_problems
from trl_mos.testing import build_tiny_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def always(prompts, completions, **kwargs):
    return [1.0] * len(completions)


@pytest.fixture(scope="module")
def problems():
    return make_arithmetic_problems(seed=0, num_train=12, num_validation=4, num_test=4)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, tiny_tokenizer, problems):
    args = tiny_restem_config(tmp_path_factory.mktemp("generation"))
    return ReSTEMTrainer(
        model=build_tiny_model(tiny_tokenizer, seed=0),
        args=args,
        train_dataset=problems["train"],
        processing_class=tiny_tokenizer,
        verifiers=[always],
    )


class RecordingBackend:
    """Returns one fake completion per sample that encodes the prompt, sample and seed."""

    lockstep = False

    def __init__(self, trainer):
        self.accelerator = trainer.accelerator
        self.calls = []

    def generate(self, prompt_ids, settings, seed):
        self.calls.append((len(prompt_ids), seed))
        return [[[len(ids), s, seed % 1000] for s in range(settings.num_samples)] for ids in prompt_ids]


def _collect(shard, indices, completions):
    return {"indices": indices, "completions": completions}


def test_sampling_settings_set_every_option_explicitly():
    config = SamplingSettings(32, 64, temperature=0.7, top_k=40).generation_config(eos_token_id=2, pad_token_id=0)
    assert (config.do_sample, config.temperature, config.top_k, config.top_p) == (True, 0.7, 40, 1.0)
    assert (config.num_return_sequences, config.max_new_tokens, config.repetition_penalty) == (32, 64, 1.0)
    greedy = SamplingSettings(1, 8, do_sample=False).generation_config(eos_token_id=2, pad_token_id=0)
    assert greedy.do_sample is False and greedy.num_return_sequences == 1
    with pytest.raises(ValueError, match="Greedy decoding gives one completion per prompt"):
        SamplingSettings(4, 8, do_sample=False)


def test_every_prompt_once_with_a_seed_per_shard(trainer):
    backend = RecordingBackend(trainer)
    prompt_ids = [[1] * (i + 1) for i in range(7)]
    payloads = run_sharded_generation(
        backend, prompt_ids, SamplingSettings(2, 4), shard_size=3, seed=5, process_shard=_collect, show_progress=False
    )
    assert [p["shard"] for p in payloads] == [0, 1, 2]
    assert [i for p in payloads for i in p["indices"]] == list(range(7))
    assert [seed for _, seed in backend.calls] == [derive_seed(5, "shard", s) for s in range(3)]
    assert payloads[2]["completions"] == [
        [[7, 0, derive_seed(5, "shard", 2) % 1000], [7, 1, derive_seed(5, "shard", 2) % 1000]]
    ]
    assert sum(p["num_tokens"] for p in payloads) == 7 * 2 * 3


def test_saved_shards_are_read_back_and_truncated_ones_regenerated(trainer, tmp_path):
    prompt_ids = [[1] * (i + 1) for i in range(7)]
    first = RecordingBackend(trainer)
    full = run_sharded_generation(
        first, prompt_ids, SamplingSettings(2, 4), 3, 5, _collect, shard_dir=str(tmp_path), show_progress=False
    )
    assert sorted(os.listdir(tmp_path)) == ["shard-00000.json", "shard-00001.json", "shard-00002.json"]
    # a kill mid-write can only leave a temporary file, but even a truncated shard is never taken as complete
    with open(shard_path(str(tmp_path), 1)) as f:
        text = f.read()
    with open(shard_path(str(tmp_path), 1), "w") as f:
        f.write(text[: len(text) // 2])
    second = RecordingBackend(trainer)
    resumed = run_sharded_generation(
        second, prompt_ids, SamplingSettings(2, 4), 3, 5, _collect, shard_dir=str(tmp_path), show_progress=False
    )
    assert [seed for _, seed in second.calls] == [derive_seed(5, "shard", 1)]
    strip = lambda payloads: [{k: v for k, v in p.items() if k != "seconds"} for p in payloads]  # noqa: E731
    assert strip(resumed) == strip(json.loads(json.dumps(full)))


def _default_backend(trainer):
    return TransformersBackend(
        trainer.model, trainer.processing_class, trainer.accelerator, batch_size=trainer.args.generation_batch_size
    )


def test_default_backend_matches_a_bare_generate_call(trainer, tiny_tokenizer, problems):
    prompts = problems["train"]["prompt"][:5]
    prompt_ids = tokenize_prompts(tiny_tokenizer, prompts)
    settings = SamplingSettings(3, 10, temperature=0.7, top_k=40)
    ours = _default_backend(trainer).generate(prompt_ids, settings, seed=11)
    config = settings.generation_config(tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(11)
        batch = max(1, trainer.args.generation_batch_size // 3)
        bare = generate_token_ids(trainer.model, tiny_tokenizer, prompts, config, batch_size=batch)
    assert ours == bare
    assert [len(samples) for samples in ours] == [3] * 5
    assert ours != _default_backend(trainer).generate(prompt_ids, settings, seed=12)
    # generation leaves torch's global random state alone
    state = torch.get_rng_state()
    _default_backend(trainer).generate(prompt_ids[:1], settings, seed=1)
    assert torch.equal(state, torch.get_rng_state())


def test_greedy_generation_does_not_depend_on_batching(trainer, tiny_tokenizer, problems):
    prompt_ids = tokenize_prompts(tiny_tokenizer, problems["train"]["prompt"][:6])
    config = SamplingSettings(1, 10, do_sample=False).generation_config(tiny_tokenizer.eos_token_id, 0)
    config.pad_token_id = tiny_tokenizer.pad_token_id
    batched = generate_from_token_ids(trainer.model, tiny_tokenizer, prompt_ids, config, batch_size=6)
    single = generate_from_token_ids(trainer.model, tiny_tokenizer, prompt_ids, config, batch_size=1)
    assert batched == single


def test_continuous_batching_backend(trainer, tiny_tokenizer, problems, monkeypatch):
    # a small KV cache: sizing it from the free memory is slow on a CPU
    monkeypatch.setattr(
        trainer.args, "transformers_continuous_batching_config", {"num_blocks": 16, "max_batch_tokens": 256}
    )
    prompt_ids = tokenize_prompts(tiny_tokenizer, problems["train"]["prompt"][:3])
    out = ContinuousBatchingBackend(
        trainer.model, tiny_tokenizer, trainer.accelerator, config=trainer.args.transformers_continuous_batching_config
    ).generate(prompt_ids, SamplingSettings(2, 6, temperature=0.7), seed=3)
    assert [len(samples) for samples in out] == [2, 2, 2]
    for samples in out:
        for ids in samples:
            assert 1 <= len(ids) <= 6
            assert tiny_tokenizer.eos_token_id not in ids[:-1]  # cut after the first end of sequence


def test_vllm_missing_says_how_to_install(tmp_path, tiny_tokenizer, problems, monkeypatch):
    if is_vllm_available():
        pytest.skip("vLLM is installed")
    trainer = ReSTEMTrainer(
        model=build_tiny_model(tiny_tokenizer, seed=0),
        args=tiny_restem_config(tmp_path, use_vllm=True),
        train_dataset=problems["train"],
        processing_class=tiny_tokenizer,
        verifiers=[always],
    )
    with pytest.raises(ImportError, match=r"pip install trl-mos\[vllm\]"):
        _ = trainer.generation_backend
