"""A task: its name, kind, metric, and optionally its own loss and metric (checked when made);
the names a task may have, and the targets it accepts.

>>> Task("even", "binary").to_dict()
{'name': 'even', 'kind': 'binary', 'n_outputs': None, 'metric': 'accuracy'}
>>> module_key("y.1"), module_key("type"), module_key("age")
('~y~d1', '~type', 'age')
>>> check_task_name("a+b")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: task name 'a+b' may not contain '+' (it joins task names in groups)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.losses import check_own_functions, describe

KINDS = ("binary", "multiclass", "regression", "multilabel", "custom")
DEFAULT_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mse", "multilabel": "accuracy", "custom": "loss"}
# metric -> higher is better ("loss": the task's loss, for a task with its own loss)
METRICS = {"accuracy": True, "auc": True, "r2": True, "mse": False, "mae": False, "loss": False}


# characters that join or separate task names elsewhere (groups "a+b", CLI lists "a,b")
_RESERVED = {"+": "it joins task names in groups", ",": "it separates task names in lists"}


def check_task_name(name: Any) -> None:
    """A task name is a non-empty string without reserved or invisible characters."""
    if not isinstance(name, str) or not name.strip():
        raise TaskrelError(f"task name must be a non-empty string, got {name!r}")
    if name != name.strip():
        raise TaskrelError(f"task name {name!r} may not begin or end with white space")
    for ch, why in _RESERVED.items():
        if ch in name:
            raise TaskrelError(f"task name {name!r} may not contain {ch!r} ({why})")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise TaskrelError(f"task name {name!r} may not contain control characters")


def module_key(name: str) -> str:
    """The key of a task's head among a model's modules: the name itself where torch allows it.

    Names torch refuses as module names (with a ``.``, or equal to a module attribute such as
    ``type`` or ``forward``) are mapped one-to-one to keys starting with ``~``.
    """
    if "." not in name and not name.startswith("~") and not hasattr(nn.ModuleDict, name):
        return name
    return "~" + name.replace("~", "~~").replace(".", "~d")


@dataclass(frozen=True)
class Task:
    """One prediction task.

    Parameters
    ----------
    name : unique name.
    kind : ``"binary"``, ``"multiclass"``, ``"regression"`` or ``"multilabel"``.
    n_outputs : classes (multiclass) or labels (multilabel); 1 otherwise (inferred by the suite
        when left as None).
    metric : ``accuracy``, ``auc``, ``r2``, ``mse`` or ``mae``; by default accuracy for
        classification and mse for regression; ``loss`` (the task's own loss, lower is better,
        the default of a ``custom`` task); or a callable ``fn(output, target[, mask]) -> float``
        with its ``direction``.
    loss : the task's own loss ``fn(output, target[, mask]) -> scalar tensor``, replacing the
        kind's (masking rules in :mod:`taskrel.losses`). A ``"custom"`` task needs one; its
        targets may have any shape (e.g. per-pixel maps), NaN marking a missing element.
        Use functions defined in a module (not lambdas) where runs go to worker processes.
    direction : ``"max"`` or ``"min"``: whether a larger metric is better; needed (only) with a
        callable metric.

    Examples
    --------
    >>> Task("even", "binary").higher_is_better
    True
    >>> Task("age", "regression").metric
    'mse'
    >>> Task("mask", "custom", loss=lambda o, y: ((o - y) ** 2).mean()).higher_is_better
    False
    """

    name: str
    kind: str
    n_outputs: int | None = None
    metric: str | Callable[..., Any] | None = None
    loss: Callable[..., Any] | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        check_task_name(self.name)
        if self.kind not in KINDS:
            raise TaskrelError(
                f"task {self.name!r}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}"
            )
        check_own_functions(self)
        metric = self.metric or DEFAULT_METRIC[self.kind]
        if callable(metric):
            return
        if metric not in METRICS:
            raise TaskrelError(
                f"task {self.name!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}"
            )
        if metric in ("mse", "mae", "r2") and self.kind != "regression":
            raise TaskrelError(f"task {self.name!r}: metric {metric!r} needs a regression task")
        if metric == "loss" and self.loss is None:
            raise TaskrelError(f"task {self.name!r}: metric 'loss' needs the task's own loss")
        if metric == "auc" and self.kind != "binary":
            raise TaskrelError(f"task {self.name!r}: metric 'auc' needs a binary task")
        object.__setattr__(self, "metric", metric)
        if self.n_outputs is not None and int(self.n_outputs) < 1:
            raise TaskrelError(f"task {self.name!r}: n_outputs must be >= 1, got {self.n_outputs}")
        if self.kind in ("binary", "regression") and self.n_outputs not in (None, 1):
            raise TaskrelError(f"task {self.name!r}: a {self.kind} task has one output")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max" if callable(self.metric) else METRICS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        """Plain data; a task's own loss or metric appears by name and code digest."""
        d = {"name": self.name, "kind": self.kind, "n_outputs": self.n_outputs, "metric": describe(self.metric)}
        if self.loss is not None or callable(self.metric):
            d.update(loss=describe(self.loss), direction=self.direction)
        return d


