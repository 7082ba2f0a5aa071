# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Batched generation with `model.generate` (left padding, KV cache), shared by the demo, evaluation and ReST^EM."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


Prompt = str | list[dict[str, Any]]  # plain text, or a conversation (list of messages) in TRL's conversational format


def tokenize_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Tokenizes prompts the way TRL's SFT preparation does, so that generation sees what training saw.

    Plain strings are tokenized with the tokenizer's defaults; conversations go through the chat template with
    `add_generation_prompt=True`.

    Args:
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the tokenizer.
        prompts (`Sequence[str | list[dict]]`): the prompts.

    Returns:
        `list[list[int]]`: one list of token ids per prompt.
    """
    token_ids = []
    for prompt in prompts:
        if isinstance(prompt, str):
            token_ids.append(tokenizer(prompt)["input_ids"])
        else:
            ids = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
                ids = ids["input_ids"]
            token_ids.append(list(ids))
    return token_ids


@torch.no_grad()
def generate_token_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    generation_config: GenerationConfig,
    batch_size: int = 64,
    show_progress: bool = False,
    description: str = "Generating",
) -> list[list[list[int]]]:
    """Generates `generation_config.num_return_sequences` completions for every prompt, in padded batches.

    Prompts are grouped by length to limit padding and the results are returned in the input order. The model is put
    in eval mode for generation and its previous mode is restored.

    Args:
        model ([`~transformers.PreTrainedModel`]): the (unwrapped) causal LM.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer; needs a pad token.
        prompts (`Sequence[str | list[dict]]`): plain-text prompts or conversations.
        generation_config ([`~transformers.GenerationConfig`]): sampling settings, `max_new_tokens` included.
        batch_size (`int`, *optional*, defaults to `64`): prompts per `generate` call.
        show_progress (`bool`, *optional*, defaults to `False`): show a tqdm bar.
        description (`str`, *optional*, defaults to `"Generating"`): the bar's label.

    Returns:
        `list[list[list[int]]]`: for each prompt, `num_return_sequences` completions as token ids, cut after the first
        end-of-sequence token (kept) and without padding.
    """
    return generate_from_token_ids(
        model,
        tokenizer,
        tokenize_prompts(tokenizer, prompts),
        generation_config,
        batch_size=batch_size,
        show_progress=show_progress,
        description=description,
    )


@torch.no_grad()
def generate_from_token_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[Sequence[int]],
    generation_config: GenerationConfig,
    batch_size: int = 64,
    show_progress: bool = False,
    description: str = "Generating",
    synced_gpus: bool | None = None,
) -> list[list[list[int]]]:
    """[`generate_token_ids`] for prompts that are already tokenized.

    Args:
        model ([`~transformers.PreTrainedModel`]): the (unwrapped) causal LM.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer; needs a pad token.
        prompt_ids (`Sequence[Sequence[int]]`): the token ids of every prompt, e.g. from [`tokenize_prompts`].
        generation_config ([`~transformers.GenerationConfig`]): sampling settings, `max_new_tokens` included.
        batch_size (`int`, *optional*, defaults to `64`): prompts per `generate` call.
        show_progress (`bool`, *optional*, defaults to `False`): show a tqdm bar.
        description (`str`, *optional*, defaults to `"Generating"`): the bar's label.
        synced_gpus (`bool`, *optional*): `model.generate`'s `synced_gpus` (keep taking part in the other processes'
            forward passes after finishing, for a model sharded over them); `None` lets transformers decide.

    Returns:
        `list[list[list[int]]]`: for each prompt, `num_return_sequences` completions as token ids, cut after the first
        end-of-sequence token (kept) and without padding.

    Example:

    ```python
    >>> from transformers import GenerationConfig
    >>> from trl_mos.generation import generate_from_token_ids, tokenize_prompts
    >>> from trl_mos.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()
    >>> model = build_tiny_model(tokenizer)
    >>> ids = tokenize_prompts(tokenizer, ["copy: a b ="])
    >>> len(generate_from_token_ids(model, tokenizer, ids, GenerationConfig(max_new_tokens=4))[0])
    1
    ```
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set `tokenizer.pad_token` (e.g. to the eos token).")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    if generation_config.pad_token_id is None:
        generation_config = copy.deepcopy(generation_config)  # never change the caller's object
        generation_config.pad_token_id = tokenizer.pad_token_id
    num_return_sequences = generation_config.num_return_sequences or 1
    eos_ids = generation_config.eos_token_id
    if eos_ids is None:
        eos_ids = tokenizer.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, (list, tuple)) else [eos_ids]) - {None}

    prompt_ids = [list(ids) for ids in prompt_ids]
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    results: list[list[list[int]]] = [[] for _ in prompt_ids]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=description, disable=not show_progress, leave=False):
            batch = [prompt_ids[i] for i in order[start : start + batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(batch):  # left padding, so every prompt ends where generation starts
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, width - len(ids) :] = 1
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=generation_config,
                **({} if synced_gpus is None else {"synced_gpus": synced_gpus}),
            )
            completions = output[:, width:].tolist()
            for k, prompt_index in enumerate(order[start : start + batch_size]):
                for sample in completions[k * num_return_sequences : (k + 1) * num_return_sequences]:
                    results[prompt_index].append(_cut_at_eos(sample, eos_ids))
    finally:
        model.train(was_training)
    return results


