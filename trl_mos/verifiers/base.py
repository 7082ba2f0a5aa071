# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""What all verifiers share: completion text, the columns a verifier needs, and [`VerifierSuite`], which turns scores
into accept/reject decisions.

A verifier is any TRL reward function, `f(prompts, completions, **columns) -> list[float | None]`, where `None` means
"not applicable to this sample". The dataset columns a verifier needs are the named parameters of its signature that
have no default (see [`required_columns`]).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers.utils import logging


logger = logging.get_logger(__name__)

# keyword arguments that trainers (TRL's GRPOTrainer) pass to reward functions besides dataset columns
TRAINER_ARGUMENTS = frozenset(
    {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
)

_logged: set[Any] = set()
_logged_lock = threading.Lock()


def log_once(key: Any, message: str) -> None:
    """Logs a warning the first time `key` is seen in this process."""
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.warning(message)


def _is_main_process() -> bool:
    return all(os.environ.get(name, "0") in ("0", "") for name in ("RANK", "LOCAL_RANK"))


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True) -> Iterator[Any]:
    """A tqdm progress bar shown on the main process only (and only when Transformers' progress bars are enabled)."""
    tqdm = logging.tqdm
    bar = tqdm(total=total, desc=desc, leave=False, disable=not (enabled and _is_main_process()))
    try:
        yield bar
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------------------------------
# Completion text
# ----------------------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (bytes, bytearray)):
        return bytes(content).decode("utf-8", errors="replace")
    if isinstance(content, (list, tuple)):  # multimodal content: [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def completion_to_text(completion: Any) -> str:
    """Turns a completion into the text verifiers read.

    - a string is used as is; bytes are decoded as UTF-8 (invalid bytes replaced);
    - a conversational completion (a list of messages) gives the content of its last assistant message (of its last
      message when no message has a role); multimodal content keeps its text parts;
    - `None` gives `""`.
    Lone surrogates (e.g. from `surrogateescape` decoding of non-UTF-8 bytes) are replaced, so the result always
    encodes to UTF-8.

    Args:
        completion (`str`, `bytes`, `list[dict]`, `dict` or `None`): the completion.

    Returns:
        `str`: its text.

    Example:

    ```python
    >>> completion_to_text([{"role": "assistant", "content": "The answer is 4."}])
    'The answer is 4.'
    ```
    """
    if completion is None:
        text = ""
    elif isinstance(completion, str):
        text = completion
    elif isinstance(completion, Mapping):
        text = _content_text(completion.get("content"))
    elif isinstance(completion, (bytes, bytearray)):
        text = _content_text(completion)
    elif isinstance(completion, (list, tuple)):
        messages = [message for message in completion if isinstance(message, Mapping)]
        if not messages:
            text = _content_text(list(completion))
        else:
            assistant = [message for message in messages if message.get("role") == "assistant"]
            text = _content_text((assistant or messages)[-1].get("content"))
    else:
        raise TypeError(f"A completion must be a string or a list of messages, got {type(completion).__name__}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


# ----------------------------------------------------------------------------------------------------------------------
# Required columns
# ----------------------------------------------------------------------------------------------------------------------


def verifier_name(verifier: Callable) -> str:
    """The name a verifier is reported under: its `__name__`, the wrapped function's for `functools.partial`, or the
    class name of a callable object.

    Args:
        verifier (`callable`): the verifier.

    Returns:
        `str`: the name.

    Example:

    ```python
    >>> import functools
    >>> def my_reward(completions, solution, **kwargs): ...
    >>> verifier_name(functools.partial(my_reward, solution=["1"]))
    'my_reward'
    ```
    """
    while isinstance(verifier, functools.partial):
        verifier = verifier.func
    name = getattr(verifier, "__name__", None)
    return name if isinstance(name, str) else type(verifier).__name__


def required_columns(verifier: Callable) -> set[str]:
    """The dataset columns a verifier needs: the named parameters of its signature that have no default, other than
    `prompts`, `completions`, `completion_ids` and what trainers pass themselves (`trainer_state`, `log_extra`,
    `log_metric`, `environments`).

    Works for plain functions, `functools.partial` (bound arguments are not needed), callable objects (their
    `__call__`) and [`VerifierSuite`] (the union over its members).

    Args:
        verifier (`callable`): the verifier.

    Returns:
        `set[str]`: the column names.

    Example:

    ```python
    >>> from trl.rewards import accuracy_reward
    >>> required_columns(accuracy_reward)
    {'solution'}
    ```
    """
    if isinstance(verifier, VerifierSuite):
        return set().union(*(required_columns(member) for member in verifier.verifiers.values()))
    try:
        signature = inspect.signature(verifier)
    except (TypeError, ValueError):  # some builtins have no signature
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in kinds and parameter.default is inspect.Parameter.empty and name not in TRAINER_ARGUMENTS
    }


