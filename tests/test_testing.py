# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trl_mos.testing import build_tiny_model, build_tiny_tokenizer, save_tiny_model, tiny_sft_config


def test_tokenizer_is_deterministic_and_has_special_tokens(tiny_tokenizer):
    again = build_tiny_tokenizer(seed=0)
    assert again.get_vocab() == tiny_tokenizer.get_vocab()
    assert tiny_tokenizer.pad_token == "<|endoftext|>"
    assert tiny_tokenizer.eos_token == "<|im_end|>"
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    assert len(tiny_tokenizer) == 512


def test_tokenizer_splits_digits_and_round_trips(tiny_tokenizer):
    text = "Tom has 123 apples. reverse: a b c = c b a \\boxed{42}"
    ids = tiny_tokenizer(text)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    assert all(not (t.isdigit() and len(t) > 1) for t in tiny_tokenizer.tokenize("12345 + 678"))


def test_chat_template(tiny_tokenizer):
    messages = [{"role": "user", "content": "copy: a b ="}, {"role": "assistant", "content": "a b"}]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|im_start|>user\ncopy: a b =<|im_end|>\n<|im_start|>assistant\na b<|im_end|>\n"
    prompt = tiny_tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    # the template marks assistant tokens, so TRL's assistant_only_loss works with the kit
    out = tiny_tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tiny_tokenizer.decode(masked) == "a b<|im_end|>"


def test_model_is_deterministic_and_leaves_global_rng_alone(tiny_tokenizer):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_model(tiny_tokenizer, seed=3)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random stream is untouched
    b = build_tiny_model(tiny_tokenizer, seed=3)
    c = build_tiny_model(tiny_tokenizer, seed=4)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))
    assert a.config.hidden_size == 64 and a.config.num_hidden_layers == 2
    assert a.config.vocab_size == len(tiny_tokenizer)


def test_llama_architecture(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, architecture="llama")
    assert model.config.model_type == "llama"
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, len(tiny_tokenizer))


def test_unknown_architecture_is_rejected(tiny_tokenizer):
    import pytest

    with pytest.raises(ValueError, match="Unknown architecture 'gpt9'"):
        build_tiny_model(tiny_tokenizer, architecture="gpt9")


def test_save_and_load_round_trip(tmp_path):
    path = save_tiny_model(tmp_path / "tiny", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    original_tokenizer = build_tiny_tokenizer(seed=0)
    original = build_tiny_model(original_tokenizer, seed=0)
    text = "<|im_start|>user\nadd: 1 + 2 =<|im_end|>\n"
    assert tokenizer(text)["input_ids"] == original_tokenizer(text)["input_ids"]
    assert tokenizer.chat_template == original_tokenizer.chat_template
    assert tokenizer.pad_token == original_tokenizer.pad_token and tokenizer.eos_token == original_tokenizer.eos_token
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, original(ids).logits)


def test_loss_falls_under_sft_trainer(tmp_path, tiny_tokenizer, tiny_model):
    from trl import SFTTrainer

    from trl_mos.tasks import make_skill_datasets

    data = make_skill_datasets(seed=0, sizes={"copy": 256, "reverse": 64})
    args = tiny_sft_config(tmp_path, max_steps=40)
    trainer = SFTTrainer(model=tiny_model, args=args, train_dataset=data["train"], processing_class=tiny_tokenizer)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 8
    assert losses[-1] < 0.6 * losses[0], losses