def _cut_at_eos(token_ids: list[int], eos_ids: set[int]) -> list[int]:
    for position, token_id in enumerate(token_ids):
        if token_id in eos_ids:
            return token_ids[: position + 1]
    # no eos: the completion ran to max_new_tokens; padding can only follow an eos, so there is none to strip
    return token_ids


def generate_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    max_new_tokens: int = 32,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    batch_size: int = 64,
    seed: int | None = None,
    show_progress: bool = False,
) -> list[list[str]]:
    """Generates and decodes completions for a list of prompts (greedy by default).

    Args:
        model ([`~transformers.PreTrainedModel`]): the causal LM.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): its tokenizer; needs a pad token.
        prompts (`Sequence[str | list[dict]]`): plain-text prompts or conversations.
        max_new_tokens (`int`, *optional*, defaults to `32`): longest completion.
        num_return_sequences (`int`, *optional*, defaults to `1`): completions per prompt.
        do_sample (`bool`, *optional*, defaults to `False`): sample instead of greedy decoding.
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature.
        top_k (`int`, *optional*): top-k filtering when sampling.
        top_p (`float`, *optional*): nucleus filtering when sampling.
        batch_size (`int`, *optional*, defaults to `64`): prompts per `generate` call.
        seed (`int`, *optional*): seeds torch's generator first, for reproducible sampling.
        show_progress (`bool`, *optional*, defaults to `False`): show a progress bar.

    Returns:
        `list[list[str]]`: for each prompt, `num_return_sequences` decoded completions without special tokens.

    Example:

    ```python
    >>> from trl_mos import build_tiny_model, build_tiny_tokenizer, generate_completions
    >>> tokenizer = build_tiny_tokenizer()
    >>> model = build_tiny_model(tokenizer)
    >>> len(generate_completions(model, tokenizer, ["copy: a b ="], max_new_tokens=4)[0])
    1
    ```
    """
    if num_return_sequences > 1 and not do_sample:
        raise ValueError("`num_return_sequences > 1` needs `do_sample=True`: greedy decoding gives identical copies.")
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature if do_sample else None,
        top_k=top_k if do_sample else None,
        top_p=top_p if do_sample else None,
        num_return_sequences=num_return_sequences,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if seed is not None:
        torch.manual_seed(seed)
    token_ids = generate_token_ids(
        model, tokenizer, prompts, generation_config, batch_size=batch_size, show_progress=show_progress
    )
    return [tokenizer.batch_decode(samples, skip_special_tokens=True) for samples in token_ids]
