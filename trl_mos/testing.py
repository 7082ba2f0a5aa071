# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Offline tiny-model kit: a tokenizer trained in-process and a tiny causal LM, built from a seed in seconds.

Tests, `trl-mos demo`, the examples' `--tiny` mode and the benchmarks all use this one kit, so that nothing needs the
Hugging Face Hub. `save_tiny_model` writes both to a directory, so the real loading path
(`AutoModelForCausalLM.from_pretrained(path)`, `AutoTokenizer.from_pretrained(path)`) is exercised too.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)


PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]

# vLLM's CPU attention needs a head dimension of at least 32; the default tiny model has 64 / 4 = 16. Two heads (one
# key/value head) at the same width keep the model as small: `build_tiny_model(tokenizer, **VLLM_TINY_MODEL_KWARGS)`.
VLLM_TINY_MODEL_KWARGS = dict(num_attention_heads=2)

# ChatML, as Qwen uses it. The `{% generation %}` markers let `return_assistant_tokens_mask=True` work, so TRL's
# `assistant_only_loss=True` can be used with the kit.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = (
    "the a an of to and in is it that for on with as was he she they we you his her their has have had buys sells "
    "gives gets finds loses eats more less each every box boxes bag bags apple apples coin coins book books pen pens "
    "cat cats dog dogs how many much total left now then after before first second answer question solution step "
    "let def return print input output if else for while in range len sum max min sorted list str int assert check "
    "copy reverse sort add multiply plus minus times equals system user assistant problem write function number "
    "numbers digits letters string result value test tests true false none"
).split()