def check_targets(where: str, t: Task, y: Any, n: int) -> tuple[np.ndarray, Task]:
    """``y`` as a float array of ``n`` rows fit for ``t``'s kind, and ``t`` with its number of
    outputs filled in from them (``where`` names the suite and task in errors).

    >>> check_targets("task 'd'", Task("d", "multiclass"), [0, 2, 1, float("nan")], 4)[1].n_outputs
    3
    """
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise TaskrelError(f"{where}: targets are not numeric") from None
    if y.shape[0] != n:
        raise TaskrelError(f"{where}: targets have {y.shape[0]} rows, inputs have {n}")
    if np.isinf(y).any():
        raise TaskrelError(f"{where}: targets contain inf (use NaN for a missing label)")
    known = y[~np.isnan(y)]
    if t.kind == "multilabel":
        if y.ndim != 2:
            raise TaskrelError(f"{where}: multilabel targets must be (n, labels), got shape {y.shape}")
        if t.n_outputs not in (None, y.shape[1]):
            raise TaskrelError(f"{where}: n_outputs={t.n_outputs} but targets have {y.shape[1]} labels")
        t = replace(t, n_outputs=y.shape[1])
    elif t.kind == "custom":
        if t.n_outputs not in (None, int(np.prod(y.shape[1:]))):
            raise TaskrelError(f"{where}: n_outputs={t.n_outputs} but targets have shape {y.shape[1:]} per example")
        return y, replace(t, n_outputs=int(np.prod(y.shape[1:])))
    elif y.ndim != 1:
        raise TaskrelError(f"{where}: {t.kind} targets must be one-dimensional, got shape {y.shape}")
    if t.kind in ("binary", "multilabel") and not np.isin(known, (0.0, 1.0)).all():
        bad = known[~np.isin(known, (0.0, 1.0))][0]
        raise TaskrelError(f"{where}: {t.kind} targets must be 0 or 1 (or NaN), found {bad}")
    if t.kind == "multiclass":
        if (known != np.round(known)).any() or (known < 0).any():
            raise TaskrelError(f"{where}: multiclass targets must be class indices 0..C-1")
        c = int(known.max()) + 1 if known.size else 1
        if t.n_outputs is not None and c > t.n_outputs:
            raise TaskrelError(f"{where}: class index {c - 1} >= n_outputs={t.n_outputs}")
        t = replace(t, n_outputs=t.n_outputs or max(c, 2))
    if t.kind in ("binary", "regression"):
        t = replace(t, n_outputs=1)
    return y, t


def check_classes(where: str, kind: str, y: np.ndarray) -> None:
    """A target must vary: one class (or one constant value) cannot be learned or scored."""
    known = y[~np.isnan(y)]
    if known.size == 0:
        return
    values = np.unique(known)
    if values.size < 2:
        what = "has one class only" if kind != "regression" else "is constant"
        raise TaskrelError(f"{where}: the {kind} target {what} (every label is {values[0]:g}); a task needs at least two values")


__all__ = ["DEFAULT_METRIC", "KINDS", "METRICS", "Task", "check_classes", "check_targets", "check_task_name", "module_key"]