class MissingColumnError(ValueError):
    """A verifier needs a dataset column that is not there. The message names the verifier, the column and the columns
    present."""


def _missing_columns_message(name: str, missing: Sequence[str], present: Iterable[str], where: str) -> str:
    needs = f"column {missing[0]!r}" if len(missing) == 1 else "columns " + ", ".join(repr(c) for c in missing)
    return f"verifier {name!r} needs {needs}; {where} has columns {sorted(present)}"


def check_required_columns(verifiers: Callable | Sequence[Callable], columns: Iterable[str]) -> None:
    """Fails early (before any generation) when a verifier needs a column the dataset does not have.

    Args:
        verifiers (`callable` or `list[callable]`): the verifiers (reward functions, suites).
        columns (`Iterable[str]`): the dataset's column names, e.g. `dataset.column_names`.

    Raises:
        [`MissingColumnError`] (a `ValueError`): naming the verifier, the missing column(s) and the columns present.

    Example:

    ```python
    >>> from trl_mos.verifiers import math_verifier
    >>> check_required_columns([math_verifier], ["prompt", "answer"])
    Traceback (most recent call last):
    ...
    trl_mos.verifiers.base.MissingColumnError: verifier 'math_verifier' needs column 'solution'; the dataset has columns ['answer', 'prompt']
    ```
    """
    columns = list(columns)
    if callable(verifiers) and not isinstance(verifiers, (list, tuple)):
        verifiers = [verifiers]
    for verifier in verifiers:
        missing = sorted(required_columns(verifier) - set(columns))
        if missing:
            raise MissingColumnError(
                _missing_columns_message(verifier_name(verifier), missing, columns, "the dataset")
            )


# ----------------------------------------------------------------------------------------------------------------------
# Building verifiers (shared by the bundled ones)
# ----------------------------------------------------------------------------------------------------------------------

Outcome = tuple[float | None, str]  # (score, reason)

VERIFIER_ERROR_PREFIX = "verifier error: "


def error_reason(detail: str) -> str:
    """The reason of a sample the verifier could not judge (a timeout of the verifier itself, a crash): `"verifier
    error: <detail>"`. A verifier reports such a sample with the score `None` and this reason.

    Args:
        detail (`str`): what went wrong, e.g. `"timed out after 5 s"`.

    Returns:
        `str`: the reason.

    Example:

    ```python
    >>> error_reason("timed out after 5 s")
    'verifier error: timed out after 5 s'
    ```
    """
    return VERIFIER_ERROR_PREFIX + detail


def is_verifier_error(reason: str | None) -> bool:
    """Whether a per-sample reason says that the verifier could not judge the sample (see [`error_reason`]).

    Args:
        reason (`str` or `None`): a reason, as logged in the `"{name}_reason"` column or held in `Verdict.reasons`.

    Returns:
        `bool`: `True` for `"verifier error: ..."` reasons.

    Example:

    ```python
    >>> is_verifier_error("verifier error: the math worker died"), is_verifier_error("wrong answer '3'")
    (True, False)
    ```
    """
    return isinstance(reason, str) and reason.startswith(VERIFIER_ERROR_PREFIX)