def _default_corpus(seed: int, num_lines: int = 3000) -> Iterator[str]:
    """Yields a deterministic training corpus covering what the bundled tasks and chat template produce."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(num_lines):
        kind = rng.randrange(4)
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        if kind == 0:
            yield " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))) + "."
        elif kind == 1:
            yield " ".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
        elif kind == 2:
            yield f"{a} + {b} = {a + b}. {a} * {b} = {a * b}. The answer is \\boxed{{{a - b}}}."
        else:
            yield f"def f(x):\n    return sorted(x)[::-1]\nassert f([{a}, {b}]) == [{max(a, b)}, {min(a, b)}]\n"


def build_tiny_tokenizer(
    seed: int = 0, vocab_size: int = 512, corpus: Iterable[str] | None = None
) -> PreTrainedTokenizerFast:
    """Trains a small byte-level BPE tokenizer in-process and wraps it for Transformers.

    Digits are always split into single tokens (as in Qwen and Llama 3), so arithmetic stays learnable. The tokenizer
    has `pad_token` `<|endoftext|>`, `eos_token` `<|im_end|>` and a ChatML chat template.

    Args:
        seed (`int`, *optional*, defaults to `0`):
            Seed of the generated training corpus; the same seed gives the same vocabulary.
        vocab_size (`int`, *optional*, defaults to `512`):
            Target vocabulary size, special tokens and the 256 byte symbols included.
        corpus (`Iterable[str]`, *optional*):
            Texts to train on instead of the built-in corpus.

    Returns:
        [`~transformers.PreTrainedTokenizerFast`]: the trained tokenizer.

    Example:

    ```python
    >>> from trl_mos.testing import build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()
    >>> tokenizer.decode(tokenizer("12 + 30 = 42")["input_ids"])
    '12 + 30 = 42'
    ```
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus) if corpus is not None else list(_default_corpus(seed)), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast | None = None,
    seed: int = 0,
    architecture: Literal["qwen2", "llama"] = "qwen2",
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 512,
    tie_word_embeddings: bool = True,
) -> PreTrainedModel:
    """Builds a tiny randomly-initialised causal LM matching `tokenizer`.

    Args:
        tokenizer ([`~transformers.PreTrainedTokenizerFast`], *optional*):
            Tokenizer whose vocabulary and special tokens the model uses. Defaults to `build_tiny_tokenizer(seed)`.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the weight initialisation; the same seed gives bit-identical weights.
        architecture (`str`, *optional*, defaults to `"qwen2"`):
            `"qwen2"` ([`~transformers.Qwen2ForCausalLM`]) or `"llama"` ([`~transformers.LlamaForCausalLM`]).
        hidden_size (`int`, *optional*, defaults to `64`):
            Width of the residual stream.
        num_hidden_layers (`int`, *optional*, defaults to `2`):
            Number of decoder layers.
        num_attention_heads (`int`, *optional*, defaults to `4`):
            Number of attention heads (half as many key/value heads, to exercise grouped-query attention).
        max_position_embeddings (`int`, *optional*, defaults to `512`):
            Longest sequence the model accepts.
        tie_word_embeddings (`bool`, *optional*, defaults to `True`):
            Share the input embedding matrix with the output head (as Qwen2.5-0.5B/1.5B do).

    Returns:
        [`~transformers.PreTrainedModel`]: the model, in float32 and train mode. Pass `**VLLM_TINY_MODEL_KWARGS` for
        a model vLLM's CPU attention accepts (head dimension 32 instead of 16).

    Example:

    ```python
    >>> from trl_mos.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()
    >>> model = build_tiny_model(tokenizer)
    >>> model.config.hidden_size
    64
    ```
    """
    if tokenizer is None:
        tokenizer = build_tiny_tokenizer(seed=seed)
    config_kwargs = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=max(1, num_attention_heads // 2),
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    if architecture == "qwen2":
        config, model_class = Qwen2Config(**config_kwargs), Qwen2ForCausalLM
    elif architecture == "llama":
        config, model_class = LlamaConfig(**config_kwargs), LlamaForCausalLM
    else:
        raise ValueError(f"Unknown architecture {architecture!r}; use 'qwen2' or 'llama'.")
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state untouched
        torch.manual_seed(seed)
        model = model_class(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_model(output_dir: str | os.PathLike, seed: int = 0, **model_kwargs) -> str:
    """Builds the tiny tokenizer and model from `seed` and saves both to `output_dir`.

    Args:
        output_dir (`str` or `os.PathLike`):
            Directory to write to (created if needed).
        seed (`int`, *optional*, defaults to `0`):
            Seed of both the tokenizer and the model.
        **model_kwargs:
            Passed on to [`build_tiny_model`].

    Returns:
        `str`: `output_dir`, ready for `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`.

    Example:

    ```python
    >>> from transformers import AutoModelForCausalLM
    >>> from trl_mos.testing import save_tiny_model
    >>> path = save_tiny_model("tiny-model")
    >>> model = AutoModelForCausalLM.from_pretrained(path)
    ```
    """
    tokenizer = build_tiny_tokenizer(seed=seed)
    model = build_tiny_model(tokenizer, seed=seed, **model_kwargs)
    output_dir = os.fspath(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


# Training arguments every run on the tiny model shares: float32 on the CPU, no activation checkpointing, no
# checkpoints, reporting, progress bars or data-loader workers, a fixed seed. Any of them can be overridden.
TINY_CPU_TRAINING_ARGS = dict(
    save_strategy="no",
    report_to="none",
    bf16=False,
    activation_checkpointing=False,
    use_cpu=True,
    disable_tqdm=True,
    dataloader_num_workers=0,
    seed=0,
)


def tiny_sft_config(output_dir: str | os.PathLike, **overrides):
    """An `SFTConfig` suited to the tiny model on a CPU: float32, no activation checkpointing, no checkpoints, no
    reporting, no progress bars, high learning rate.

    Args:
        output_dir (`str` or `os.PathLike`): the run's output directory.
        **overrides: any `SFTConfig` field, overriding the defaults here.

    Returns:
        [`~trl.SFTConfig`]: the config.

    Example:

    ```python
    >>> from trl_mos.testing import tiny_sft_config
    >>> tiny_sft_config("out", max_steps=10).max_steps
    10
    ```
    """
    from trl import SFTConfig

    kwargs = dict(
        output_dir=os.fspath(output_dir),
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        max_length=64,
        logging_steps=5,
        **TINY_CPU_TRAINING_ARGS,
    )
    kwargs.update(overrides)
    return SFTConfig(**kwargs)
