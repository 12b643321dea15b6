"""Checks a suite passes at construction: names, blocks, shapes, splits and targets.

Everything here runs before any training, and each error names the suite, the task or stage,
and the value at fault.

>>> module_key("y.1"), module_key("type"), module_key("age")
('~y~d1', '~type', 'age')
>>> check_task_name("a+b")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: task name 'a+b' may not contain '+' (it joins task names in groups)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.errors import TaskrelError

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


def check_factories(where: str, stages: Sequence[Any], head: Any) -> None:
    """Stages and the head must be factories (callables returning a fresh module), not modules."""
    if isinstance(stages, nn.Module) or not isinstance(stages, Sequence) or isinstance(stages, str):
        raise TaskrelError(f"{where}: stages must be a list of stage factories, got {type(stages).__name__}")
    if not stages:
        raise TaskrelError(f"{where}: the encoder needs at least one stage")
    for k, f in enumerate(stages):
        if isinstance(f, nn.Module):
            raise TaskrelError(
                f"{where}: stage {k} is a module ({type(f).__name__}), not a factory; pass a function "
                f"that builds a fresh one, e.g. lambda: nn.Sequential(...), so every run starts anew"
            )
        if not callable(f):
            raise TaskrelError(f"{where}: stage {k} is not a factory (a callable returning an nn.Module), got {f!r}")
    if isinstance(head, nn.Module):
        raise TaskrelError(f"{where}: head is a module ({type(head).__name__}), not a factory head(task, in_features)")
    if not callable(head):
        raise TaskrelError(f"{where}: head is not a factory head(task, in_features) -> nn.Module, got {head!r}")


def expected_outputs(task: Any) -> int:
    """The number of outputs a head of ``task`` must give per example."""
    return int(task.n_outputs or 1)


def check_heads(where: str, tasks: Sequence[Any], head: Callable[..., Any], features: torch.Tensor) -> None:
    """Build each task's head on the last stage's features and check its output size."""
    in_features = int(np.prod(features.shape[1:]))
    seen: dict[tuple[str, int], None] = {}
    for t in tasks:
        sig = (t.kind, expected_outputs(t))
        if sig in seen:
            continue
        seen[sig] = None
        try:
            m = head(t, in_features)
        except Exception as e:
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory failed: {type(e).__name__}: {e}") from None
        if not isinstance(m, nn.Module):
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory returned {type(m).__name__}, not an nn.Module")
        try:
            with torch.no_grad():
                out = m.eval()(features)
        except Exception as e:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head fails on the last stage's output, shape "
                f"{tuple(features.shape)}: {type(e).__name__}: {e}"
            ) from None
        want = expected_outputs(t)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        ok = got is not None and got[0] == features.shape[0] and int(np.prod(got[1:])) == want
        if not ok:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head gives outputs of shape {got}; a {t.kind} task "
                f"with {want} output(s) needs shape ({features.shape[0]}, {want})"
            )


def check_split(split: Mapping[str, np.ndarray], n: int) -> None:
    """Splits must be disjoint: an example in two splits would leak into evaluation."""
    names = list(split)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(split[a], split[b])
            if shared.size:
                what = "are identical" if np.array_equal(np.unique(split[a]), np.unique(split[b])) else f"share {shared.size} examples"
                raise TaskrelError(f"split: {a!r} and {b!r} {what} (first shared row {int(shared[0])}); splits must not overlap")


def check_classes(where: str, kind: str, y: np.ndarray) -> None:
    """A target must vary: one class (or one constant value) cannot be learned or scored."""
    known = y[~np.isnan(y)]
    if known.size == 0:
        return
    values = np.unique(known)
    if values.size < 2:
        what = "has one class only" if kind != "regression" else "is constant"
        raise TaskrelError(f"{where}: the {kind} target {what} (every label is {values[0]:g}); a task needs at least two values")


__all__ = ["check_task_name", "module_key", "check_factories", "check_heads", "check_split", "check_classes", "expected_outputs"]
