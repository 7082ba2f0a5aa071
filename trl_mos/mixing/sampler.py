# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""A weighted multi-skill sampler whose probabilities can change between any two draws, replayable exactly.

Every draw has a global *position* (0, 1, 2, ... across epochs). The draw at position `d`:

1. takes the uniform number `u_d` from a counter-based stream of the seed (independent of the probabilities);
2. picks the skill `s` whose cumulative probability interval contains `u_d`, under the probabilities in force at `d`;
3. takes the next row of skill `s` from a seeded permutation of that skill's rows; when the skill is exhausted, a new
   permutation (seeded by the skill and the round) starts — without replacement within a round.

The probabilities in force at `d` come from the *history*, a list of `(position, probabilities)` changes. So the index
stream is a pure function of the seed and the history: every rank computes the same stream, and a resumed run that
restores the history replays the interrupted run's stream exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from .data import SkillIndex


_CHUNK = 1 << 14  # uniforms are generated in chunks of this many positions
_UNIFORM_STREAM, _PERMUTATION_STREAM = 0, 1


def _normalized(probabilities: Sequence[float], num_skills: int) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (num_skills,):
        raise ValueError(f"Expected {num_skills} probabilities, got shape {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"Probabilities must be finite, non-negative and not all zero; got {p.tolist()}.")
    return p / p.sum()


class SkillSampler(Sampler[int]):
    """Samples dataset rows skill by skill with probabilities that may change at any position.

    Args:
        skill_index ([`SkillIndex`]): the skill of every row.
        probabilities (`Sequence[float]`): the initial distribution over skills.
        seed (`int`): seed of the whole stream.
        epoch_length (`int`): draws per epoch (what `len(sampler)` reports).

    Example:

    ```python
    >>> import numpy as np
    >>> from trl_mos.mixing import SkillIndex, SkillSampler
    >>> index = SkillIndex(names=["a", "b"], skill_ids=np.array([0, 0, 0, 1]))
    >>> sampler = SkillSampler(index, [0.5, 0.5], seed=0, epoch_length=8)
    >>> rows = list(sampler)
    >>> sampler.set_probabilities([1.0, 0.0])  # from the next draw on
    8
    ```
    """

    def __init__(self, skill_index: SkillIndex, probabilities: Sequence[float], seed: int, epoch_length: int):
        if epoch_length < 1:
            raise ValueError(f"`epoch_length` must be positive, got {epoch_length}.")
        self.skill_index = skill_index
        self.seed = int(seed)
        self.epoch_length = int(epoch_length)
        self.epoch = 0
        self.position = 0  # first position not drawn yet (the furthest any iterator has gone)
        self._rows = [skill_index.rows_of(s) for s in range(skill_index.num_skills)]
        self._history_positions: list[int] = [0]
        self._history_probabilities: list[np.ndarray] = [_normalized(probabilities, skill_index.num_skills)]
        self._uniform_cache: dict[int, np.ndarray] = {}
        self._permutation_cache: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------------ history
    @property
    def probabilities(self) -> np.ndarray:
        """The most recent distribution (in force from the last change on)."""
        return self._history_probabilities[-1].copy()

    @property
    def history(self) -> list[tuple[int, list[float]]]:
        """All changes as `(position, probabilities)`, the initial distribution first."""
        return [(pos, p.tolist()) for pos, p in zip(self._history_positions, self._history_probabilities, strict=True)]

    def set_probabilities(self, probabilities: Sequence[float], position: int | None = None) -> int:
        """Changes the distribution from `position` on (default: the next draw).

        Args:
            probabilities (`Sequence[float]`): the new distribution (normalised here).
            position (`int`, *optional*): first position it applies to. It may not lie before a position that was
                already drawn, nor before the previous change. In multi-process training every rank passes the same
                value, e.g. the maximum of all ranks' `position`.

        Returns:
            `int`: the position the new distribution applies from.
        """
        p = _normalized(probabilities, self.skill_index.num_skills)
        position = self.position if position is None else int(position)
        if position < self.position:
            raise ValueError(
                f"Cannot change probabilities from position {position}: positions up to {self.position - 1} were "
                "already drawn."
            )
        if position < self._history_positions[-1]:
            raise ValueError(
                f"Changes must come in order: position {position} is before the last change "
                f"({self._history_positions[-1]})."
            )
        if position == self._history_positions[-1]:  # nothing drawn under the previous change: replace it
            self._history_probabilities[-1] = p
        else:
            self._history_positions.append(position)
            self._history_probabilities.append(p)
        return position

    def _probabilities_at(self, position: int) -> np.ndarray:
        return self._history_probabilities[bisect.bisect_right(self._history_positions, position) - 1]

    # ------------------------------------------------------------------ randomness
    def _uniform_chunk(self, chunk: int) -> np.ndarray:
        values = self._uniform_cache.get(chunk)
        if values is None:
            rng = np.random.default_rng([self.seed, _UNIFORM_STREAM, chunk])
            values = rng.random(_CHUNK)
            if len(self._uniform_cache) > 8:
                self._uniform_cache.clear()
            self._uniform_cache[chunk] = values
        return values

    def _uniforms(self, start: int, end: int) -> np.ndarray:
        parts = []
        position = start
        while position < end:
            chunk, offset = divmod(position, _CHUNK)
            take = min(_CHUNK - offset, end - position)
            parts.append(self._uniform_chunk(chunk)[offset : offset + take])
            position += take
        return np.concatenate(parts) if parts else np.empty(0)

    def _permutation(self, skill: int, round_: int) -> np.ndarray:
        key = (skill, round_)
        permutation = self._permutation_cache.get(key)
        if permutation is None:
            rng = np.random.default_rng([self.seed, _PERMUTATION_STREAM, skill, round_])
            permutation = self._rows[skill][rng.permutation(len(self._rows[skill]))]
            self._permutation_cache = {k: v for k, v in self._permutation_cache.items() if k[0] != skill}
            self._permutation_cache[key] = permutation
        return permutation

    # ------------------------------------------------------------------ the stream
    def skills_at(self, start: int, end: int) -> np.ndarray:
        """The skill drawn at every position in `[start, end)` under the current history (vectorised)."""
        uniforms = self._uniforms(start, end)
        skills = np.empty(end - start, dtype=np.int64)
        bounds = self._history_positions[1:] + [max(end, self._history_positions[-1]) + 1]
        for i, (first, p) in enumerate(zip(self._history_positions, self._history_probabilities, strict=True)):
            lo, hi = max(first, start), min(bounds[i], end)
            if lo >= hi:
                continue
            cdf = np.cumsum(p)
            skills[lo - start : hi - start] = np.minimum(
                np.searchsorted(cdf, uniforms[lo - start : hi - start], side="right"), len(p) - 1
            )
        return skills

    def skill_counts(self, start: int, end: int) -> np.ndarray:
        """Number of draws of every skill in positions `[start, end)`."""
        return np.bincount(self.skills_at(start, end), minlength=self.skill_index.num_skills)

    def rows_at(self, start: int, end: int) -> np.ndarray:
        """The dataset rows drawn at positions `[start, end)`, exactly as iteration yields them."""
        return np.fromiter(self._iterate(start, end), dtype=np.int64, count=end - start)

    def _iterate(self, start: int, end: int) -> Iterator[int]:
        counts = self.skill_counts(0, start) if start > 0 else np.zeros(self.skill_index.num_skills, dtype=np.int64)
        sizes = [len(rows) for rows in self._rows]
        position = start
        while position < end:
            # draw chunk by chunk, re-reading the history before every chunk and every draw: a change made while
            # iterating applies from the next undrawn position
            chunk_end = min(end, (position // _CHUNK + 1) * _CHUNK)
            uniforms = self._uniforms(position, chunk_end)
            for u in uniforms:
                p = self._probabilities_at(position)
                skill = min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)
                round_, offset = divmod(int(counts[skill]), sizes[skill])
                counts[skill] += 1
                self.position = max(self.position, position + 1)
                position += 1
                yield int(self._permutation(skill, round_)[offset])

    # ------------------------------------------------------------------ Sampler API
    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch the next iteration covers: positions `[epoch * len, (epoch + 1) * len)`."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_length

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.epoch_length
        return self._iterate(start, start + self.epoch_length)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """JSON-serialisable state: the seed, the epoch length, the skill sizes and the history."""
        return {
            "seed": self.seed,
            "epoch_length": self.epoch_length,
            "skill_sizes": [len(rows) for rows in self._rows],
            "history": self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores the history saved by [`state_dict`] (the seed and the skill sizes must match)."""
        sizes = [len(rows) for rows in self._rows]
        if state["skill_sizes"] != sizes or state["seed"] != self.seed:
            raise ValueError(
                "The saved Mixture-of-Skills sampler state does not match this run: saved skill sizes "
                f"{state['skill_sizes']} and seed {state['seed']}, now {sizes} and {self.seed}. Resume with the same "
                "train dataset and seed."
            )
        self._history_positions = [int(pos) for pos, _ in state["history"]]
        self._history_probabilities = [np.asarray(p, dtype=np.float64) for _, p in state["history"]]
