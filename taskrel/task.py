"""A task: its name, kind, metric, and optionally its own loss and metric (checked when made).

>>> Task("even", "binary").to_dict()
{'name': 'even', 'kind': 'binary', 'n_outputs': None, 'metric': 'accuracy'}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.losses import check_own_functions, describe
from taskrel.suite_checks import check_task_name

KINDS = ("binary", "multiclass", "regression", "multilabel", "custom")
DEFAULT_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mse", "multilabel": "accuracy", "custom": "loss"}
# metric -> higher is better ("loss": the task's loss, for a task with its own loss)
METRICS = {"accuracy": True, "auc": True, "r2": True, "mse": False, "mae": False, "loss": False}


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


__all__ = ["DEFAULT_METRIC", "KINDS", "METRICS", "Task"]
