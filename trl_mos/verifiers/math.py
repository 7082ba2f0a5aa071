# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
r"""Math answer verification on `math-verify`, with per-item timeouts that work anywhere.

`math_verify.parse` and `math_verify.verify` time out with `SIGALRM`, which only works on the main thread of the main
interpreter (TRL's `accuracy_reward` simply switches timeouts off elsewhere). Here every item is parsed and verified in
a pool of worker processes with math-verify's own timeouts off; the parent waits at most `timeout` seconds per item
and kills the worker that overruns (a warm spare takes its place at once). So a pathological answer such as
`\boxed{9^{9^{9^9}}}` costs its own timeout and nothing more, from any thread and inside worker processes.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from transformers.utils import logging

from . import _sandbox_runtime as runtime
from .base import Outcome, build_verifier, completion_to_text, error_reason, log_once
from .extraction import make_extractor


logger = logging.get_logger(__name__)

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WORKER_BOOT = (
    "import sys; del sys.path[0]; from trl_mos.verifiers._math_worker import main; "
    "main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))"
)


class _Worker:
    """One math worker process."""

    def __init__(self, memory_limit_mb: int):
        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, str(to_worker_r), str(from_worker_w), str(memory_limit_mb)],
                pass_fds=(to_worker_r, from_worker_w),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        self.ready = False

    def wait_ready(self) -> None:
        if not self.ready:
            answer = runtime.read_message(self.from_worker, deadline=time.monotonic() + 300)
            if not (isinstance(answer, dict) and answer.get("ready")):
                raise RuntimeError("A math worker process failed to start (is `math-verify` installed?).")
            self.ready = True

    def send(self, request: dict) -> None:
        runtime.write_message(self.to_worker, request)

    def receive(self, deadline: float) -> Any:
        answer = runtime.read_message(self.from_worker, deadline=deadline)
        if answer is None:
            raise EOFError("the math worker died")
        return answer

    def kill(self) -> None:
        for fd in (self.to_worker, self.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


class MathWorkerPool:
    """Worker processes that run math-verify, with a per-item timeout enforced by killing the worker that overruns.

    Pools are shared: [`MathWorkerPool.get`] returns one per worker count. Workers start on first use (importing
    math-verify takes about a second) and stop at exit.

    Args:
        num_workers (`int`): worker processes.
        memory_limit_mb (`int`, *optional*, defaults to `4096`): address-space limit of each worker, in MiB.
    """

    _pools: dict[tuple[int, int], MathWorkerPool] = {}
    _pools_lock = threading.Lock()

    def __init__(self, num_workers: int, memory_limit_mb: int = 4096):
        if num_workers < 1:
            raise ValueError(f"`num_workers` must be at least 1, got {num_workers}.")
        self.num_workers = num_workers
        self.memory_limit_mb = memory_limit_mb
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._spare: _Worker | None = None
        self._lock = threading.Lock()
        self._started = False
        self._pid = os.getpid()
        self._workers: set[_Worker] = set()

    @classmethod
    def get(cls, num_workers: int | None = None, memory_limit_mb: int = 4096) -> MathWorkerPool:
        """The shared pool with this many workers (`None`: the CPU cores available, at most 8)."""
        if num_workers is None:
            try:
                num_workers = min(8, max(1, len(os.sched_getaffinity(0))))
            except AttributeError:
                num_workers = min(8, os.cpu_count() or 1)
        key = (num_workers, memory_limit_mb)
        with cls._pools_lock:
            pool = cls._pools.get(key)
            if pool is None or pool._pid != os.getpid():
                pool = cls._pools[key] = MathWorkerPool(num_workers, memory_limit_mb)
            return pool

    def _spawn(self) -> _Worker:
        worker = _Worker(self.memory_limit_mb)
        self._workers.add(worker)
        return worker

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                for _ in range(self.num_workers):
                    self._idle.put(self._spawn())
                self._spare = self._spawn()
                self._started = True

    def _replacement(self) -> _Worker:
        """A fresh worker for one that was killed: the warm spare, replaced in turn by a new spare."""
        with self._lock:
            worker, self._spare = self._spare, self._spawn()
        return worker if worker is not None else self._spawn()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)

    def _run_chunk(
        self,
        request: dict,
        items: list,
        timeout: float,
        failure: Callable[[str], tuple] = lambda reason: (None, error_reason(reason), None),
    ) -> list[tuple]:
        """Sends `items` to one worker; an item that takes longer than `timeout` (or kills its worker) gets
        `failure(reason)` and the rest go to a replacement worker."""
        results: list[tuple | None] = [None] * len(items)
        start = 0
        worker = self._idle.get()
        try:
            while start < len(items):
                worker.wait_ready()
                worker.send({**request, "items": items[start:]})
                received = start
                try:
                    while received < len(items):
                        index, *outcome = worker.receive(time.monotonic() + timeout)
                        results[start + index] = tuple(outcome)
                        received = start + index + 1
                    start = received
                except (TimeoutError, EOFError, OSError) as exc:
                    reason = (
                        f"timed out after {timeout:g} s" if isinstance(exc, TimeoutError) else "the math worker died"
                    )
                    results[received] = failure(reason)
                    self._discard(worker)
                    worker = self._replacement()
                    start = received + 1
        finally:
            self._idle.put(worker)
        return results  # type: ignore[return-value]

    def verify(
        self,
        items: Sequence[tuple[str | None, str | None, Any]],
        extraction: Any,
        timeout: float,
        options: dict | None = None,
    ) -> list[tuple[float | None, str, str | None]]:
        """Scores `(text, answer, gold)` items: the answer is extracted from `text` with `extraction` unless given.

        Args:
            items (`list[tuple]`): `(text, answer, gold)`.
            extraction (`str` or picklable callable): see [`make_math_verifier`].
            timeout (`float`): seconds per item.
            options (`dict`, *optional*): math-verify options (`boxed`, `normalization`, `float_rounding`,
                `numeric_precision`, `strict`, `allow_set_relation_comp`), see [`make_math_verifier`].

        Returns:
            `list[tuple]`: `(score, reason, extracted answer)` per item.
        """
        self._start()
        items = list(items)
        if not items:
            return []
        request = {"op": "verify", "extraction": extraction, "options": options or {}}
        chunk = max(1, min(256, -(-len(items) // (4 * self.num_workers))))
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        if len(chunks) == 1:
            return self._run_chunk(request, chunks[0], timeout)
        with ThreadPoolExecutor(max_workers=min(self.num_workers, len(chunks))) as executor:
            parts = list(executor.map(lambda part: self._run_chunk(request, part, timeout), chunks))
        return [result for part in parts for result in part]

    def group(self, answers: Sequence[str | None], timeout: float, options: dict | None = None) -> list[int] | None:
        """Groups answers by math-verify equivalence (see [`group_math_answers`]); `None` if it timed out."""
        self._start()
        worker = self._idle.get()
        try:
            worker.wait_ready()
            worker.send({"op": "group", "answers": list(answers), "options": options or {}})
            answer = worker.receive(time.monotonic() + timeout)
            return answer if isinstance(answer, list) else None
        except (TimeoutError, EOFError, OSError):
            self._discard(worker)
            worker = self._replacement()
            return None
        finally:
            self._idle.put(worker)

    def extract(self, texts: Sequence[str], timeout: float, options: dict | None = None) -> list[str | None]:
        """The `"auto"` answers of `texts` (see [`extract_math_answers`]); `None` for one that timed out."""
        self._start()
        request = {"op": "extract", "options": options or {}}
        results = self._run_chunk(request, list(texts), timeout, failure=lambda reason: (None,))
        return [answer for (answer,) in results]

    def close(self) -> None:
        """Stops the worker processes."""
        with self._lock:
            workers, self._workers = list(self._workers), set()
            self._spare, self._started = None, False
            self._idle = queue.SimpleQueue()
        if self._pid == os.getpid():
            for worker in workers:
                worker.kill()


@atexit.register
def _close_pools() -> None:
    for pool in list(MathWorkerPool._pools.values()):
        pool.close()


def group_math_answers(answers: Sequence[str | None], timeout: float = 5.0) -> list[int]:
    r"""Groups final answers by mathematical equivalence (math-verify), e.g. `"1/2"`, `"\frac{1}{2}"` and `"0.5"`.

    An answer joins the first earlier group whose first member equals it according to `math_verify.verify` (that member
    taken as the gold answer); `None` or empty answers get group `-1`. If grouping takes longer than `timeout` seconds
    per answer, answers are grouped by exact text instead (and a warning is logged once).

    Args:
        answers (`list[str | None]`): extracted answers.
        timeout (`float`, *optional*, defaults to `5.0`): seconds allowed per answer.

    Returns:
        `list[int]`: the group of each answer, groups numbered in order of first appearance.

    Example:

    ```python
    >>> group_math_answers(["1/2", "0.5", "3", r"\frac{1}{2}", None])
    [0, 0, 1, 0, -1]
    ```
    """
    answers = list(answers)
    if not answers:
        return []
    groups = MathWorkerPool.get().group(answers, timeout * len(answers))
    if groups is None:
        log_once("group_math_answers", "Grouping answers with math-verify timed out; grouping by exact text instead.")
        seen: dict[str, int] = {}
        groups = []
        for answer in answers:
            text = None if answer is None else str(answer).strip()
            groups.append(-1 if not text else seen.setdefault(text, len(seen)))
    return groups


_NORMALIZATION_FIELDS = ("basic_latex", "units", "malformed_operators", "nits", "boxed", "equations")


def _math_options(
    boxed: str,
    normalization: Mapping[str, Any] | None,
    float_rounding: int,
    numeric_precision: int,
    strict: bool,
    allow_set_relation_comp: bool,
) -> dict:
    """Validates the math-verify options of [`make_math_verifier`] (in this process, before any work)."""
    if boxed not in ("last", "all"):
        raise ValueError(f"`boxed` must be 'last' or 'all', got {boxed!r}.")
    normalization = dict(normalization or {})
    unknown = sorted(set(normalization) - set(_NORMALIZATION_FIELDS))
    if unknown:
        raise ValueError(
            f"Unknown `normalization` fields {unknown}; the fields of latex2sympy2_extended's NormalizationConfig are "
            f"{list(_NORMALIZATION_FIELDS)}."
        )
    if normalization.get("boxed", "all") not in ("all", "last", "none"):
        raise ValueError(f"`normalization['boxed']` must be 'all', 'last' or 'none', got {normalization['boxed']!r}.")
    for key, value in normalization.items():
        if key != "boxed" and not isinstance(value, bool):
            raise ValueError(f"`normalization[{key!r}]` must be True or False, got {value!r}.")
    for key, value in (("float_rounding", float_rounding), ("numeric_precision", numeric_precision)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive integer, got {value!r}.")
    return {
        "boxed": boxed,
        "normalization": normalization,
        "float_rounding": float_rounding,
        "numeric_precision": numeric_precision,
        "strict": bool(strict),
        "allow_set_relation_comp": bool(allow_set_relation_comp),
    }


def extract_math_answers(
    texts: Sequence[Any], boxed: Literal["all", "last"] = "all", timeout: float = 5.0
) -> list[str | None]:
    r"""The final answers of completions as [`math_verifier`]'s `"auto"` extraction reads them (the `\boxed{}`
    answer, else math-verify's own LaTeX / expression extraction, a plain number only when it stands as a whole
    answer), e.g. for majority voting with `group_math_answers`.

    Args:
        texts (`list`): completions (strings or conversational completions).
        boxed (`str`, *optional*, defaults to `"all"`): several `\boxed{}` answers: read together (`"all"`,
            math-verify's behaviour) or the last one (`"last"`).
        timeout (`float`, *optional*, defaults to `5.0`): seconds per completion; one that takes longer gets `None`.

    Returns:
        `list[str | None]`: the answer of each completion as written (the boxed content, or the LaTeX / expression
        math-verify extracted), `None` when none was found.

    Example:

    ```python
    >>> extract_math_answers([r"so $x = \frac13$", r"It is \boxed{4}.", r"I think 2^{10}"])
    ['x = \\frac{1}{3}', '4', None]
    ```
    """
    if not timeout > 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    options = _math_options(boxed, None, 6, 15, True, False)
    texts = [completion_to_text(text) for text in texts]
    return MathWorkerPool.get().extract(texts, timeout, options) if texts else []


def make_math_verifier(
    extraction: str | Callable[[str], str | None] = "auto",
    timeout: float = 5.0,
    column: str = "solution",
    num_workers: int | None = None,
    name: str = "math_verifier",
    boxed: Literal["all", "last"] = "all",
    normalization: Mapping[str, Any] | None = None,
    float_rounding: int = 6,
    numeric_precision: int = 15,
    strict: bool = True,
    allow_set_relation_comp: bool = False,
) -> Callable[..., list[float | None]]:
    r"""Builds a math verifier: extracts the final answer of each completion and checks it against the gold answer in
    `column` with `math_verify.verify(gold, answer)` (gold first, as math-verify requires).

    Scores: `1.0` correct; `0.0` wrong, no answer found or unparseable answer; `None` when the gold answer is missing
    or cannot be parsed (not applicable, as in TRL's `accuracy_reward`), and `None` with a `"verifier error: ..."`
    reason (see [`~trl_mos.verifiers.base.is_verifier_error`]) when the verifier could not judge the sample: it timed
    out (`"verifier error: timed out after 5 s"`), its worker died (`"verifier error: the math worker died"`) or
    math-verify raised (`"verifier error: RecursionError: ..."`). [`VerifierSuite`] turns those into
    `Verdict.status == "error"`. Reasons go to the `"{name}_reason"` column through `log_extra`.

    LaTeX is read with math-verify's normalisation defaults (`basic_latex`, `units`, `malformed_operators`, `nits`:
    `\frac12`, `\dfrac12`, `\sqrt2` and `5\,\text{cm}` are read as meant); `normalization` overrides single fields.

    Args:
        extraction (`str` or `callable`, *optional*, defaults to `"auto"`):
            How to find the answer:

            - `"auto"`: the `\boxed{}` answer (see `boxed`); else math-verify's own LaTeX extraction (the last
              `$...$` / `\[...\]`, "final answer is ..."); else math-verify's plain-expression extraction (`1 000`,
              `1,000.99`, `3/4`). A plain number is only taken when the completion's last number stands as a whole
              answer: never a denominator, exponent or radicand (`\frac{1}{2}` is not `2`, `2^{10}` is not `10`).
            - `"boxed"`: the last `\boxed{}` only; `"last_number"`: the last number, when it stands as a whole answer
              ([`~trl_mos.verifiers.extract_last_number`]);
            - a regular expression with one group (its last match), or a callable `text -> answer | None` (a callable
              runs in your process, outside the timeout).
        timeout (`float`, *optional*, defaults to `5.0`):
            Seconds allowed per completion (extraction, parsing and verification).
        column (`str`, *optional*, defaults to `"solution"`):
            Dataset column with the gold answer (LaTeX or plain, e.g. `"\\frac{1}{3}"` or `"8"`).
        num_workers (`int`, *optional*):
            Worker processes (shared by all math verifiers with the same count). `None`: the CPU cores, at most 8.
        name (`str`, *optional*, defaults to `"math_verifier"`):
            Name of the returned function.
        boxed (`str`, *optional*, defaults to `"last"`):
            Several `\boxed{}` answers (`"auto"` extraction): `"last"` takes the last one; `"all"` is math-verify's
            behaviour, which reads them all together (`\boxed{3}, \boxed{5}` is the set `{3, 5}`).
        normalization (`dict`, *optional*):
            Overrides of math-verify's LaTeX normalisation (the fields of `latex2sympy2_extended.NormalizationConfig`:
            `basic_latex`, `units`, `malformed_operators`, `nits`, `boxed`, `equations`), e.g. `{"units": False}`.
        float_rounding (`int`, *optional*, defaults to `6`):
            Decimal places numbers are rounded to before comparing (math-verify's `float_rounding`).
        numeric_precision (`int`, *optional*, defaults to `15`):
            Significant digits of numeric evaluation (math-verify's `numeric_precision`).
        strict (`bool`, *optional*, defaults to `True`):
            math-verify's `strict`: variables must match (`f(x)` is not `f(y)`) and sets are not intervals.
        allow_set_relation_comp (`bool`, *optional*, defaults to `False`):
            math-verify's `allow_set_relation_comp`: a gold set or interval also accepts the relation that defines it
            (`x \in [-2, 7]` accepts `-2 \le x \le 7`).

    Returns:
        `callable`: `f(prompts, completions, <column>, **kwargs) -> list[float | None]`.

    Example:

    ```python
    >>> verifier = make_math_verifier(extraction=r"answer is (-?\d+)")
    >>> verifier(prompts=["..."] * 2, completions=["The answer is 12.", "The answer is 13."], solution=["12", "12"])
    [1.0, 0.0]
    ```
    """
    if not timeout > 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    options = _math_options(boxed, normalization, float_rounding, numeric_precision, strict, allow_set_relation_comp)
    extractor = make_extractor(extraction)  # validates now rather than in a worker
    in_worker = extraction if isinstance(extraction, str) else None

    def score_batch(texts: list[str], columns: dict[str, list], prompts: list | None) -> list[Outcome]:
        golds = columns[column]
        if in_worker is not None:
            items = [(text, None, gold) for text, gold in zip(texts, golds, strict=True)]
        else:
            items = []
            for text, gold in zip(texts, golds, strict=True):
                try:
                    items.append((None, extractor(text), gold))
                except Exception as exc:
                    log_once((name, "extraction"), f"{name}: the extraction callable raised {exc!r}.")
                    items.append((None, None, gold))
        results = MathWorkerPool.get(num_workers).verify(items, in_worker or "auto", timeout, options)
        return [(score, reason) for score, reason, _ in results]

    return build_verifier(name, [column], score_batch, doc=make_math_verifier.__doc__)


math_verifier = make_math_verifier()
math_verifier.__doc__ = r"""Math verifier with the default settings of [`make_math_verifier`]: reads the gold answer from the `solution`
column, takes the last `\boxed{}` of each completion (else math-verify's own LaTeX / expression extraction) and checks it
with math-verify (its normalisation and comparison defaults), with a 5 s timeout per completion.

Args:
    prompts (`list`): the prompts (unused).
    completions (`list[str]` or `list[list[dict]]`): the completions.
    solution (`list[str]`): the gold answers.
    **kwargs: other columns and trainer arguments (ignored).

Returns:
    `list[float | None]`: 1.0 correct, 0.0 wrong, None not applicable.

Example:

```python
>>> math_verifier(prompts=["1+1?"], completions=[r"The answer is \boxed{2}."], solution=["2"])
[1.0]
```
"""
