"""Task losses and metrics: the four built-in kinds, and a task's own loss and metric.

A :class:`~taskrel.suite.Task` may bring its own ``loss`` and ``metric``. Either is a callable
``fn(output, target, mask)`` or ``fn(output, target)``:

- with three arguments it gets the whole batch: the output reshaped to the target's shape (for
  a ``"custom"`` task; as the built-in kinds shape it otherwise), the target with missing
  labels (NaN) set to 0, and a boolean ``mask`` of the known target elements (per pixel, for a
  dense task). It must leave out the masked elements itself.
- with two arguments it gets only the rows whose target is fully known (a row with any NaN is
  left out); use three arguments where single elements may be missing (e.g. void pixels).

A loss returns a scalar tensor (a mean over the batch); a metric returns a number. A batch
without any labelled row has loss 0 (kept in the graph).

>>> import torch
>>> from taskrel.suite import Task
>>> def l1(out, y, mask):
...     return ((out - y).abs() * mask).sum() / mask.sum().clamp_min(1)
>>> t = Task("depth", "custom", loss=l1)
>>> y = torch.tensor([[1.0, float("nan")], [2.0, 2.0]])
>>> round(float(task_loss(t, torch.zeros(2, 2), y)), 4)
1.6667
>>> float(task_loss(Task("d2", "custom", loss=lambda o, y: (o - y).abs().mean()), torch.zeros(2, 2), y))
2.0
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from taskrel.digest import function_digest
from taskrel.errors import TaskrelError

DIRECTIONS = ("max", "min")


class TaskLike(Protocol):
    """What a loss or metric reads of a task; :class:`taskrel.task.Task` is one (a protocol, so
    that this module, which ``taskrel.task`` imports, imports nothing back)."""

    name: str
    kind: str
    metric: str | Callable[..., Any] | None
    loss: Callable[..., Any] | None
    direction: str | None


def arity(fn: Callable[..., Any], what: str) -> int:
    """2 or 3: how many positional arguments a task's loss or metric takes (``what`` names it)."""
    if not callable(fn):
        raise TaskrelError(f"{what} must be a callable fn(output, target[, mask]), got {fn!r}")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 3 or len(positional) < 2:
        raise TaskrelError(f"{what} must take (output, target) or (output, target, mask), got signature {inspect.signature(fn)}")
    return 3 if len(positional) >= 3 else 2


def describe(fn: Any) -> Any:
    """A metric or loss as plain data: a built-in name as is, a callable by name and code digest."""
    if fn is None or isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__qualname__', type(fn).__qualname__)}@{function_digest(fn)[:16]}"


def check_own_functions(task: TaskLike) -> None:
    """A task's own loss and metric: callables of (output, target[, mask]); a direction if needed."""
    where = f"task {task.name!r}"
    if task.loss is not None:
        arity(task.loss, f"{where}: loss")
    elif task.kind == "custom":
        raise TaskrelError(f"{where}: a custom task needs its own loss=fn(output, target[, mask])")
    if callable(task.metric):
        arity(task.metric, f"{where}: metric")
        if task.direction not in DIRECTIONS:
            raise TaskrelError(f"{where}: a callable metric needs direction='max' or 'min', got {task.direction!r}")
    elif task.direction is not None and task.direction not in DIRECTIONS:
        raise TaskrelError(f"{where}: direction must be 'max' or 'min', got {task.direction!r}")