def build_verifier(
    name: str,
    columns: Sequence[str],
    score_batch: Callable[[list[str], dict[str, list], list | None], list[Outcome]],
    doc: str | None = None,
    optional_columns: Sequence[str] = (),
    check_columns: Callable[[list[str]], None] | None = None,
) -> Callable[..., list[float | None]]:
    """Wraps a batch scoring function into a TRL-style reward function with a real signature.

    The result reads `columns` (required: a missing one raises a `ValueError` naming it and the columns present) and
    `optional_columns`, turns completions into text with [`completion_to_text`], and, when the trainer passes
    `log_extra`, logs each sample's reason in a column `"{name}_reason"`.

    Args:
        name (`str`): the function name (used in logs and by [`VerifierSuite`]).
        columns (`list[str]`): required dataset columns.
        score_batch (`callable`): `(texts, {column: values}, prompts) -> [(score, reason), ...]`.
        doc (`str`, *optional*): the docstring.
        optional_columns (`list[str]`, *optional*): columns read when present.
        check_columns (`callable`, *optional*): called with the column names of the batch before scoring; raises
            [`MissingColumnError`] for combinations of columns that cannot work.

    Returns:
        `callable`: the reward function.
    """
    P = inspect.Parameter
    parameters = [P("prompts", P.POSITIONAL_OR_KEYWORD), P("completions", P.POSITIONAL_OR_KEYWORD)]
    parameters += [P(column, P.POSITIONAL_OR_KEYWORD) for column in columns]
    parameters += [P(column, P.POSITIONAL_OR_KEYWORD, default=None) for column in optional_columns]
    parameters.append(P("kwargs", P.VAR_KEYWORD))
    positional = [parameter.name for parameter in parameters[:-1]]

    def verifier(*args: Any, **kwargs: Any) -> list[float | None]:
        if len(args) > len(positional):
            raise TypeError(f"{name}() takes at most {len(positional)} positional arguments ({len(args)} given)")
        for key, value in zip(positional, args, strict=False):
            if key in kwargs:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            kwargs[key] = value
        if kwargs.get("completions") is None:
            raise TypeError(f"{name}() missing required argument 'completions'")
        missing = [column for column in columns if column not in kwargs]
        present = [key for key in kwargs if key not in TRAINER_ARGUMENTS]
        if missing:
            raise MissingColumnError(_missing_columns_message(name, missing, present, "the batch"))
        if check_columns is not None:
            check_columns(present)
        completions = list(kwargs["completions"])
        values = {}
        for column in (*columns, *(c for c in optional_columns if kwargs.get(c) is not None)):
            value = kwargs[column]
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                value = list(value) if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) else None
            if value is None or len(value) != len(completions):
                raise ValueError(
                    f"verifier {name!r}: column {column!r} must hold one value per completion "
                    f"({len(completions)} completions)."
                )
            values[column] = list(value)
        texts = [completion_to_text(completion) for completion in completions]
        prompts = kwargs.get("prompts")
        outcomes = score_batch(texts, values, None if prompts is None else list(prompts)) if texts else []
        log_extra = kwargs.get("log_extra")
        if callable(log_extra):
            log_extra(f"{name}_reason", [reason for _, reason in outcomes])
        return [score for score, _ in outcomes]

    verifier.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    verifier.__name__ = verifier.__qualname__ = name
    verifier.__doc__ = doc
    return verifier


def guarded(name: str, function: Callable[..., Outcome], *args: Any) -> Outcome:
    """Calls a per-sample scorer; an exception gives `(None, reason)` and is logged once per verifier and error type."""
    try:
        return function(*args)
    except Exception as exc:  # one bad sample must not stop the batch
        reason = error_reason(f"{type(exc).__name__}: {str(exc)[:200]}")
        log_once((name, type(exc).__name__), f"{name} failed on a sample ({reason}); the sample gets None.")
        return None, reason


