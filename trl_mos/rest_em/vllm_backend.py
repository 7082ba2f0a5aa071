# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The ReST^EM vLLM backend (`use_vllm=True`): a vLLM engine colocated in every training process, or a vLLM server.

The engines themselves are in [`trl_mos.rest_em.vllm_engine`]; this module connects them to the trainer's backend
interface: lazy weight pushes after every weight change, and the weight-sync check after every push.
"""

from __future__ import annotations

import os
from typing import Any

from transformers.utils import logging

from .generation import GenerationBackend, unwrapped
from .vllm_engine import ColocatedVLLMEngine, ServerVLLMEngine, require_vllm, weights_for_vllm
from .weight_sync import WeightSyncCheck


logger = logging.get_logger(__name__)


class VLLMBackend(GenerationBackend):
    """Generation with vLLM, colocated ([`~trl_mos.rest_em.vllm_engine.ColocatedVLLMEngine`]) or on a server
    ([`~trl_mos.rest_em.vllm_engine.ServerVLLMEngine`]).

    The engine starts from the model's checkpoint (for a model that exists only in memory, from a copy saved to
    `output_dir/vllm-initial-model`). After every change of the policy's weights, the next `generate` pushes them into
    the engine (a PEFT model's adapters merged into the base weights) and, unless `weight_sync_check=False`, checks that
    the engine now generates like the training model ([`~trl_mos.rest_em.weight_sync.check_weight_sync`]).

    Args:
        model, tokenizer, accelerator: see [`~trl_mos.rest_em.generation.GenerationBackend`].
        args ([`ReSTEMConfig`]): the `vllm_*` and `weight_sync_*` settings, `trust_remote_code`, `output_dir`.
    """

    lockstep = True  # server mode: every process takes part in each weight push and generate call

    def __init__(self, model: Any, tokenizer: Any, accelerator: Any, args: Any):
        super().__init__(model, tokenizer, accelerator)
        require_vllm()
        self.args = args
        self.weight_sync = WeightSyncCheck.from_args(args, tokenizer)
        self.sync_reports = []  # one per weight push, in order
        self._synced = False
        unwrapped_model = accelerator.unwrap_model(model)
        if args.vllm_mode == "server":
            base_url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
            self.engine = ServerVLLMEngine(base_url, timeout=args.vllm_server_timeout)
        else:
            self.engine = ColocatedVLLMEngine(
                self._start_path(unwrapped_model),
                dtype=next(unwrapped_model.parameters()).dtype,
                seed=accelerator.process_index // args.vllm_tensor_parallel_size,
                max_model_len=args.vllm_max_model_length,
                gpu_memory_utilization=args.vllm_gpu_memory_utilization,
                tensor_parallel_size=args.vllm_tensor_parallel_size,
                enable_sleep_mode=args.vllm_enable_sleep_mode,
                enforce_eager=args.vllm_enforce_eager,
                model_impl=args.vllm_model_impl,
                trust_remote_code=args.trust_remote_code,
                process_index=accelerator.process_index,
                local_process_index=accelerator.local_process_index,
                num_processes=accelerator.num_processes,
            )
        accelerator.wait_for_everyone()

    def _start_path(self, model: Any) -> str:
        from peft import PeftModel

        base = model.get_base_model() if isinstance(model, PeftModel) else model
        path = getattr(base, "name_or_path", "") or ""
        if path:  # a checkpoint directory or a Hub id; the first `generate` pushes the current weights anyway
            return path
        # a model that exists only in memory: save what the engine starts from
        path = os.path.join(self.args.output_dir, "vllm-initial-model")
        self._save_for_engine(model, path)
        return path

    def _save_for_engine(self, model: Any, path: str) -> None:
        """Saves `model`'s weights (adapters merged) and the tokenizer to `path` on the main process."""
        from peft import PeftModel

        base = model.get_base_model() if isinstance(model, PeftModel) else model
        if self.accelerator.is_main_process:
            with weights_for_vllm(model) as weights:
                state_dict = {name: tensor.detach().contiguous() for name, tensor in weights}
                base.save_pretrained(path, state_dict=state_dict, safe_serialization=True)
            self.tokenizer.save_pretrained(path)
        self.accelerator.wait_for_everyone()

    def update_weights(self, model: Any | None = None) -> None:
        super().update_weights(model)
        self._synced = False

    def _push_weights(self) -> None:
        with unwrapped(self) as model:
            if isinstance(self.engine, ServerVLLMEngine):
                # the server reloads from a directory the trainer writes (vLLM's NCCL weight transfer needs CUDA)
                path = os.path.join(self.args.output_dir, "vllm-server-weights")
                self._save_for_engine(model, path)
                if self.accelerator.is_main_process:
                    self.engine.load_weights_from_path(os.path.abspath(path))
            else:
                with weights_for_vllm(model) as weights:
                    self.engine.load_weights(weights)
            if self.weight_sync is not None and (
                self.accelerator.is_main_process or not isinstance(self.engine, ServerVLLMEngine)
            ):
                report = self.weight_sync.run(
                    model,
                    self.engine.greedy,
                    self.eos_token_id(),
                    engine_logprobs=self.engine.logprobs_of,
                    engine=f"the vLLM engine ({self.args.vllm_mode})",
                )
                self.sync_reports.append(report)
        self.accelerator.wait_for_everyone()
        self._synced = True

    def generate(self, prompt_ids, settings, seed):
        if not self._synced:  # the engine starts from the checkpoint on disk, not from the (reset) training weights
            self._push_weights()
        kwargs = dict(
            temperature=settings.temperature if settings.do_sample else 0.0,
            top_k=settings.top_k if settings.do_sample else 0,
            top_p=settings.top_p if settings.do_sample else 1.0,
            seed=seed,
        )
        if isinstance(self.engine, ServerVLLMEngine):
            return self.engine.generate_for_processes(
                self.accelerator, prompt_ids, settings.num_samples, settings.max_new_tokens, **kwargs
            )
        return self.engine.generate(prompt_ids, settings.num_samples, settings.max_new_tokens, **kwargs)
