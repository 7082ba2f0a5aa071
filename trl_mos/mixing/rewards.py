# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""Rewards of Mixture-of-Skills, computed with the model being trained on fixed per-skill probe sets.

- **CosSim** (transferability): z_i is the mean, over skill i's probe examples, of the last-layer hidden states
  mean-pooled over real tokens. R(i) = (1/N) Σ_n cos(z_i, z_n); for MoSpec R(i) = cos(z_i, z_target).
- **Diff** (difficulty): R(i) is the mean over skill i's probe examples of PPL_θ(x) / PPL_θ0(x), perplexities over
  the tokens that carry the loss (the completion, under TRL's default `completion_only_loss`), θ0 being the model at
  train start (with PEFT: the base model, adapters disabled). For MoSpec the target's reward is doubled.
- **EMA** (learning trajectory), optional on top: R_t = β·R + (1 − β)·R_{t−1}, R_0 = 1.

Probe forward passes run under `no_grad` in eval mode (the model's mode is restored), batched with the trainer's data
collator, and are split across processes: every rank runs the same number of forward passes (ranks without a real
batch repeat one and discard it, as FSDP and ZeRO-3 need every rank in every forward), and the per-example results
are summed across ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import logging

from .data import SkillIndex, row_lengths


logger = logging.get_logger(__name__)

# columns the data collators of TRL and Transformers turn into model inputs and labels
_MODEL_COLUMNS = (
    "input_ids",
    "attention_mask",
    "labels",
    "completion_mask",
    "assistant_masks",
    "token_type_ids",
    "seq_lengths",  # packed rows: where each packed example starts
)
_PROBE_STREAM = 2


def select_probe_rows(skill_index: SkillIndex, size: int, seed: int) -> list[list[int]]:
    """Picks a fixed, seeded probe set of at most `size` rows per skill.

    Smaller probe sets of the same seed are prefixes of larger ones, so the Diff probes are a subset of the CosSim
    probes and one forward pass serves both.
    """
    probes = []
    for skill in range(skill_index.num_skills):
        rows = skill_index.rows_of(skill)
        order = np.random.default_rng([seed, _PROBE_STREAM, skill]).permutation(len(rows))
        probes.append([int(r) for r in rows[order[:size]]])
    return probes


def _base_model(model):
    """The transformers model inside DDP or DeepSpeed engines and PEFT wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP, DeepSpeed engines
        model = model.module
    if hasattr(model, "get_base_model"):  # PEFT: the wrapper's forward passes its `**kwargs` on to the base model
        model = model.get_base_model()
    return model


def _separates_packed_rows(model) -> bool:
    """Whether attention keeps packed examples apart in a batch of several rows given only `position_ids`.

    Transformers builds the masks of eager and SDPA attention from where `position_ids` restart in every row
    (`find_packed_sequence_indices`); its flash-attention paths read packing from a single flattened row only.
    """
    config = getattr(_base_model(model), "config", None)
    return getattr(config, "_attn_implementation", None) in ("eager", "sdpa")


def _accepts(model, name: str) -> bool:
    model = _base_model(model)
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


class ProbeRunner:
    """Runs per-example forward passes over rows of the trainer's prepared train dataset, split across processes.

    Rows are batched in order of length (the least padding), and with `cache=True` their collated batches are kept
    (on CPU) for the next call with the same rows: fixed probe sets are read and collated once per run. With TRL's
    padding-free collator, unpacked probes are collated with padding instead: sorted by length they carry little
    padding, and attention over padded rows costs less than over one flattened row outside varlen attention kernels
    (the results are the same, tested). Packed rows are likewise collated one per batch row, without an attention
    mask: under eager and SDPA attention their `position_ids` keep the packed examples apart (the same results as the
    flattened collation, tested); under flash attention, whose varlen kernels want one flattened row, they stay
    flattened and are split back per row.

    Args:
        trainer ([`~transformers.Trainer`]): the trainer (its `train_dataset`, `data_collator`, `model` and
            `accelerator` are used).
        skill_column (`str`): the skill column, never passed to the collator.
        batch_size (`int`): examples per forward pass.
        dataset (`Dataset`, *optional*): the dataset whose rows are probed, prepared like the train dataset.
            Defaults to the trainer's train dataset.
        lengths (`np.ndarray`, *optional*): the tokens of every row of that dataset, when already counted (see
            [`row_lengths`]); counted at the first run otherwise.
    """

    def __init__(self, trainer, skill_column: str, batch_size: int, dataset=None, lengths: np.ndarray | None = None):
        self.trainer = trainer
        self.batch_size = batch_size
        self.source = dataset if dataset is not None else trainer.train_dataset
        columns = self.source.column_names
        if "input_ids" in columns:
            self.columns = [c for c in _MODEL_COLUMNS if c in columns]
        else:  # the collator tokenizes on the fly: give it the raw columns
            self.columns = [c for c in columns if c != skill_column]
        self.collator = trainer.data_collator
        # one packed row per batch row, padded, kept apart by `position_ids` (see `_collate`)
        self._packed_rows = False
        if getattr(self.collator, "padding_free", False) and dataclasses.is_dataclass(self.collator):  # TRL's
            if "seq_lengths" not in columns:
                self.collator = dataclasses.replace(self.collator, padding_free=False)
            elif _separates_packed_rows(trainer.model) and hasattr(self.collator, "return_position_ids"):
                self.collator = dataclasses.replace(self.collator, padding_free=False, return_position_ids=True)
                self._packed_rows = True
        self._dataset = None
        self._lengths = lengths
        self._cache: dict[tuple[int, ...], tuple[dict, torch.Tensor, list[tuple[int, int, int]]]] = {}

    def _collate(self, rows: list[int]) -> tuple[dict, torch.Tensor, list[tuple[int, int, int]]]:
        """Collates `rows` with the trainer's collator (on CPU); also returns where every example lies in the batch.

        Returns:
            `(inputs, labels, spans)`: `spans[k] = (batch_row, start, end)` holds the tokens of `rows[k]`. A padded
            batch has one example per batch row (its padding is excluded through the attention mask, or by the span
            of a packed row); a padding-free batch (TRL's `padding_free=True`: one flattened row with `position_ids`,
            no attention mask) holds every example in one row, one after the other.
        """
        if self._dataset is None:
            self._dataset = self.source.select_columns(self.columns)
        columns = self._dataset[rows]  # one read of all rows: much faster than a read per row
        features = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        batch = dict(self.collator(features))
        labels = batch.pop("labels", None)
        if labels is None:  # no labels: every real token counts
            labels = batch["input_ids"].masked_fill(batch.get("attention_mask", 1) == 0, -100)
        if self._packed_rows:
            # Without an attention mask, the model keeps each packed example to itself from where its
            # `position_ids` restart (the padding's 0s are one-token sequences, after every real token); as in the
            # flattened collation, no example's first token is a label of the one before.
            lengths = batch.pop("attention_mask").sum(1).tolist()
            labels = labels.masked_fill(batch["position_ids"] == 0, -100)
            return batch, labels, [(i, 0, size) for i, size in enumerate(lengths)]
        num_rows, length = batch["input_ids"].shape
        if num_rows == len(rows):
            return batch, labels, [(i, 0, length) for i in range(num_rows)]
        # padding-free: the examples were concatenated into one row
        if "input_ids" in features[0]:
            lengths = [len(feature["input_ids"]) for feature in features]
        else:  # collated from raw columns: every example starts where its positions restart at 0
            starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() if "position_ids" in batch else []
            lengths = np.diff(starts + [length]).tolist() if len(starts) == len(rows) else []
        if num_rows != 1 or len(lengths) != len(rows) or sum(lengths) > length:
            raise ValueError(
                f"The data collator turned {len(rows)} Mixture-of-Skills probe examples into a batch of {num_rows} "
                "row(s) that cannot be split back into examples; use a collator that returns one row per example "
                "or TRL's padding-free collator."
            )
        ends = np.cumsum(lengths).tolist()
        return batch, labels, [(0, end - size, end) for size, end in zip(lengths, ends, strict=True)]

    def _batch(self, rows: list[int], cache: bool) -> tuple[dict, torch.Tensor, list[tuple[int, int, int]]]:
        """The collated batch of `rows` on the trainer's device, from the cache when `cache` and already collated."""
        key = tuple(rows)
        collated = self._cache.get(key) if cache else None
        if collated is None:
            collated = self._collate(rows)
            if cache:
                self._cache[key] = collated
        inputs, labels, spans = collated
        device = self.trainer.args.device
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        return inputs, labels.to(device), spans

    @torch.no_grad()
    def run(
        self, rows: list[int], hidden: bool, nll: bool, base_model: bool = False, cache: bool = False
    ) -> torch.Tensor:
        """Returns, for every row, `[pooled last hidden state (if hidden)..., NLL sum, token count (if nll)]`.

        Args:
            rows (`list[int]`): dataset rows.
            hidden (`bool`): compute the mean-pooled last hidden state.
            nll (`bool`): compute the summed negative log-likelihood of the label tokens and their count.
            base_model (`bool`): with a PEFT model, disable the adapters.
            cache (`bool`): keep the collated batches for later calls with the same rows (fixed probe sets).

        Returns:
            `torch.Tensor`: float64 on CPU, shape `(len(rows), width)`, in the order of `rows`, identical on every
            process.
        """
        model = self.trainer.model
        accelerator = self.trainer.accelerator
        world_size, rank = accelerator.num_processes, accelerator.process_index
        if self._lengths is None:
            lengths = row_lengths(self.source)
            self._lengths = lengths if lengths is not None else np.zeros(len(self.source), dtype=np.int64)
        # batches of similar lengths pad the least; a stable sort, so every process forms the same batches
        order = np.argsort(self._lengths[np.asarray(rows, dtype=np.int64)], kind="stable")
        by_length = [rows[i] for i in order]
        batches = [by_length[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        starts = np.cumsum([0] + [len(b) for b in batches])
        # without a cache, a padding-free batch's `position_ids` keep its examples apart in attention
        extra = {"use_cache": False}
        if hidden:
            extra["output_hidden_states"] = True
        if not nll and _accepts(model, "logits_to_keep"):
            extra["logits_to_keep"] = 1  # the LM head over every position is only needed for the NLL
        unwrapped = accelerator.unwrap_model(model)
        adapters_off = (
            unwrapped.disable_adapter()
            if base_model and hasattr(unwrapped, "disable_adapter")
            else contextlib.nullcontext()
        )
        results: torch.Tensor | None = None
        was_training = model.training
        model.eval()
        try:
            with adapters_off:
                for round_ in range(math.ceil(len(batches) / world_size)):
                    index = round_ * world_size + rank
                    is_real = index < len(batches)
                    inputs, labels, spans = self._batch(batches[index] if is_real else batches[-1], cache)
                    outputs = model(**inputs, **extra)
                    values = []
                    if hidden:
                        values.append(_mean_pool(outputs.hidden_states[-1], inputs.get("attention_mask"), spans))
                    if nll:
                        logits = [outputs.logits[row, start:end] for row, start, end in spans]
                        values.append(_per_example_nll(logits, [labels[row, start:end] for row, start, end in spans]))
                    values = torch.cat(values, dim=1).double().cpu()
                    if results is None:
                        results = torch.zeros(len(rows), values.shape[1], dtype=torch.float64)
                    if is_real:
                        results[torch.as_tensor(order[starts[index] : starts[index + 1]])] = values
        finally:
            model.train(was_training)
        if world_size > 1:  # each row was filled by exactly one rank
            results = accelerator.reduce(results.to(accelerator.device), reduction="sum").cpu()
        return results


def _mean_pool(states: torch.Tensor, mask: torch.Tensor | None, spans: list[tuple[int, int, int]]) -> torch.Tensor:
    """`(len(spans), hidden)`: the mean of `states` (`(rows, length, hidden)`) over the real tokens of every span.

    `spans` are those of [`ProbeRunner._collate`]: one per row of a padded batch, or all in the one row of a
    padding-free batch. One batched matrix product over per-token weights, deterministic on every device.
    """
    length, device = states.shape[1], states.device
    rows, starts, ends = (torch.tensor(column, device=device) for column in zip(*spans, strict=True))
    positions = torch.arange(length, device=device)
    weights = ((positions >= starts[:, None]) & (positions < ends[:, None])).float()  # (spans, length)
    if mask is not None:
        weights = weights * mask[rows].float()
    if states.shape[0] == 1:  # padding-free: every span lies in the one row
        pooled = weights @ states[0].float()
    else:
        pooled = torch.bmm(weights[:, None, :], states[rows].float()).squeeze(1)
    return pooled / weights.sum(1, keepdim=True).clamp_min(1)


def _per_example_nll(logits, labels) -> torch.Tensor:
    """`(batch, 2)`: summed next-token NLL over positions whose label is not -100, and their count.

    `logits` and `labels` are batched tensors or lists of per-example tensors (`(length, vocab)` and `(length,)`).
    """
    rows = []
    for example_logits, example_labels in zip(
        logits, labels, strict=True
    ):  # one example at a time bounds the float32 copy
        shifted = example_labels[1:]
        mask = shifted != -100
        losses = F.cross_entropy(example_logits[:-1].float(), shifted.clamp_min(0), reduction="none")
        rows.append(torch.stack([(losses * mask).sum(), mask.sum().float()]))
    return torch.stack(rows)


class SkillRewards:
    """Computes the configured MoS reward per skill and keeps what it needs across checkpoints.

    With `probe_resampling="fixed"` the probe sets are drawn once (without replacement); with `"per_update"` they
    are redrawn at every update, with replacement, from the update's own seed (`[seed, update index]`), so a resumed
    run draws the same sets. The Diff reward then needs θ0's perplexity of any row it may draw: it is computed once,
    at train start, for every row of the probe pool.

    Args:
        config ([`MoSConfig`]): the configuration (rewards, weights, EMA, probe sizes and resampling).
        skill_index ([`SkillIndex`]): skills of the rows probes are drawn from (the train or the probe dataset).
        seed (`int`): seed of the probe selection.
    """

    def __init__(self, config, skill_index: SkillIndex, seed: int):
        self.config = config
        self.weights = dict(zip(config.reward, config.reward_weights, strict=True))
        self.target = skill_index.names.index(config.target_skill) if config.target_skill is not None else None
        self.num_skills = skill_index.num_skills
        sizes = {"cossim": config.cossim_probe_size, "diff": config.diff_probe_size}
        self.probe_size = {name: sizes[name] for name in config.reward}
        self.pool = skill_index
        self.seed = seed
        self.per_update = getattr(config, "probe_resampling", "fixed") == "per_update"
        self.num_updates = 0  # rewards computed so far
        self.probe_rows = self._draw(0) if self.per_update else select_probe_rows(skill_index, self._size, seed)
        self.base_ppl: list[list[float]] | None = None  # θ0 perplexities of the fixed Diff probes, per skill
        self.base_ppl_by_row: list[float] | None = None  # per_update: θ0 perplexity of every row of the pool
        self.ema: np.ndarray | None = None
        self.last: dict[str, list[float]] = {}

    @property
    def _size(self) -> int:
        return max(self.probe_size.values())

    def _draw(self, update: int) -> list[list[int]]:
        """The probe sets of one update under `probe_resampling="per_update"`: `max(probe sizes)` rows per skill,
        drawn with replacement."""
        probes = []
        for skill in range(self.num_skills):
            rows = self.pool.rows_of(skill)
            draws = np.random.default_rng([self.seed, _PROBE_STREAM, skill, update]).integers(
                len(rows), size=self._size
            )
            probes.append([int(r) for r in rows[draws]])
        return probes

    def _rows(self, name: str) -> list[list[int]]:
        return [rows[: self.probe_size[name]] for rows in self.probe_rows]

    @staticmethod
    def _flatten(per_skill: list[list[int]]) -> tuple[list[int], list[int]]:
        rows = [row for skill_rows in per_skill for row in skill_rows]
        skills = [skill for skill, skill_rows in enumerate(per_skill) for _ in skill_rows]
        return rows, skills

    def compute_base(self, runner: ProbeRunner) -> None:
        """Records the perplexities of the Diff probes under the model as it is now (call at train start)."""
        if "diff" not in self.weights:
            return
        if self.per_update:
            rows = list(range(len(self.pool.skill_ids)))
            nll = runner.run(rows, hidden=False, nll=True, base_model=True)
            self.base_ppl_by_row = torch.exp(nll[:, 0] / nll[:, 1].clamp_min(1)).tolist()
            return
        rows, skills = self._flatten(self._rows("diff"))
        nll = runner.run(rows, hidden=False, nll=True, base_model=True, cache=True)
        ppl = torch.exp(nll[:, 0] / nll[:, 1].clamp_min(1)).tolist()
        self.base_ppl = [
            [p for p, s in zip(ppl, skills, strict=True) if s == skill] for skill in range(self.num_skills)
        ]

    def compute(self, runner: ProbeRunner) -> np.ndarray:
        """Returns the reward per skill (after the weighted combination and the EMA, if configured)."""
        use_cossim, use_diff = "cossim" in self.weights, "diff" in self.weights
        if self.per_update:
            self.probe_rows = self._draw(self.num_updates)
        self.num_updates += 1
        per_skill = self.probe_rows if use_cossim else self._rows("diff")
        rows, skills = self._flatten(per_skill)
        skills = np.asarray(skills)
        cache = not self.per_update  # fixed probes: their batches are collated once per run
        # rank of every row among its skill's probes: each reward reads the prefix of its own probe size
        ranks = np.concatenate([np.arange(len(skill_rows)) for skill_rows in per_skill])
        # Diff probes are prefixes of the CosSim probes: one forward pass serves both, and the rows that only CosSim
        # reads skip the LM head over their positions (`logits_to_keep=1`); their NLL columns stay NaN, unread
        if use_cossim and use_diff and self.probe_size["diff"] < self._size:
            with_nll, row_array = ranks < self.probe_size["diff"], np.asarray(rows)
            head = runner.run(row_array[with_nll].tolist(), hidden=True, nll=True, cache=cache)
            values = torch.full((len(rows), head.shape[1]), float("nan"), dtype=head.dtype)
            values[torch.as_tensor(with_nll)] = head
            if not with_nll.all():  # the same on every process: skills smaller than the Diff probes have no rest
                rest = row_array[~with_nll].tolist()
                values[torch.as_tensor(~with_nll), :-2] = runner.run(rest, hidden=True, nll=False, cache=cache)
        else:
            values = runner.run(rows, hidden=use_cossim, nll=use_diff, cache=cache)
        components: dict[str, np.ndarray] = {}
        if use_cossim:
            hidden = values[:, :-2] if use_diff else values
            pooled = torch.as_tensor(ranks < self.probe_size["cossim"])
            z = torch.stack([hidden[torch.as_tensor(skills == s) & pooled].mean(0) for s in range(self.num_skills)])
            cosine = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1).numpy()
            components["cossim"] = cosine[:, self.target] if self.target is not None else cosine.mean(axis=1)
        if use_diff:
            nll = values[:, -2:]
            ppl = torch.exp(nll[:, 0] / nll[:, 1].clamp_min(1)).numpy()
            diff = np.zeros(self.num_skills)
            for skill in range(self.num_skills):
                probes = (skills == skill) & (ranks < self.probe_size["diff"])
                if self.per_update:
                    base = np.asarray(self.base_ppl_by_row)[np.asarray(rows)[probes]]
                else:
                    base = np.asarray(self.base_ppl[skill])
                diff[skill] = float(np.mean(ppl[probes] / base))
            if self.target is not None:
                diff[self.target] *= 2.0
            components["diff"] = diff
        reward = sum(self.weights[name] * components[name] for name in components)
        self.last = {name: value.tolist() for name, value in components.items()}
        if self.config.use_ema and np.all(np.isfinite(reward)):
            previous = np.ones(self.num_skills) if self.ema is None else self.ema
            reward = self.config.ema_beta * reward + (1 - self.config.ema_beta) * previous
            self.ema = reward
        self.last["reward"] = np.asarray(reward).tolist()
        return np.asarray(reward, dtype=np.float64)

    def state_dict(self) -> dict:
        return {
            "probe_rows": self.probe_rows,
            "base_ppl": self.base_ppl,
            "base_ppl_by_row": self.base_ppl_by_row,
            "num_updates": self.num_updates,
            "ema": None if self.ema is None else self.ema.tolist(),
            "last": self.last,
        }

    def load_state_dict(self, state: dict) -> None:
        num_updates = state.get("num_updates", 0)
        expected = self._draw(max(num_updates - 1, 0)) if self.per_update else self.probe_rows
        if state["probe_rows"] != expected:
            raise ValueError(
                "The saved Mixture-of-Skills probe sets differ from this run's (different train or probe dataset, "
                "seed or probe settings); resume with the same data, seed and MoSConfig."
            )
        self.probe_rows = expected
        self.base_ppl = state["base_ppl"]
        self.base_ppl_by_row = state.get("base_ppl_by_row")
        self.num_updates = num_updates
        self.ema = None if state["ema"] is None else np.asarray(state["ema"], dtype=np.float64)
        self.last = state.get("last", {})


class TrainingLossRecorder:
    """Records the per-example training loss of every training forward pass (for ODM), through a forward hook.

    Reads TRL's fused output (`log_probs`, `label_mask`) when present, else the logits and the `labels` passed to
    the model. Forward passes in eval mode or without gradients (evaluation, probes) are ignored.
    """

    def __init__(self, model: torch.nn.Module):
        self.losses: list[torch.Tensor] = []
        self._handle = model.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return
        with torch.no_grad():
            log_probs = getattr(output, "log_probs", None)
            label_mask = getattr(output, "label_mask", None)
            if log_probs is not None and label_mask is not None:
                counts = label_mask.sum(1).float()
                losses = -log_probs.float().sum(1) / counts.clamp_min(1)
            else:
                logits, labels = getattr(output, "logits", None), kwargs.get("labels")
                if logits is None or labels is None:
                    raise RuntimeError(
                        "Online Data Mixing needs per-example training losses, but the model's forward got no "
                        "`labels` or returned no logits. Use a data collator that provides `labels`."
                    )
                nll = _per_example_nll(logits.detach(), labels)
                losses = nll[:, 0] / nll[:, 1].clamp_min(1)
        self.losses.append(losses.cpu())

    def pop(self) -> list[torch.Tensor]:
        """Returns the losses recorded since the last call, one tensor per forward pass."""
        losses, self.losses = self.losses, []
        return losses

    def remove(self) -> None:
        self._handle.remove()