# ----------------------------------------------------------------------------------------------------------------------
# VerifierSuite
# ----------------------------------------------------------------------------------------------------------------------


VerdictStatus = Literal["accepted", "rejected", "error"]


@dataclass
class Verdict:
    """The decision on one completion: accepted, rejected, or verifier error (the verifiers could not decide, e.g. a
    verifier timed out or crashed on it; that says nothing about the completion).

    Args:
        accepted (`bool`): whether the completion is accepted (`status == "accepted"`).
        scores (`dict[str, float | None]`): each verifier's score (`None`: not applicable, or it failed).
        passed (`dict[str, bool | None]`): each verifier's own verdict (`score >= threshold`; `None` when not
            applicable or when it failed).
        reasons (`dict[str, str]`): each verifier's reason (empty when it passed; `"verifier error: ..."` when it
            failed, see [`is_verifier_error`]).
        reason (`str`): why the completion was rejected or could not be judged (empty when accepted).
        status (`str`, *optional*): `"accepted"`, `"rejected"` or `"error"`. Defaults to `"accepted"` or `"rejected"`
            after `accepted`.
        errors (`dict[str, str]`): the verifiers that failed on this completion, with their reasons.
    """

    accepted: bool
    scores: dict[str, float | None] = field(default_factory=dict)
    passed: dict[str, bool | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    status: VerdictStatus | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.status is None:
            self.status = "accepted" if self.accepted else "rejected"
        if self.status not in ("accepted", "rejected", "error"):
            raise ValueError(f"`status` must be 'accepted', 'rejected' or 'error', got {self.status!r}.")
        if self.accepted != (self.status == "accepted"):
            raise ValueError(f"`accepted={self.accepted}` contradicts `status={self.status!r}`.")

    @property
    def rejected(self) -> bool:
        """Whether the verifiers judged the completion and rejected it."""
        return self.status == "rejected"

    @property
    def is_error(self) -> bool:
        """Whether the verifiers could not judge the completion (neither accepted nor rejected)."""
        return self.status == "error"


def _accepted_arguments(verifier: Callable) -> set[str] | None:
    """The keyword arguments a verifier accepts, or None when it takes `**kwargs` (or has no signature)."""
    try:
        parameters = inspect.signature(verifier).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {parameter.name for parameter in parameters if parameter.kind is not inspect.Parameter.VAR_POSITIONAL}


def _as_score(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # numpy / torch scalars
        value = value.item()
    if not isinstance(value, (bool, int, float)):
        raise TypeError(f"a score must be a number or None, got {type(value).__name__}")
    score = float(value)
    return None if math.isnan(score) else score


class VerifierSuite:
    """Runs several verifiers and turns their scores into one accept/reject decision per completion.

    Called like a reward function, it returns one [`Verdict`] per completion. A verifier's score `>= threshold` is a
    pass. A verifier that returns `None` for a sample is not applicable to it and is ignored:

    - `mode="all"`: accepted when every applicable verifier passes;
    - `mode="any"`: accepted when at least one applicable verifier passes;
    - a completion for which no verifier is applicable (all `None`) is rejected, in both modes.

    A verifier that raises is retried sample by sample: the samples it raises on get `None` with a `"verifier error:
    ..."` reason (the error is logged once), the others keep their scores. A verifier can report such an error itself:
    score `None` and a reason made with [`error_reason`] (the bundled math verifier does so when it times out).
    A member's error makes the verdict `status="error"` (neither accepted nor rejected) unless the others decide
    anyway: in mode `"all"` a failing member still rejects, in mode `"any"` a passing member still accepts. What an
    error counts as is the caller's choice (ReST^EM: `ReSTEMConfig`). A missing dataset column is a configuration
    error and raises.

    Args:
        verifiers (`callable`, `list[callable]` or `dict[str, callable]`):
            The verifiers (any TRL reward functions). Names come from the dict keys or from [`verifier_name`].
        threshold (`float` or `dict[str, float]`, *optional*, defaults to `1.0`):
            Score needed to pass, for all verifiers or per verifier name.
        mode (`str`, *optional*, defaults to `"all"`):
            `"all"` or `"any"`, see above.
        name (`str`, *optional*, defaults to `"verifier_suite"`):
            Name of the suite and of its reward function.

    Example:

    ```python
    >>> from trl_mos.verifiers import VerifierSuite, exact_match_verifier, math_verifier
    >>> suite = VerifierSuite([math_verifier, exact_match_verifier], mode="any")
    >>> verdicts = suite(prompts=["1+1?"], completions=["The answer is \\\\boxed{2}."], solution=["2"])
    >>> verdicts[0].accepted, verdicts[0].passed
    (True, {'math_verifier': True, 'exact_match_verifier': False})
    ```
    """

    def __init__(
        self,
        verifiers: Callable | Sequence[Callable] | Mapping[str, Callable],
        threshold: float | Mapping[str, float] = 1.0,
        mode: Literal["all", "any"] = "all",
        name: str = "verifier_suite",
    ):
        if mode not in ("all", "any"):
            raise ValueError(f"`mode` must be 'all' or 'any', got {mode!r}.")
        if callable(verifiers) and not isinstance(verifiers, Mapping):
            verifiers = [verifiers]
        if isinstance(verifiers, Mapping):
            named = dict(verifiers)
        else:
            named = {}
            for verifier in verifiers:
                base, suffix = verifier_name(verifier), 1
                key = base
                while key in named:
                    suffix += 1
                    key = f"{base}_{suffix}"
                named[key] = verifier
        if not named:
            raise ValueError("A VerifierSuite needs at least one verifier.")
        for key, verifier in named.items():
            if not callable(verifier):
                raise TypeError(f"Verifier {key!r} is not callable.")
        if isinstance(threshold, Mapping):
            unknown = sorted(set(threshold) - set(named))
            if unknown:
                raise ValueError(f"Thresholds given for unknown verifiers {unknown}; the verifiers are {list(named)}.")
            self.thresholds = {key: float(threshold.get(key, 1.0)) for key in named}
        else:
            self.thresholds = dict.fromkeys(named, float(threshold))
        self.verifiers: dict[str, Callable] = named
        self.mode = mode
        self.name = name
        self.__name__ = name

    def __repr__(self) -> str:
        return f"VerifierSuite({list(self.verifiers)}, mode={self.mode!r}, thresholds={self.thresholds})"

    def required_columns(self) -> set[str]:
        """The union of the members' [`required_columns`]."""
        return required_columns(self)

    def _call_member(self, key: str, verifier: Callable, batch: dict[str, Any], size: int) -> list[tuple[Any, str]]:
        reasons: dict[str, list] = {}

        def log_extra(column: str, values: list) -> None:
            if column.endswith("reason"):
                reasons.setdefault("reason", list(values))

        accepted = _accepted_arguments(verifier)

        def call(arguments: dict[str, Any], expected: int) -> list[float | None]:
            reasons.clear()
            arguments = {**arguments, "log_extra": log_extra}
            if accepted is not None:
                arguments = {key: value for key, value in arguments.items() if key in accepted}
            output = verifier(**arguments)
            output = list(output)
            if len(output) != expected:
                raise ValueError(f"returned {len(output)} scores for {expected} completions")
            return [_as_score(value) for value in output]

        try:
            scores = call(batch, size)
            found = reasons.get("reason") or [""] * size
            return list(zip(scores, [str(r) for r in found], strict=True))
        except MissingColumnError:
            raise
        except Exception as exc:
            log_once((self.name, key, type(exc).__name__), f"Verifier {key!r} raised {type(exc).__name__}: {exc}; "
                     "retrying its batch sample by sample (samples that fail get None).")  # fmt: skip
        outcomes: list[tuple[Any, str]] = []
        for index in range(size):
            item = {
                column: value[index : index + 1] if isinstance(value, list) and len(value) == size else value
                for column, value in batch.items()
            }
            try:
                score = call(item, 1)[0]
                outcomes.append((score, str((reasons.get("reason") or [""])[0])))
            except Exception as exc:
                outcomes.append((None, error_reason(f"{type(exc).__name__}: {str(exc)[:200]}")))
        return outcomes

    def __call__(
        self,
        prompts: list | None = None,
        completions: list | None = None,
        completion_ids: list | None = None,
        **columns,
    ) -> list[Verdict]:
        """Scores the completions with every verifier and decides.

        Args:
            prompts (`list`, *optional*): the prompts.
            completions (`list`): the completions (strings or lists of messages).
            completion_ids (`list[list[int]]`, *optional*): token ids, passed through.
            **columns: dataset columns (one value per completion) and trainer arguments.

        Returns:
            `list[Verdict]`: one per completion.
        """
        if completions is None:
            raise TypeError("VerifierSuite() missing required argument 'completions'")
        completions = list(completions)
        size = len(completions)
        columns.pop("log_extra", None)
        check = [key for key in columns if key not in TRAINER_ARGUMENTS]
        for key, verifier in self.verifiers.items():
            missing = sorted(required_columns(verifier) - set(columns))
            if missing:
                raise MissingColumnError(_missing_columns_message(key, missing, check, "the batch"))
        if size == 0:
            return []
        batch = {
            "prompts": None if prompts is None else list(prompts),
            "completions": completions,
            "completion_ids": None if completion_ids is None else list(completion_ids),
            **{key: list(value) if isinstance(value, (list, tuple)) else value for key, value in columns.items()},
        }
        per_verifier = {key: self._call_member(key, verifier, batch, size) for key, verifier in self.verifiers.items()}
        verdicts = []
        for index in range(size):
            scores, passed, reasons, errors = {}, {}, {}, {}
            for key, outcomes in per_verifier.items():
                score, reason = outcomes[index]
                scores[key] = score
                passed[key] = None if score is None else score >= self.thresholds[key]
                if score is None:
                    reasons[key] = reason or "not applicable"
                    if is_verifier_error(reason):
                        errors[key] = reason
                elif not passed[key]:
                    reasons[key] = reason or f"score {score:g} is below the threshold {self.thresholds[key]:g}"
                else:
                    reasons[key] = ""
            applicable = [value for value in passed.values() if value is not None]
            failed = [f"{key}: {reasons[key]}" for key, value in passed.items() if value is False]
            if self.mode == "all":
                decided = False if failed else (None if errors else (True if applicable else False))
            else:
                decided = True if any(applicable) else (None if errors else False)
            if decided is None:
                status, summary = "error", "; ".join(f"{key}: {reason}" for key, reason in errors.items())
            elif decided:
                status, summary = "accepted", ""
            else:
                status, summary = "rejected", "; ".join(failed) or "no verifier applies to this completion"
            verdicts.append(Verdict(status == "accepted", scores, passed, reasons, summary, status, errors))
        return verdicts

    def as_reward_function(self) -> Callable[..., list[float | None]]:
        """A reward function that returns 1.0 for accepted completions and 0.0 for rejected ones (`None` when no
        verifier applies or on a verifier error), e.g. for `GRPOTrainer(reward_funcs=...)`. It needs the same columns
        as the suite.

        Returns:
            `callable`: the reward function, named after the suite.
        """

        def reward(prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
            verdicts = self(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
            return [
                None if v.is_error or all(value is None for value in v.passed.values()) else float(v.accepted)
                for v in verdicts
            ]

        P = inspect.Parameter
        parameters = [P("prompts", P.POSITIONAL_OR_KEYWORD), P("completions", P.POSITIONAL_OR_KEYWORD)]
        parameters += [P(column, P.KEYWORD_ONLY) for column in sorted(self.required_columns())]
        reward.__signature__ = inspect.Signature([*parameters, P("kwargs", P.VAR_KEYWORD)])  # type: ignore[attr-defined]
        reward.__name__ = reward.__qualname__ = self.name
        return reward
