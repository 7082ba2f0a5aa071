# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""ReST^EM E-step: sampling settings, sharding (every prompt once, per-shard seeds, resumable shards), backends."""

import contextlib
import json
import os
from types import SimpleNamespace

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
from trl_mos.rest_em.sharding import read_shard, run_sharded_generation, shard_path
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
    assert sorted(os.listdir(tmp_path)) == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
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


def test_shards_are_json_lines_and_a_reduced_summary_is_what_travels(trainer, tmp_path):
    def samples(shard, indices, completions):
        return {
            "samples": [
                {"prompt_index": i, "n": len(c)} for i, per in zip(indices, completions, strict=True) for c in per
            ]
        }

    payloads = run_sharded_generation(
        RecordingBackend(trainer),
        [[1] * (i + 1) for i in range(5)],
        SamplingSettings(2, 4),
        3,
        5,
        samples,
        shard_dir=str(tmp_path),
        show_progress=False,
        reduce=lambda payload: {"count": len(payload["samples"])},
    )
    assert [(p["shard"], p["count"]) for p in payloads] == [(0, 6), (1, 4)]
    assert all("samples" not in p for p in payloads)  # the samples stay on disk
    lines = (tmp_path / "shard-00001.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["shard"] == 1 and header["num_samples"] == 4 and len(lines) == 1 + 4
    assert [json.loads(line)["prompt_index"] for line in lines[1:]] == [3, 3, 4, 4]
    assert read_shard(str(tmp_path / "shard-00001.jsonl"))["samples"][0] == {"prompt_index": 3, "n": 3}
    (tmp_path / "shard-00001.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # a sample line missing
    assert read_shard(str(tmp_path / "shard-00001.jsonl")) is None


# ----------------------------------------------------------------------------------------------------------------------
# Lockstep over a sharded model (issue 15, item 4)


def _fake_accelerator(rank, distributed_type):
    state = SimpleNamespace(distributed_type=distributed_type, deepspeed_plugin=None)
    return SimpleNamespace(
        process_index=rank, num_processes=2, is_main_process=True, state=state, device=torch.device("cpu")
    )


class CountingBackend(TransformersBackend):
    """The default backend over a fake 2-process accelerator, counting its (collective) generate calls."""

    def __init__(self, accelerator):
        super().__init__(None, None, accelerator)
        self.calls = []

    def generate(self, prompt_ids, settings, seed):
        self.calls.append(len(prompt_ids))
        return [[[1]] * settings.num_samples for _ in prompt_ids]


@pytest.mark.parametrize("distributed_type", ["FSDP", "MULTI_CPU"])
def test_every_rank_makes_as_many_generate_calls_over_a_sharded_model(monkeypatch, distributed_type):
    from accelerate.utils import DistributedType

    from trl_mos.rest_em import sharding

    num_prompts, shard_size = 6, 2  # 3 shards over 2 ranks: rank 0 samples two, rank 1 one
    everything = [{"shard": s, "rank": s % 2, "seconds": 0.0, "num_tokens": 0} for s in range(3)]
    monkeypatch.setattr(sharding, "broadcast_object_list", lambda objects, from_process=0: objects)
    monkeypatch.setattr(sharding, "gather_object", lambda objects: everything)  # stands for the other rank's shards
    calls = {}
    for rank in (0, 1):
        backend = CountingBackend(_fake_accelerator(rank, DistributedType[distributed_type]))
        sharding.run_sharded_generation(
            backend, [[1, 2]] * num_prompts, SamplingSettings(2, 4), shard_size, 0, _collect, show_progress=False
        )
        calls[rank] = backend.calls
    if distributed_type == "FSDP":  # every forward pass is a collective: rank 1 pads with a throw-away call
        assert backend.lockstep and calls == {0: [2, 2], 1: [2, 2]}
    else:  # DDP: each rank generates on its own
        assert not backend.lockstep and calls == {0: [2, 2], 1: [2]}


def test_synced_gpus_is_set_over_a_sharded_model(monkeypatch):
    from accelerate.utils import DistributedType

    from trl_mos.rest_em import generation

    seen = {}

    def fake_generate(model, tokenizer, prompt_ids, config, batch_size, synced_gpus=None):
        seen["synced_gpus"] = synced_gpus
        return [[[1]] for _ in prompt_ids]

    monkeypatch.setattr(generation, "generate_from_token_ids", fake_generate)
    monkeypatch.setattr(generation, "unwrapped", lambda backend: contextlib.nullcontext(None))
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=2)
    for distributed_type, expected in ((DistributedType.FSDP, True), (DistributedType.MULTI_CPU, False)):
        backend = TransformersBackend(None, tokenizer, _fake_accelerator(0, distributed_type))
        backend.eos_token_id = lambda: 2
        backend.generate([[1, 2]], SamplingSettings(1, 4, do_sample=False), seed=0)
        assert seen["synced_gpus"] is expected


def test_continuous_batching_refuses_a_sharded_model():
    from accelerate.utils import DistributedType

    with pytest.raises(ValueError, match="continuous batching cannot generate over a model sharded"):
        ContinuousBatchingBackend(None, None, _fake_accelerator(0, DistributedType.FSDP))
