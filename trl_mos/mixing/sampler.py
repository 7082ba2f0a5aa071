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
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

from .data import SkillIndex


_CHUNK = 1 << 14  # uniforms are generated in chunks of this many positions
_BLOCK = 1 << 12  # iteration computes rows this many positions at a time
_UNIFORM_STREAM, _PERMUTATION_STREAM = 0, 1


def _normalized(probabilities: Sequence[float], num_skills: int) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (num_skills,):
        raise ValueError(f"Expected {num_skills} probabilities, got shape {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"Probabilities must be finite, non-negative and not all zero; got {p.tolist()}.")
    return p / p.sum()


@dataclass
class _LiveBlock:
    """Rows `[start, start + len(rows))` of the stream, being yielded by `iterator` (a list iterator over `rows`)."""

    start: int
    rows: list[int]
    iterator: Iterator[int]
    counts_at_start: np.ndarray  # draws per skill before `start`
    counts_at_end: np.ndarray  # draws per skill before the end of the block

    @property
    def drawn_until(self) -> int:
        return self.start + len(self.rows) - self.iterator.__length_hint__()


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
        self._position = 0  # drawn positions of finished blocks
        self._live_blocks: list[_LiveBlock] = []  # blocks being iterated over
        self._rows = [skill_index.rows_of(s) for s in range(skill_index.num_skills)]
        self._history_positions: list[int] = [0]
        self._history_probabilities: list[np.ndarray] = [_normalized(probabilities, skill_index.num_skills)]
        self._start: tuple[int, int] | None = None  # set by `start_at`
        self._uniform_cache: dict[int, np.ndarray] = {}
        self._permutation_cache: dict[tuple[int, int], np.ndarray] = {}
        self._counts_cache: dict[int, np.ndarray] = {}  # draws per skill before chunk boundaries

    # ------------------------------------------------------------------ history
    @property
    def position(self) -> int:
        """The first position not drawn yet (the furthest any iterator has gone)."""
        return max([self._position] + [block.drawn_until for block in self._live_blocks])

    @property
    def probabilities(self) -> np.ndarray:
        """The most recent distribution (in force from the last change on)."""
        return self._history_probabilities[-1].copy()

    @property
    def last_change(self) -> int:
        """The position from which the most recent distribution applies."""
        return self._history_positions[-1]

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
        self._changed(position)
        return position

    def _changed(self, position: int) -> None:
        """Forgets what was computed under the old history from `position` on, and redraws the undrawn rows of the
        blocks being iterated over from there."""
        self._counts_cache = {b: c for b, c in self._counts_cache.items() if b <= position}
        for block in self._live_blocks:
            end = block.start + len(block.rows)
            first = max(position, block.drawn_until)
            if first >= end:
                continue
            counts = block.counts_at_start + np.bincount(
                self.skills_at(block.start, first), minlength=self.skill_index.num_skills
            )
            block.rows[first - block.start :] = self._rows_from(self.skills_at(first, end), counts).tolist()
            block.counts_at_end[:] = counts

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
            rows = self._rows[skill]
            if len(rows) == 1:  # `rng.permutation(1)` is `[0]` whatever the seed
                permutation = rows
            else:
                rng = np.random.default_rng([self.seed, _PERMUTATION_STREAM, skill, round_])
                permutation = rows[rng.permutation(len(rows))]
            if len(self._permutation_cache) > 4 * len(self._rows):
                self._permutation_cache.clear()
            self._permutation_cache[key] = permutation
        return permutation

    # ------------------------------------------------------------------ the stream
    def skills_at(self, start: int, end: int) -> np.ndarray:
        """The skill drawn at every position in `[start, end)` under the current history (vectorised)."""
        uniforms = self._uniforms(start, end)
        skills = np.empty(end - start, dtype=np.int64)
        positions = self._history_positions
        first = max(bisect.bisect_right(positions, start) - 1, 0)
        for i in range(first, len(positions)):
            lo, hi = max(positions[i], start), end if i + 1 == len(positions) else min(positions[i + 1], end)
            if lo >= end:
                break
            if lo >= hi:
                continue
            p = self._history_probabilities[i]
            skills[lo - start : hi - start] = np.minimum(
                np.searchsorted(np.cumsum(p), uniforms[lo - start : hi - start], side="right"), len(p) - 1
            )
        return skills

    def skill_counts(self, start: int, end: int) -> np.ndarray:
        """Number of draws of every skill in positions `[start, end)`."""
        num_skills = self.skill_index.num_skills
        counts = np.zeros(num_skills, dtype=np.int64)
        for lo in range(start, end, _CHUNK):  # chunk by chunk, so that a long range needs little memory
            counts += np.bincount(self.skills_at(lo, min(lo + _CHUNK, end)), minlength=num_skills)
        return counts

    def _counts_before(self, position: int) -> np.ndarray:
        """Draws of every skill in `[0, position)`, from counts cached at chunk boundaries."""
        boundary = position // _CHUNK * _CHUNK
        known = max((b for b in self._counts_cache if b <= boundary), default=0)
        counts = self._counts_cache.get(known, np.zeros(self.skill_index.num_skills, dtype=np.int64)).copy()
        for lo in range(known, boundary, _CHUNK):
            counts += self.skill_counts(lo, lo + _CHUNK)
            self._counts_cache[lo + _CHUNK] = counts.copy()
        return counts + self.skill_counts(boundary, position)

    def rows_at(self, start: int, end: int) -> np.ndarray:
        """The dataset rows drawn at positions `[start, end)`, exactly as iteration yields them (vectorised)."""
        rows = np.empty(end - start, dtype=np.int64)
        counts = self._counts_before(start)
        for lo in range(start, end, _CHUNK):
            hi = min(lo + _CHUNK, end)
            rows[lo - start : hi - start] = self._rows_from(self.skills_at(lo, hi), counts)
        return rows

    def _rows_from(self, skills: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The rows for consecutive draws of `skills`, given the draws per skill before them (updated in place)."""
        rows = np.empty(len(skills), dtype=np.int64)
        if len(counts) > 32:  # positions grouped by skill, in stream order within a skill
            order = np.argsort(skills, kind="stable")
            bounds = np.searchsorted(skills[order], np.arange(len(counts) + 1))
            positions_of = [order[bounds[skill] : bounds[skill + 1]] for skill in range(len(counts))]
        else:  # a few boolean masks are faster than sorting
            positions_of = [np.flatnonzero(skills == skill) for skill in range(len(counts))]
        for skill, where in enumerate(positions_of):
            if len(where) == 0:
                continue
            size = len(self._rows[skill])
            # the k-th draw of a skill over the whole stream takes row k % size of permutation k // size
            first_round, first_offset = divmod(int(counts[skill]), size)
            taken = 0
            round_ = first_round
            while taken < len(where):
                offset = first_offset if round_ == first_round else 0
                take = min(size - offset, len(where) - taken)
                rows[where[taken : taken + take]] = self._permutation(skill, round_)[offset : offset + take]
                taken += take
                round_ += 1
            counts[skill] += len(where)
        return rows

    def _iterate(self, start: int, end: int, placeholders: int = 0) -> Iterator[int]:
        # `placeholders` indices that a batch-skipping wrapper discards unread (not part of the stream), then the
        # stream's rows block by block, each block handed out by a list iterator: no Python code runs per index
        return itertools.chain(
            itertools.repeat(0, placeholders), itertools.chain.from_iterable(self._blocks(start, end))
        )

    def _blocks(self, start: int, end: int) -> Iterator[Iterator[int]]:
        position = start
        counts = self._counts_before(start)
        while position < end:
            # A change of the history made while a block is being handed out rewrites its undrawn rows in place (see
            # `_changed`); the next block is computed when the previous one is exhausted, under the history then.
            block_end = min(end, (position // _BLOCK + 1) * _BLOCK)
            counts_at_end = counts.copy()
            rows = self._rows_from(self.skills_at(position, block_end), counts_at_end).tolist()
            block = _LiveBlock(position, rows, iter(rows), counts, counts_at_end)
            self._live_blocks.append(block)
            try:
                yield block.iterator
            finally:
                self._live_blocks.remove(block)
                self._position = max(self._position, block.drawn_until)
            position, counts = block_end, block.counts_at_end

    # ------------------------------------------------------------------ Sampler API
    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch the next iteration covers: positions `[epoch * len, (epoch + 1) * len)`.

        Ignored once [`start_at`] was called: then the consumer, which knows what was consumed, drives the position.
        """
        if self._start is None:
            self.epoch = int(epoch)

    def start_at(self, position: int, placeholders: int = 0) -> None:
        """Makes the next iteration yield `placeholders` placeholder indices, then the stream from `position` on;
        `len(self)` indices in all.

        Used by the [`MixtureOfSkillsCallback`], which sets the start of every epoch from what the run has consumed
        (so no `set_epoch` plumbing through batch-sampler wrappers is needed). The placeholders stand for the batches
        that the Trainer skips unread when it resumes mid-epoch (`skip_first_batches`).

        Args:
            position (`int`): the first position of the stream to draw.
            placeholders (`int`, *optional*, defaults to `0`): indices to yield first; at most `len(self)`.
        """
        if position < 0 or not 0 <= placeholders <= self.epoch_length:
            raise ValueError(
                f"Cannot start at position {position} with {placeholders} placeholders (epoch length "
                f"{self.epoch_length})."
            )
        self._start = (int(position), int(placeholders))

    def __len__(self) -> int:
        return self.epoch_length

    def __iter__(self) -> Iterator[int]:
        if self._start is None:
            start = self.epoch * self.epoch_length
            return self._iterate(start, start + self.epoch_length)
        position, placeholders = self._start
        return self._iterate(position, position + self.epoch_length - placeholders, placeholders)

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
        self._changed(0)
