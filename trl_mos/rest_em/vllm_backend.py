# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The ReST^EM vLLM backend (`use_vllm=True`): TRL's [`~trl.generation.vllm_generation.VLLMGeneration`], colocated in
every process or on a `trl vllm-serve` server."""

from __future__ import annotations

from typing import Any

from .generation import GenerationBackend, is_vllm_available


class VLLMBackend(GenerationBackend):
    """TRL's `VLLMGeneration`, colocated in every process or on a `trl vllm-serve` server.

    Args:
        model, tokenizer, accelerator: see [`~trl_mos.rest_em.generation.GenerationBackend`].
        args ([`ReSTEMConfig`]): the `vllm_*` settings, `trust_remote_code` and `max_completion_length`.
    """

    lockstep = True  # server mode gathers the prompts of every process in each call

    def __init__(self, model: Any, tokenizer: Any, accelerator: Any, args: Any):
        super().__init__(model, tokenizer, accelerator)
        if not is_vllm_available():
            raise ImportError(
                "`use_vllm=True` needs vLLM, which is not installed. Install it with `pip install trl-mos[vllm]`."
            )
        from trl.generation.vllm_generation import VLLMGeneration

        self.vllm = VLLMGeneration(
            model=model,
            accelerator=accelerator,
            processing_class=tokenizer,
            mode=args.vllm_mode,
            server_base_url=args.vllm_server_base_url,
            server_host=args.vllm_server_host,
            server_port=args.vllm_server_port,
            server_timeout=args.vllm_server_timeout,
            group_port=args.vllm_group_port,
            tensor_parallel_size=args.vllm_tensor_parallel_size,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            max_model_length=args.vllm_max_model_length,
            enable_sleep_mode=args.vllm_enable_sleep_mode,
            model_impl=args.vllm_model_impl,
            trust_remote_code=args.trust_remote_code,
            max_completion_length=args.max_completion_length,
        )
        self._synced = False

    def update_weights(self, model: Any | None = None) -> None:
        super().update_weights(model)
        if model is not None:
            self.vllm.model = model
        self._synced = False

    def generate(self, prompt_ids, settings, seed):
        if not self._synced:  # the engine starts from the checkpoint on disk, not from the (reset) training weights
            self.vllm.sync_weights()
            self._synced = True
        self.vllm.temperature = settings.temperature if settings.do_sample else 0.0
        self.vllm.top_k = settings.top_k if settings.do_sample else 0
        self.vllm.top_p = settings.top_p if settings.do_sample else 1.0
        self.vllm.max_completion_length = settings.max_new_tokens
        n = settings.num_samples
        repeated = [list(ids) for ids in prompt_ids for _ in range(n)]
        _, completion_ids, _, _ = self.vllm.generate(prompts=repeated, images=None, num_generations=n)
        return [[list(c) for c in completion_ids[i * n : (i + 1) * n]] for i in range(len(prompt_ids))]