def _prepare(task: TaskLike, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and target shaped as the task's own loss and metric receive them."""
    if task.kind == "custom":
        return out.reshape(y.shape), y
    if task.kind in ("binary", "regression"):
        return out.reshape(-1), y.reshape(-1)
    return out, y


def _call(fn: Callable[..., Any], n_args: int, out: torch.Tensor, y: torch.Tensor) -> Any:
    mask = ~torch.isnan(y)
    if n_args == 3:
        return fn(out, torch.nan_to_num(y), mask)
    rows = mask.reshape(len(y), -1).all(1)
    return fn(out[rows], y[rows])


def own_loss(task: TaskLike, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task's own loss on a batch, checked to be a scalar tensor."""
    out, y = _prepare(task, out, y)
    n_args = arity(task.loss, f"task {task.name!r}: loss")
    if n_args == 2 and not (~torch.isnan(y)).reshape(len(y), -1).all(1).any():
        return out.sum() * 0.0
    if n_args == 3 and not (~torch.isnan(y)).any():
        return out.sum() * 0.0
    value = _call(task.loss, n_args, out, y)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise TaskrelError(f"task {task.name!r}: its loss must return a scalar tensor (a mean over the batch), got {shape}")
    return value


def task_loss(task: TaskLike, out: torch.Tensor, y: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Masked loss of one task (missing labels, NaN, are left out). Mean over labelled rows.

    ``reduce=False`` gives one loss per row (0 for an unlabelled row); for a task's own loss it
    calls the loss once per row.
    """
    if task.loss is not None:
        if reduce:
            return own_loss(task, out, y)
        return torch.stack([own_loss(task, out[i : i + 1], y[i : i + 1]) for i in range(len(y))]) if len(y) else out.sum(0) * 0.0
    mask = ~torch.isnan(y)
    yy = torch.nan_to_num(y)
    if task.kind == "multilabel":
        per = F.binary_cross_entropy_with_logits(out, yy, reduction="none")
        per = (per * mask).sum(1) / mask.sum(1).clamp_min(1)
        mask = mask.any(1)
    elif task.kind == "multiclass":
        per = F.cross_entropy(out, yy.long(), reduction="none")
    elif task.kind == "binary":
        per = F.binary_cross_entropy_with_logits(out.reshape(-1), yy.to(out.dtype), reduction="none")
    else:
        per = (out.reshape(-1) - yy.to(out.dtype)) ** 2
    per = per * mask
    if not reduce:
        return per
    return per.sum() / mask.sum().clamp_min(1)


def task_metric(task: TaskLike, out: torch.Tensor, y: torch.Tensor) -> float:
    """The task's metric on labelled rows (its own metric, or the built-in one it names)."""
    if callable(task.metric):
        o, yy = _prepare(task, out.detach(), y.detach())
        value = _call(task.metric, arity(task.metric, f"task {task.name!r}: metric"), o, yy)
        return float(value)
    if task.metric == "loss":
        return float(task_loss(task, out.detach(), y.detach()))
    y = y.detach().cpu().double()
    out = out.detach().cpu().double()
    if task.kind == "multilabel":
        mask = ~torch.isnan(y)
        pred = (out > 0).double()
        return float(((pred == y) & mask).sum() / mask.sum().clamp_min(1))
    mask = ~torch.isnan(y)
    y = y[mask]
    if task.kind == "multiclass":
        return float((out[mask].argmax(1) == y.long()).double().mean())
    o = out.reshape(-1)[mask]
    if task.kind == "binary":
        if task.metric == "auc":
            from sklearn.metrics import roc_auc_score

            return float(roc_auc_score(y.numpy(), o.numpy())) if y.unique().numel() > 1 else 0.5
        return float(((o > 0).double() == y).double().mean())
    if task.metric == "mae":
        return float((o - y).abs().mean())
    if task.metric == "r2":
        return float(1 - ((o - y) ** 2).sum() / ((y - y.mean()) ** 2).sum().clamp_min(1e-12))
    return float(((o - y) ** 2).mean())


def check_own_losses(tasks: list[TaskLike], out: dict[str, torch.Tensor], ys: dict[str, torch.Tensor]) -> None:
    """Before training: each task's own loss gives a finite scalar on one batch, else name the task."""
    for t in tasks:
        if t.loss is None:
            continue
        value = float(own_loss(t, out[t.name], ys[t.name]).detach())
        if not math.isfinite(value):
            raise TaskrelError(f"task {t.name!r}: its loss returned {value} on the first training batch (before any update)")


__all__ = ["DIRECTIONS", "arity", "check_own_functions", "check_own_losses", "describe", "own_loss", "task_loss", "task_metric"]
