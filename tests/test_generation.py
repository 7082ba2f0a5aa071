# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import pytest
from transformers import GenerationConfig

from trl_mos.generation import generate_completions, generate_token_ids


PROMPTS = ["copy: a b c =", "add: 1 + 2 =", "reverse: x y z w v u t =", "sort: 3 1 ="]


def test_batched_greedy_equals_one_prompt_at_a_time(tiny_tokenizer, tiny_model):
    batched = generate_completions(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=6, batch_size=3)
    single = [generate_completions(tiny_model, tiny_tokenizer, [p], max_new_tokens=6)[0] for p in PROMPTS]
    assert batched == single  # order kept, padding does not change the result
    assert all(len(samples) == 1 for samples in batched)


def test_sampling_is_reproducible_with_seed_and_returns_n_per_prompt(tiny_tokenizer, tiny_model):
    kwargs = dict(max_new_tokens=5, num_return_sequences=4, do_sample=True, temperature=1.0, top_k=40, seed=7)
    a = generate_completions(tiny_model, tiny_tokenizer, PROMPTS, **kwargs)
    b = generate_completions(tiny_model, tiny_tokenizer, PROMPTS, **kwargs)
    assert a == b
    assert [len(samples) for samples in a] == [4] * len(PROMPTS)
    assert len({s for samples in a for s in samples}) > len(PROMPTS)  # samples actually differ


def test_completions_stop_after_eos_and_model_mode_is_restored(tiny_tokenizer, tiny_model):
    tiny_model.train()
    config = GenerationConfig(max_new_tokens=8, do_sample=False, eos_token_id=tiny_tokenizer.eos_token_id)
    ids = generate_token_ids(tiny_model, tiny_tokenizer, PROMPTS, config)
    assert tiny_model.training
    for samples in ids:
        for sample in samples:
            assert 1 <= len(sample) <= 8
            assert tiny_tokenizer.pad_token_id not in sample
            if tiny_tokenizer.eos_token_id in sample:
                assert sample.index(tiny_tokenizer.eos_token_id) == len(sample) - 1


def test_eos_cut_keeps_the_first_eos_and_drops_what_follows():
    from trl_mos.generation import _cut_at_eos

    assert _cut_at_eos([5, 6, 2, 0, 0], {2}) == [5, 6, 2]
    assert _cut_at_eos([5, 3, 6, 2], {2, 3}) == [5, 3]
    assert _cut_at_eos([5, 6, 7], {2}) == [5, 6, 7]


def test_conversational_prompts_use_the_chat_template(tiny_tokenizer, tiny_model):
    conversation = [{"role": "user", "content": "copy: a b ="}]
    text_prompt = tiny_tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    a = generate_completions(tiny_model, tiny_tokenizer, [conversation], max_new_tokens=5)
    b = generate_completions(tiny_model, tiny_tokenizer, [text_prompt], max_new_tokens=5)
    assert a == b


def test_bad_arguments_are_rejected(tiny_tokenizer, tiny_model):
    with pytest.raises(ValueError, match="needs `do_sample=True`"):
        generate_completions(tiny_model, tiny_tokenizer, PROMPTS, num_return_sequences=2)
    with pytest.raises(ValueError, match="`batch_size` must be at least 1"):
        generate_completions(tiny_model, tiny_tokenizer, PROMPTS, batch_size=0)
